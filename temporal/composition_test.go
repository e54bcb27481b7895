package dagtemporal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	dagtemporal "github.com/dagrun/dag/temporal"
	"github.com/google/go-cmp/cmp"
)

func put(key string, v any) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		return map[string]any{key: v}, nil
	}
}

// composed uses every kind of task: a group, a Map, an Expand whose tasks
// hold a group of their own, When branches joined by a trigger rule, and a
// task that skips itself.
func composed() []dag.Task {
	square := dag.Map("square", "numbers", "squares", func(ctx context.Context, n int) (int, error) {
		return n * n, nil
	})
	square.DependsOn = []string{"list"}
	isLarge := func(in dag.Values) bool {
		n, _ := dag.Lookup[int](in, "size")
		return n > 100
	}
	return []dag.Task{
		{Name: "list", Func: put("numbers", []int{1, 2, 3, 4})},
		square,
		{Name: "build", DependsOn: []string{"list"}, Sub: []dag.Task{
			{Name: "compile", Func: put("binary", "app")},
			{Name: "test", DependsOn: []string{"compile"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				bin, err := dag.Lookup[string](in, "binary")
				return map[string]any{"tested": bin + " ok"}, err
			}},
		}},
		{Name: "fan", DependsOn: []string{"square"}, Expand: func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
			squares, err := dag.Lookup[[]int](in, "squares")
			if err != nil {
				return nil, err
			}
			return []dag.Task{
				{Name: "sum", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
					s := 0
					for _, q := range squares {
						s += q
					}
					return map[string]any{"sum": s}, nil
				}},
				{Name: "nested", DependsOn: []string{"sum"}, Sub: []dag.Task{
					{Name: "double", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
						s, err := dag.Lookup[int](in, "sum")
						return map[string]any{"double": 2 * s}, err
					}},
				}},
			}, nil
		}},
		{Name: "measure", Func: put("size", 7)},
		{Name: "large", DependsOn: []string{"measure"}, When: isLarge, Func: put("route", "large")},
		{Name: "small", DependsOn: []string{"measure"}, When: func(in dag.Values) bool { return !isLarge(in) }, Func: put("route", "small")},
		{Name: "join", DependsOn: []string{"large", "small"}, Trigger: dag.NoneFailed, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			route, _ := dag.Lookup[string](in, "route")
			return map[string]any{"done": "via " + route}, nil
		}},
		{Name: "sync", MaxRetries: 3, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, fmt.Errorf("no new files: %w", dag.ErrSkip)
		}},
		{Name: "index", DependsOn: []string{"sync"}, Func: put("indexed", true)},
		{Name: "ship", DependsOn: []string{"build", "fan", "join"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			d, err := dag.Lookup[int](in, "double")
			if err != nil {
				return nil, err
			}
			t, err := dag.Lookup[string](in, "tested")
			return map[string]any{"shipped": fmt.Sprintf("%s, %d", t, d)}, err
		}},
	}
}

// sameJob compares what two runs of one job did: the context and each
// task's state, attempts, output and error text.
func sameJob(t *testing.T, want, got dag.Result) {
	t.Helper()
	if diff := cmp.Diff(want.Context, got.Context); diff != "" {
		t.Errorf("Result.Context (-dag.Run +temporal):\n%s", diff)
	}
	type task struct {
		State    dag.State
		Attempts int
		Output   map[string]any
		Err      string
	}
	summary := func(r dag.Result) map[string]task {
		m := map[string]task{}
		for name, tr := range r.Tasks {
			s := task{State: tr.State, Attempts: tr.Attempts, Output: tr.Output}
			if tr.Err != nil {
				s.Err = tr.Err.Error()
			}
			m[name] = s
		}
		return m
	}
	if diff := cmp.Diff(summary(want), summary(got)); diff != "" {
		t.Errorf("Result.Tasks (-dag.Run +temporal):\n%s", diff)
	}
	if want.State != got.State {
		t.Errorf("State = %v; dag.Run: %v", got.State, want.State)
	}
}

