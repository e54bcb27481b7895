package dag_test

// The errors a job returns: *TaskError, *PanicError, and the "dag: "
// prefix said once.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestRunTaskError checks the error Wait returns for a failed task: a
// *TaskError naming the job and the task, with the attempts made, through
// which errors.Is finds the task's own error.
func TestRunTaskError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		job      string
		retries  int
		err      error
		attempts int
		msg      []string
	}{
		{"named job, retried", "nightly", 2, fmt.Errorf("fetching: %w", errBoom), 3, []string{`job "nightly"`, `task "fetch"`, "3 attempts", "boom"}},
		{"unnamed job, once", "", dag.NoRetries, errBoom, 1, []string{`task "fetch"`, "1 attempt:", "boom"}},
		{"permanent", "nightly", 5, backoff.Permanent(fmt.Errorf("fetching: %w", errBoom)), 1, []string{`job "nightly"`, `task "fetch"`, "1 attempt:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{
				{Name: "fetch", MaxRetries: tc.retries, Func: func(context.Context, dag.Values) (map[string]any, error) {
					calls.Add(1)
					return nil, tc.err
				}},
				{Name: "after", DependsOn: []string{"fetch"}, Func: noop},
			}
			res, err := runTasks(t, tasks, dag.Options{Name: tc.job, Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
			if !errors.Is(err, errBoom) {
				t.Errorf("Wait() = %v; want an error matching the task's %v", err, errBoom)
			}
			var te *dag.TaskError
			if !errors.As(err, &te) {
				t.Fatalf("Wait() = %v; want a *TaskError", err)
			}
			if te.Job != tc.job || te.Task != "fetch" || te.Attempts != tc.attempts || !errors.Is(te.Err, errBoom) {
				t.Errorf("TaskError = {Job: %q, Task: %q, Attempts: %d, Err: %v}; want {%q, %q, %d, boom}", te.Job, te.Task, te.Attempts, te.Err, tc.job, "fetch", tc.attempts)
			}
			if int(calls.Load()) != tc.attempts {
				t.Errorf("Func called %d times; want %d", calls.Load(), tc.attempts)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Wait() = %q; want it to contain %q", err, s)
				}
			}
			if res.State != dag.Failed || res.Tasks["fetch"].State != dag.Failed || res.Tasks["after"].State != dag.Canceled {
				t.Errorf("states: job %v, fetch %v, after %v; want failed, failed, canceled", res.State, res.Tasks["fetch"].State, res.Tasks["after"].State)
			}
		})
	}
}

// TestRunPanicError checks that a panicking task fails with a *PanicError
// carrying the value and the stack, that errors.Is sees through it to an
// error value, and that the job reports it as a TaskError.
func TestRunPanicError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		value any
		isErr bool
	}{
		{"error", fmt.Errorf("wrapped: %w", errBang), true},
		{"string", "not an error", false},
		{"int", 42, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []dag.Task{{Name: "bomb", Func: func(context.Context, dag.Values) (map[string]any, error) {
				panicker(tc.value)
				return nil, nil
			}}}
			res, err := runTasks(t, tasks, dag.Options{Name: "pj"})
			var pe *dag.PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("Wait() = %v; want a *PanicError inside", err)
			}
			if diff := cmp.Diff(tc.value, pe.Value, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("PanicError.Value mismatch (-want +got):\n%s", diff)
			}
			if got := errors.Is(err, errBang); got != tc.isErr {
				t.Errorf("errors.Is(Wait(), bang) = %v; want %v", got, tc.isErr)
			}
			if !bytes.Contains(pe.Stack, []byte("panicker")) {
				t.Errorf("PanicError.Stack does not show the panicking function panicker:\n%s", pe.Stack)
			}
			if bytes.HasPrefix(pe.Stack, []byte("goroutine ")) {
				t.Errorf("PanicError.Stack starts with the goroutine header; want it trimmed")
			}
			if !strings.Contains(pe.Error(), fmt.Sprint(tc.value)) {
				t.Errorf("PanicError.Error() = %q; want it to show the value %v", pe.Error(), tc.value)
			}
			var te *dag.TaskError
			if !errors.As(err, &te) || te.Task != "bomb" || te.Job != "pj" {
				t.Errorf("Wait() = %v; want a *TaskError for task bomb of job pj", err)
			}
			if tr := res.Tasks["bomb"]; tr.State != dag.Failed || !errors.As(tr.Err, &pe) {
				t.Errorf("Result.Tasks[bomb] = %+v; want failed with a *PanicError", tr)
			}
		})
	}
}

// panicker panics with v; its name shows in the stack.
//
//go:noinline
func panicker(v any) { panic(v) }
