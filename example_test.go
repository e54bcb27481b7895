package dag_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
)

// dice chops a fruit: its letters, sorted.
func dice(fruit string) string {
	b := []byte(fruit)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return string(b)
}

// smoothie is the smoothie job of Daguerreo's README: dice two fruits in
// parallel, blend them with the liquids, and garnish if that works out.
func smoothie() []dag.Task {
	diceTask := func(fruit, key string) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			fruits, err := dag.Lookup[[]string](in, "fruit")
			if err != nil {
				return nil, err
			}
			if !slices.Contains(fruits, fruit) {
				return nil, fmt.Errorf("no %s in the kitchen", fruit)
			}
			return map[string]any{key: dice(fruit)}, nil
		}
	}
	return []dag.Task{
		{Name: "dice-banana", Func: diceTask("banana", "diced-banana")},
		{Name: "dice-mango", Func: diceTask("mango", "diced-mango")},
		{
			Name:      "blend",
			DependsOn: []string{"dice-banana", "dice-mango"},
			Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				banana, _ := dag.Lookup[string](in, "diced-banana")
				mango, _ := dag.Lookup[string](in, "diced-mango")
				liquids, _ := dag.Lookup[[]string](in, "liquids")
				return map[string]any{"smoothie": dice(banana + mango + strings.Join(liquids, ""))}, nil
			},
		},
		{
			Name:              "garnish",
			DependsOn:         []string{"blend"},
			ContinueOnFailure: true, // a smoothie without sugar is still a smoothie
			Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				s, err := dag.Lookup[string](in, "smoothie")
				if err != nil {
					return nil, err
				}
				return map[string]any{"smoothie": "sugar + " + s}, nil
			},
		},
	}
}

// The smoothie job of Daguerreo's README. MaxParallel is 1 only so that the
// printed order is the same on every run.
func ExampleRun() {
	events := make(chan dag.Event)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for e := range events {
			fmt.Println(e)
		}
	}()

	job, err := dag.Run(context.Background(), smoothie(), dag.Options{
		Name: "smoothie",
		Context: map[string]any{
			"fruit":   []string{"banana", "mango"},
			"liquids": []string{"coconut-milk", "water"},
		},
		MaxParallel: 1,
		Timeout:     3 * time.Second,
		Events:      events,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := job.Wait()
	<-logged
	fmt.Println(res.State, err)
	for _, k := range slices.Sorted(maps.Keys(res.Context)) {
		fmt.Printf("%s: %v\n", k, res.Context[k])
	}
	// Output:
	// job pending -> running
	// task "dice-banana" pending -> ready (attempt 1)
	// task "dice-mango" pending -> ready (attempt 1)
	// task "dice-banana" ready -> running (attempt 1)
	// task "dice-banana" running -> completed (attempt 1)
	// task "dice-mango" ready -> running (attempt 1)
	// task "dice-mango" running -> completed (attempt 1)
	// task "blend" pending -> ready (attempt 1)
	// task "blend" ready -> running (attempt 1)
	// task "blend" running -> completed (attempt 1)
	// task "garnish" pending -> ready (attempt 1)
	// task "garnish" ready -> running (attempt 1)
	// task "garnish" running -> completed (attempt 1)
	// job running -> completed
	// completed <nil>
	// diced-banana: aaabnn
	// diced-mango: agmno
	// fruit: [banana mango]
	// liquids: [coconut-milk water]
	// smoothie: sugar + -aaaaabccegiklmmnnnnooorttuw
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
