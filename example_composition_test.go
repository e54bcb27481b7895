package dag_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dagrun/dag"
)

// A group is a step that is itself a small DAG. Its tasks are named by
// path, and the tasks that depend on the group see every output inside it.
func ExampleTask_sub() {
	put := func(key string, v any) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{key: v}, nil
		}
	}
	tasks := []dag.Task{
		{Name: "fetch", Func: put("url", "https://example.com")},
		{Name: "build", DependsOn: []string{"fetch"}, Sub: []dag.Task{
			{Name: "compile", Func: put("binary", "app")},
			{Name: "test", DependsOn: []string{"compile"}, Func: put("tested", true)},
		}},
		{Name: "ship", DependsOn: []string{"build"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			bin, _ := dag.Lookup[string](in, "binary")
			ok, _ := dag.Lookup[bool](in, "tested")
			return map[string]any{"shipped": fmt.Sprintf("%s tested=%t", bin, ok)}, nil
		}},
	}
	job, err := dag.Run(context.Background(), tasks, dag.Options{MaxParallel: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := job.Wait()
	fmt.Println(res.State, err, res.Context["shipped"])
	for _, name := range []string{"build", "build/compile", "build/test", "ship"} {
		fmt.Println(name, res.Tasks[name].State)
	}
	// Output:
	// completed <nil> app tested=true
	// build completed
	// build/compile completed
	// build/test completed
	// ship completed
}

// Map runs one task per item of a list known only at run time, and
// gathers their results in item order.
func ExampleMap() {
	square := dag.Map("square", "numbers", "squares", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	})
	square.DependsOn = []string{"list"}
	tasks := []dag.Task{
		{Name: "list", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"numbers": []int{1, 2, 3, 4}}, nil
		}},
		square,
	}
	job, _ := dag.Run(context.Background(), tasks, dag.Options{})
	res, err := job.Wait()
	fmt.Println(res.State, err, res.Context["squares"])
	fmt.Println(res.Tasks["square/2"].Output)
	// Output:
	// completed <nil> [1 4 9 16]
	// map[squares:9]
}

// A branch runs only when its condition holds; the other is skipped, and a
// join with the NoneFailed rule runs after whichever ran.
func ExampleTrigger_branch() {
	branch := func(name string) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"route": name}, nil
		}
	}
	isLarge := func(in dag.Values) bool {
		n, _ := dag.Lookup[int](in, "size")
		return n > 100
	}
	tasks := []dag.Task{
		{Name: "measure", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"size": 7}, nil
		}},
		{Name: "large", DependsOn: []string{"measure"}, When: isLarge, Func: branch("large")},
		{Name: "small", DependsOn: []string{"measure"}, When: func(in dag.Values) bool { return !isLarge(in) }, Func: branch("small")},
		{Name: "join", DependsOn: []string{"large", "small"}, Trigger: dag.NoneFailed, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			route, _ := dag.Lookup[string](in, "route")
			return map[string]any{"done": "via " + route}, nil
		}},
	}
	job, _ := dag.Run(context.Background(), tasks, dag.Options{})
	res, err := job.Wait()
	fmt.Println(res.State, err, res.Context["done"])
	fmt.Println("skipped:", res.Skipped())
	// Output:
	// completed <nil> via small
	// skipped: [large]
}

// With KeepGoing a failure stops only what depends on it, and a task with
// the AnyFailed rule can raise the alarm.
func ExampleTrigger_alert() {
	fail := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		return nil, errors.New("disk full")
	}
	ok := func(ctx context.Context, in dag.Values) (map[string]any, error) { return nil, nil }
	tasks := []dag.Task{
		{Name: "backup", Func: fail},
		{Name: "report", Func: ok},
		{Name: "upload", DependsOn: []string{"backup"}, Func: ok},
		{Name: "alert", DependsOn: []string{"backup", "report"}, Trigger: dag.AnyFailed, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			fmt.Println("paging the on-call engineer")
			return nil, nil
		}},
	}
	job, _ := dag.Run(context.Background(), tasks, dag.Options{KeepGoing: true, MaxParallel: 1})
	res, err := job.Wait()
	fmt.Println(res.State)
	fmt.Println(err)
	for _, name := range []string{"backup", "report", "upload", "alert"} {
		fmt.Println(name, res.Tasks[name].State)
	}
	// Output:
	// paging the on-call engineer
	// failed
	// dag: task "backup" failed after 1 attempt: disk full
	// backup failed
	// report completed
	// upload upstream_failed
	// alert completed
}

// A task that finds nothing to do returns ErrSkip: it ends Skipped, not
// Failed, its reason stays in TaskResult.Err, and it is not retried.
func ExampleErrSkip() {
	tasks := []dag.Task{
		{Name: "sync", MaxRetries: 3, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, fmt.Errorf("no new files: %w", dag.ErrSkip)
		}},
		{Name: "index", DependsOn: []string{"sync"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, nil
		}},
	}
	job, _ := dag.Run(context.Background(), tasks, dag.Options{})
	res, err := job.Wait()
	fmt.Println(res.State, err)
	tr := res.Tasks["sync"]
	fmt.Println(tr.State, tr.Attempts, tr.Err)
	fmt.Println(strings.Join(res.Skipped(), ","), slices.Contains(res.Skipped(), "index"))
	// Output:
	// completed <nil>
	// skipped 1 no new files: dag: task skipped
	// index,sync true
}
