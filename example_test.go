package dag_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
)

// dice returns the Func of a task that dices a fruit, if the kitchen has
// it.
func dice(fruit string) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		fruits, err := dag.Lookup[[]string](in, "fruits")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(fruits, fruit) {
			return nil, fmt.Errorf("no %s in the kitchen", fruit)
		}
		return map[string]any{fruit: "diced " + fruit}, nil
	}
}

// blend sees what both dice tasks wrote: it depends on them.
func blend(ctx context.Context, in dag.Values) (map[string]any, error) {
	banana, _ := dag.Lookup[string](in, "banana")
	mango, _ := dag.Lookup[string](in, "mango")
	return map[string]any{"smoothie": banana + " and " + mango + ", blended"}, nil
}

// garnish fails: there is no sugar. It has ContinueOnFailure, so the
// smoothie is served without it.
func garnish(ctx context.Context, in dag.Values) (map[string]any, error) {
	sugar, err := dag.Lookup[string](in, "sugar")
	if err != nil {
		return nil, err
	}
	s, _ := dag.Lookup[string](in, "smoothie")
	return map[string]any{"smoothie": s + ", with " + sugar}, nil
}

// smoothie is a job: dice a banana and a mango in parallel, blend them,
// and garnish the smoothie if that works out.
func smoothie() []dag.Task {
	return []dag.Task{
		{Name: "dice-banana", Func: dice("banana")},
		{Name: "dice-mango", Func: dice("mango")},
		{Name: "blend", DependsOn: []string{"dice-banana", "dice-mango"}, Func: blend},
		{Name: "garnish", DependsOn: []string{"blend"}, Func: garnish, ContinueOnFailure: true},
	}
}

// Run the smoothie job. There is no sugar in the kitchen: garnish fails,
// and as it has ContinueOnFailure the job completes without it.
func ExampleRun() {
	job, err := dag.Run(context.Background(), smoothie(), dag.Options{
		Name:    "smoothie",
		Context: map[string]any{"fruits": []string{"banana", "mango"}},
		Timeout: 3 * time.Second,
	})
	if err != nil {
		fmt.Println(err) // not a valid DAG: nothing ran
		return
	}
	res, err := job.Wait()
	fmt.Println(res.State, err, "; tolerated failures:", res.Failed())
	fmt.Println(res.Context["smoothie"])
	// Output:
	// completed <nil> ; tolerated failures: [garnish]
	// diced banana and diced mango, blended
}

// Events, read until Run closes the channel, tell every transition in
// order. MaxParallel is 1 only so that the order is the same on every run.
func ExampleOptions_events() {
	tasks := []dag.Task{
		{Name: "dice-banana", Func: dice("banana")},
		{Name: "dice-mango", Func: dice("mango")},
		{Name: "blend", DependsOn: []string{"dice-banana", "dice-mango"}, Func: blend},
	}
	events := make(chan dag.Event)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for e := range events {
			fmt.Println(e)
		}
	}()
	job, err := dag.Run(context.Background(), tasks, dag.Options{
		Name:        "smoothie",
		Context:     map[string]any{"fruits": []string{"banana", "mango"}},
		MaxParallel: 1,
		Events:      events,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	job.Wait()
	<-logged
	// Output:
	// job "smoothie" pending -> running
	// job "smoothie": task "dice-banana" pending -> ready (attempt 1)
	// job "smoothie": task "dice-mango" pending -> ready (attempt 1)
	// job "smoothie": task "dice-banana" ready -> running (attempt 1)
	// job "smoothie": task "dice-banana" running -> completed (attempt 1)
	// job "smoothie": task "dice-mango" ready -> running (attempt 1)
	// job "smoothie": task "dice-mango" running -> completed (attempt 1)
	// job "smoothie": task "blend" pending -> ready (attempt 1)
	// job "smoothie": task "blend" ready -> running (attempt 1)
	// job "smoothie": task "blend" running -> completed (attempt 1)
	// job "smoothie" running -> completed
}

// Cancel stops a job: running attempts see their context canceled, and
// the tasks that had not ended end Canceled.
func ExampleJob_Cancel() {
	started := make(chan struct{})
	job, err := dag.Run(context.Background(), []dag.Task{
		{Name: "download", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			close(started)
			<-ctx.Done() // a real task passes ctx to its calls
			return nil, ctx.Err()
		}},
		{Name: "unpack", DependsOn: []string{"download"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, nil
		}},
	}, dag.Options{Name: "update"})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-started
	job.Cancel()
	res, err := job.Wait()
	fmt.Println(res.State, errors.Is(err, context.Canceled))
	fmt.Println(err)
	fmt.Println(res.Tasks["download"].State, res.Tasks["unpack"].State)
	// Output:
	// canceled true
	// dag: job "update" was canceled: context canceled
	// canceled canceled
}

// Progress counts the tasks in each state, at any time.
func ExampleJob_Progress() {
	started, release := make(chan struct{}), make(chan struct{})
	job, err := dag.Run(context.Background(), []dag.Task{
		{Name: "a", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) { return nil, nil }},
		{Name: "b", DependsOn: []string{"a"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			close(started)
			<-release
			return nil, nil
		}},
		{Name: "c", DependsOn: []string{"b"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) { return nil, nil }},
	}, dag.Options{Name: "steps"})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-started // a has completed, b runs
	p := job.Progress()
	fmt.Println(p)
	fmt.Printf("%d running, %.0f%% completed\n", p.Running, p.Percent(dag.Completed))
	close(release)
	job.Wait()
	fmt.Println(job.Progress())
	// Output:
	// 1/3 done: 1 completed; 1 running
	// 1 running, 33% completed
	// 3/3 done: 3 completed
}

