package dag_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dagrun/dag"
)

// A job fails at step 3 of 5. A second Run with the first one's Result as
// Options.Resume restores steps 1 and 2 without running them, and runs
// steps 3 to 5.
func ExampleOptions_resume() {
	broken := true
	step := func(n int) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if n == 3 && broken {
				return nil, errors.New("the service is down")
			}
			fmt.Println("running step", n)
			return map[string]any{fmt.Sprint("step", n): "done"}, nil
		}
	}
	var tasks []dag.Task
	for n := 1; n <= 5; n++ {
		t := dag.Task{Name: fmt.Sprint("step", n), Func: step(n)}
		if n > 1 {
			t.DependsOn = []string{fmt.Sprint("step", n-1)}
		}
		tasks = append(tasks, t)
	}

	job, _ := dag.Run(context.Background(), tasks, dag.Options{})
	first, err := job.Wait()
	fmt.Println("first run:", err)

	broken = false // the service is back
	job, _ = dag.Run(context.Background(), tasks, dag.Options{Resume: &first})
	second, err := job.Wait()
	fmt.Println("second run:", second.State, err)
	fmt.Println("step2 restored:", second.Tasks["step2"].Restored, "step3 restored:", second.Tasks["step3"].Restored)
	// Output:
	// running step 1
	// running step 2
	// first run: dag: task "step3" failed after 1 attempt: the service is down
	// running step 3
	// running step 4
	// running step 5
	// second run: completed <nil>
	// step2 restored: true step3 restored: false
}
