package dag_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
)

// TestLookupMissingKeyNamesWriter: a task reading a key that a task it does
// not depend on wrote gets an error naming that task and the fix, and is
// not retried, whatever its retries say.
func TestLookupMissingKeyNamesWriter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	gate := make(chan struct{})
	tasks := []dag.Task{
		{Name: "writer", Func: func(context.Context, dag.Values) (map[string]any, error) {
			defer close(gate)
			return map[string]any{"n": 1}, nil
		}},
		{Name: "other", Func: func(context.Context, dag.Values) (map[string]any, error) {
			<-gate
			return nil, nil
		}},
		{Name: "reader", DependsOn: []string{"other"}, MaxRetries: 5, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			calls.Add(1)
			_, err := dag.Lookup[int](in, "n")
			return nil, err
		}},
	}
	// MaxParallel 2: other waits for writer, which must be able to run.
	_, err := runTasks(t, tasks, dag.Options{Backoff: zeroBackoff, MaxParallel: 2})
	if !errors.Is(err, dag.ErrMissingKey) {
		t.Fatalf("Wait() = %v; want ErrMissingKey", err)
	}
	msg := err.Error()
	for _, want := range []string{`"writer" wrote it`, "DependsOn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("reader ran %d times; a Lookup error is not retried", calls.Load())
	}
}

func TestLookupWrongType(t *testing.T) {
	t.Parallel()
	_, err := dag.Lookup[int](dag.ValuesOf(map[string]any{"n": "x"}), "n")
	if err == nil || err.Error() != `dag: key "n" holds a value of type string, not int` {
		t.Errorf("Lookup = %v", err)
	}
	if errors.Is(err, dag.ErrMissingKey) {
		t.Error("a wrong type matches ErrMissingKey")
	}
}

// TestTaskBackoffOverrides: a task's own Backoff is used instead of the
// job's, for that task only.
func TestTaskBackoffOverrides(t *testing.T) {
	t.Parallel()
	var own, job atomic.Int32
	flaky := func(calls *atomic.Int32) dag.TaskFunc {
		return func(context.Context, dag.Values) (map[string]any, error) {
			if calls.Add(1) < 3 {
				return nil, errBoom
			}
			return nil, nil
		}
	}
	var ownMade, jobMade atomic.Int32
	tasks := []dag.Task{
		{Name: "own", MaxRetries: 2, Func: flaky(&own), Backoff: func() backoff.BackOff { ownMade.Add(1); return &backoff.ZeroBackOff{} }},
		{Name: "job", MaxRetries: 2, Func: flaky(&job)},
	}
	_, err := runTasks(t, tasks, dag.Options{Backoff: func() backoff.BackOff {
		jobMade.Add(1)
		return backoff.NewConstantBackOff(time.Millisecond)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ownMade.Load() != 1 || jobMade.Load() != 1 {
		t.Errorf("task's Backoff made %d policies, job's %d; want 1 each", ownMade.Load(), jobMade.Load())
	}
}