func TestComposition(t *testing.T) {
	t.Parallel()
	want, err := runCore(t, composed(), dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := execute(t, env(t, "composed", composed()), "composed", dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameJob(t, want, got)
	if got.Context["shipped"] != "app ok, 60" {
		t.Errorf("shipped = %v; want app ok, 60", got.Context["shipped"])
	}
}

func TestKeepGoing(t *testing.T) {
	t.Parallel()
	fail := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		return nil, errors.New("disk full")
	}
	tasks := []dag.Task{
		{Name: "backup", Func: fail},
		{Name: "report", Func: put("report", 1)},
		{Name: "upload", DependsOn: []string{"backup"}, Func: put("upload", 1)},
		{Name: "group", Sub: []dag.Task{
			{Name: "bad", Func: fail},
			{Name: "good", Func: put("good", 1)},
		}},
		{Name: "alert", DependsOn: []string{"backup", "report"}, Trigger: dag.AnyFailed, Func: put("alerted", true)},
	}
	opts := dag.Options{KeepGoing: true, Name: "keep"}
	want, werr := runCore(t, tasks, opts)
	got, err := execute(t, env(t, "keep", tasks), "keep", opts)
	sameJob(t, want, got)
	if werr == nil || err == nil || werr.Error() != err.Error() {
		t.Errorf("Wait() = %v; dag.Run: %v", err, werr)
	}
	var te *dag.TaskError
	if !errors.As(err, &te) {
		t.Errorf("Wait() = %v; want a *dag.TaskError in it", err)
	}
}

func TestExpandReturningMapIsRefused(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "list", Func: put("numbers", []int{1, 2})},
		{Name: "fan", DependsOn: []string{"list"}, Expand: func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
			return []dag.Task{dag.Map("square", "numbers", "squares", func(ctx context.Context, n int) (int, error) {
				return n * n, nil
			})}, nil
		}},
	}
	res, err := execute(t, env(t, "mapinexpand", tasks), "mapinexpand", dag.Options{MaxRetries: 3})
	if !errors.Is(err, dag.ErrInvalidTask) || !strings.Contains(err.Error(), `"fan/square"`) {
		t.Errorf("Wait() = %v; want an error matching dag.ErrInvalidTask naming fan/square", err)
	}
	if n := res.Tasks["fan"].Attempts; n != 1 {
		t.Errorf("fan made %d attempts; want 1: the refusal is for good", n)
	}
}

type unregistered struct{ N int }

func TestNotSerializable(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{{Name: "odd", MaxRetries: 2, Func: put("odd", unregistered{1})}}
	_, err := execute(t, env(t, "odd", tasks), "odd", dag.Options{})
	var te *dag.TaskError
	if !errors.Is(err, dag.ErrNotSerializable) || !errors.As(err, &te) || te.Task != "odd" || te.Attempts != 1 {
		t.Fatalf("Wait() = %v; want a TaskError for odd after 1 attempt matching dag.ErrNotSerializable", err)
	}
	for _, want := range []string{`key "odd"`, "unregistered", "gob.Register"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
}

func TestNewInputRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts dag.Options
	}{
		{"Events", dag.Options{Events: make(chan dag.Event)}},
		{"Backoff", dag.Options{Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }}},
		{"Resume", dag.Options{Resume: &dag.Result{}}},
		{"Timeout", dag.Options{Timeout: time.Second}},
		{"Context", dag.Options{Context: map[string]any{"c": make(chan int)}}},
	} {
		_, err := dagtemporal.NewInput(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("NewInput with %s = %v; want an error naming it", tc.name, err)
		}
	}
}

func TestGroupTimeout(t *testing.T) {
	t.Parallel()
	// The test suite delivers the cancellation of an activity that has
	// already heartbeaten only 30 s later (it batches heartbeats): the
	// test lets the stuck task go once the job has ended.
	finished := make(chan struct{})
	ended := make(chan struct{}, 2)
	tasks := []dag.Task{
		{Name: "g", Timeout: time.Second, ContinueOnFailure: true, Sub: []dag.Task{
			{Name: "quick", Func: put("quick", 1)},
			{Name: "stuck", DependsOn: []string{"quick"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				defer func() { ended <- struct{}{} }()
				select {
				case <-ctx.Done():
				case <-finished:
				}
				return nil, context.Canceled
			}},
			{Name: "after", DependsOn: []string{"stuck"}, Func: put("after", 1)},
		}},
		{Name: "next", DependsOn: []string{"g"}, Trigger: dag.AllDone, Func: put("next", 1)},
	}
	want, werr := runCore(t, tasks, dag.Options{})
	got, err := execute(t, env(t, "gtimeout", tasks), "gtimeout", dag.Options{})
	close(finished)
	<-ended
	<-ended
	if (werr == nil) != (err == nil) {
		t.Errorf("Wait() = %v; dag.Run: %v", err, werr)
	}
	sameJob(t, want, got)
}