// A panic in a Func fails its attempt with a *PanicError, which holds the
// value and the stack from the function that panicked.
func ExamplePanicError() {
	job, err := dag.Run(context.Background(), []dag.Task{{
		Name: "parse",
		Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			var fields []string
			return map[string]any{"second": fields[1]}, nil // index out of range
		},
	}}, dag.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = job.Wait()
	var pe *dag.PanicError
	if errors.As(err, &pe) {
		fmt.Println(pe.Value)
		frame, _, _ := strings.Cut(string(pe.Stack), "(")
		fmt.Println(frame) // the first frame: the Func that panicked
	}
	// Output:
	// runtime error: index out of range [1] with length 0
	// github.com/dagrun/dag_test.ExamplePanicError.func1
}

// Wait returns a *TaskError naming the task that failed the job; the
// task's own error is found through it.
func ExampleTaskError() {
	errNoStock := errors.New("out of stock")
	job, err := dag.Run(context.Background(), []dag.Task{
		{Name: "order", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, errNoStock
		}},
		{Name: "ship", DependsOn: []string{"order"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, nil
		}},
	}, dag.Options{Name: "checkout"})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := job.Wait()
	var te *dag.TaskError
	if errors.As(err, &te) {
		fmt.Println("failed task:", te.Task, "attempts:", te.Attempts)
	}
	fmt.Println(errors.Is(err, errNoStock))
	fmt.Println(err)
	fmt.Println(res.State, res.Tasks["ship"].State)
	// Output:
	// failed task: order attempts: 1
	// true
	// dag: job "checkout": task "order" failed after 1 attempt: out of stock
	// failed canceled
}

// A task is retried after a failed attempt while retries remain; wrap an
// error with backoff.Permanent to stop at once.
func Example_retries() {
	calls := 0
	job, err := dag.Run(context.Background(), []dag.Task{{
		Name:       "flaky",
		MaxRetries: 3,
		Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			calls++
			if calls < 3 {
				return nil, fmt.Errorf("try %d: connection reset", calls)
			}
			return map[string]any{"answer": 42}, nil
		},
	}}, dag.Options{
		// No delay between attempts, for the example; the default is
		// exponential backoff from 100 ms.
		Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := job.Wait()
	fmt.Println(res.Context["answer"], res.Tasks["flaky"].Attempts, err)
	// Output: 42 3 <nil>
}

// A TaskFunc is a plain function: test it with ValuesOf.
func ExampleValuesOf() {
	double := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		n, err := dag.Lookup[int](in, "n")
		if err != nil {
			return nil, err
		}
		return map[string]any{"doubled": 2 * n}, nil
	}
	out, err := double(context.Background(), dag.ValuesOf(map[string]any{"n": 21}))
	fmt.Println(out, err)
	_, err = double(context.Background(), dag.ValuesOf(map[string]any{"n": "21"}))
	fmt.Println(err)
	// Output:
	// map[doubled:42] <nil>
	// dag: key "n" holds a value of type string, not int
}

// Lookup reads a typed value; a missing key matches ErrMissingKey.
func ExampleLookup() {
	in := dag.ValuesOf(map[string]any{"user": "ada"})
	user, err := dag.Lookup[string](in, "user")
	fmt.Println(user, err)
	_, err = dag.Lookup[string](in, "email")
	fmt.Println(errors.Is(err, dag.ErrMissingKey), err)
	// Output:
	// ada <nil>
	// true dag: key "email" is not in the job context
}

// Validate reports every problem at once, each naming its task.
func ExampleValidate() {
	nop := func(ctx context.Context, in dag.Values) (map[string]any, error) { return nil, nil }
	err := dag.Validate([]dag.Task{
		{Name: "a", Func: nop, DependsOn: []string{"c"}},
		{Name: "b", Func: nop, DependsOn: []string{"a"}},
		{Name: "c", Func: nop, DependsOn: []string{"b", "d"}},
		{Name: "e"},
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, dag.ErrCycle), errors.Is(err, dag.ErrMissingDependency), errors.Is(err, dag.ErrInvalidTask))
	// Output:
	// dag: task "e" has a nil Func
	// dag: task "c" depends on "d", which is not declared
	// dag: dependency cycle: a -> b -> c -> a (each task depends on the one before it); remove one of these dependencies
	// true true true
}

// LogEvent logs one event; a loop over the events with LogEvent is
// LogEvents that the program can wait for before it exits.
func ExampleLogEvent() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	events := make(chan dag.Event)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for e := range events {
			dag.LogEvent(logger, e)
		}
	}()
	job, err := dag.Run(context.Background(), []dag.Task{{
		Name: "hello",
		Func: func(ctx context.Context, in dag.Values) (map[string]any, error) { return nil, nil },
	}}, dag.Options{Name: "greeter", Events: events})
	if err != nil {
		fmt.Println(err)
		return
	}
	job.Wait()
	<-logged
	// The logger's level is Info: the debug records (ready, running) are
	// left out.

	// Output:
	// level=INFO msg="dag: job" job=greeter from=pending to=running
	// level=INFO msg="dag: task" job=greeter task=hello from=running to=completed attempt=1
	// level=INFO msg="dag: job" job=greeter from=running to=completed
}
