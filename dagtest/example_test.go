package dagtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dagrun/dag"
	"github.com/dagrun/dag/dagtest"
)

// report is the job under test: it fetches rates from a service, with
// retries, and renders them.
func report() []dag.Task {
	return []dag.Task{
		{Name: "fetch", MaxRetries: 3, Timeout: 10 * time.Second, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, errors.New("the test must not call the real service")
		}},
		{Name: "render", DependsOn: []string{"fetch"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			rate, err := dag.Lookup[float64](in, "rate")
			if err != nil {
				return nil, err
			}
			return map[string]any{"text": fmt.Sprintf("1 EUR = %.2f USD", rate)}, nil
		}},
	}
}

// A test of a job's wiring: the task that calls a service is stubbed with
// a flaky fake, retries wait for nothing, and a Recorder shows what each
// attempt saw.
func Example() {
	tasks, err := dagtest.Stub(report(), map[string]dag.TaskFunc{
		"fetch": dagtest.FailTimes(2, errors.New("503 Service Unavailable"), map[string]any{"rate": 1.08}),
	})
	if err != nil {
		fmt.Println(err) // a misspelt name is an error, not a silent no-op
		return
	}
	var rec dagtest.Recorder
	job, err := dag.Run(context.Background(), rec.Wrap(tasks), dag.Options{Backoff: dagtest.NoDelay})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := job.Wait()
	fmt.Println(res.Context["text"], err)
	for _, c := range rec.Calls() {
		fmt.Println(c.Task, c.Attempt, c.Values)
	}
	// Output:
	// 1 EUR = 1.08 USD <nil>
	// fetch 1 map[]
	// fetch 2 map[]
	// fetch 3 map[]
	// render 1 map[rate:1.08]
}

// A name that matches no task is an error, so that a renamed task cannot
// silently escape its stub.
func ExampleStub() {
	_, err := dagtest.Stub(report(), map[string]dag.TaskFunc{
		"fecth": dagtest.Return(map[string]any{"rate": 1.08}),
	})
	fmt.Println(err)
	// Output:
	// dagtest: no task "fecth" to stub; the tasks are "fetch", "render"
}
