package dag_test

// Failures: a task failing the job, panics recovered into *PanicError, and
// runtime.Goexit in a Func.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestFailTaskFailsJob is the classic failing task: the job fails, Wait
// names the task and wraps the user's error, the context keeps what
// completed, and the rest ends Canceled, with running attempts seeing
// their ctx canceled.
func TestFailTaskFailsJob(t *testing.T) {
	t.Parallel()
	for _, mp := range parallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				type seen struct{ err, cause error }
				dSaw := make(chan seen, 1)
				var dCalls atomic.Int32
				tasks := []dag.Task{
					{Name: "a", Func: succeed(map[string]any{"a": 1})},
					{Name: "b", DependsOn: []string{"a"}, Func: fail(errBoom)},
					{Name: "c", DependsOn: []string{"b"}, Func: succeed(map[string]any{"c": 1})},
					// d runs beside a and b when MaxParallel > 1, until
					// its ctx is canceled.
					{Name: "d", Func: script(&dCalls, func(ctx context.Context, _ dag.Values) (map[string]any, error) {
						<-ctx.Done()
						dSaw <- seen{ctx.Err(), context.Cause(ctx)}
						return map[string]any{"d": 1}, nil
					})},
					{Name: "e", DependsOn: []string{"d"}, Func: succeed(nil)},
				}
				opts := dag.Options{Name: "failjob", MaxParallel: mp, Context: map[string]any{"init": 0}}
				job, rec := startJob(t, t.Context(), tasks, opts)
				out := finishJob(t, job, rec, tasks, opts)

				var te *dag.TaskError
				if !errors.As(out.Err, &te) {
					t.Fatalf("Wait() = %v; want a *dag.TaskError", out.Err)
				}
				wantTE := dag.TaskError{Job: "failjob", Task: "b", Attempts: 1, Err: errBoom}
				if diff := cmp.Diff(wantTE, *te, cmpopts.EquateErrors()); diff != "" {
					t.Errorf("Wait's *TaskError mismatch (-want +got):\n%s", diff)
				}
				if !errors.Is(out.Err, errBoom) {
					t.Errorf("errors.Is(%v, errBoom) = false; want true", out.Err)
				}
				if msg := out.Err.Error(); !strings.Contains(msg, `"b"`) || !strings.Contains(msg, "boom") {
					t.Errorf("Wait's error %q does not name task \"b\" and its error", msg)
				}
				dAttempts := 0
				if mp > 1 {
					dAttempts = 1
				}
				want := dag.Result{
					State:   dag.Failed,
					Context: map[string]any{"init": 0, "a": 1},
					Tasks: map[string]dag.TaskResult{
						"a": {State: dag.Completed, Attempts: 1},
						"b": {State: dag.Failed, Attempts: 1, Err: errBoom},
						"c": {State: dag.Canceled},
						"d": {State: dag.Canceled, Attempts: dAttempts},
						"e": {State: dag.Canceled},
					},
				}
				if diff := cmp.Diff(want, out.Res, ignoreTimes); diff != "" {
					t.Errorf("Result mismatch (-want +got):\n%s", diff)
				}
				if mp > 1 {
					s := <-dSaw
					if !errors.Is(s.err, context.Canceled) {
						t.Errorf("d's ctx.Err() = %v; want context.Canceled", s.err)
					}
					if !errors.Is(s.cause, errBoom) {
						t.Errorf("context.Cause(d's ctx) = %v; want the failure of b", s.cause)
					}
				}
				if int(dCalls.Load()) != dAttempts {
					t.Errorf("d's Func ran %d times; want %d", dCalls.Load(), dAttempts)
				}
			})
		})
	}
}

// TestFailPanic checks that a panicking Func fails its attempt with a
// *dag.PanicError carrying the value and the stack, and is retried like
// any error.
func TestFailPanic(t *testing.T) {
	t.Parallel()
	t.Run("string value", func(t *testing.T) {
		tasks := []dag.Task{{Name: "p", Func: func(context.Context, dag.Values) (map[string]any, error) {
			panic("kaboom")
		}}}
		out := runJob(t, tasks, dag.Options{Name: "panics"})
		var pe *dag.PanicError
		if !errors.As(out.Err, &pe) {
			t.Fatalf("Wait() = %v; want a *dag.PanicError inside", out.Err)
		}
		if pe.Value != "kaboom" {
			t.Errorf("PanicError.Value = %#v; want \"kaboom\"", pe.Value)
		}
		if !bytes.Contains(pe.Stack, []byte("failure_test.go")) || !bytes.Contains(pe.Stack, []byte("TestFailPanic")) {
			t.Errorf("PanicError.Stack does not show the panicking Func:\n%s", pe.Stack)
		}
		if !strings.Contains(out.Err.Error(), "kaboom") {
			t.Errorf("Wait's error %q does not show the panic value", out.Err)
		}
		if tr := out.Res.Tasks["p"]; tr.State != dag.Failed || !errors.As(tr.Err, &pe) {
			t.Errorf("Result.Tasks[p] = %v, %v; want failed with a *dag.PanicError", tr.State, tr.Err)
		}
	})
	t.Run("error value", func(t *testing.T) {
		tasks := []dag.Task{{Name: "p", Func: func(context.Context, dag.Values) (map[string]any, error) {
			panic(fmt.Errorf("wrapped: %w", errBoom))
		}}}
		out := runJob(t, tasks, dag.Options{Name: "panics"})
		var pe *dag.PanicError
		if !errors.Is(out.Err, errBoom) || !errors.As(out.Err, &pe) {
			t.Errorf("Wait() = %v; want an error matching boom through a *dag.PanicError", out.Err)
		}
	})
	t.Run("retried", func(t *testing.T) {
		var calls atomic.Int32
		tasks := []dag.Task{{Name: "p", MaxRetries: 1, Func: script(&calls,
			func(context.Context, dag.Values) (map[string]any, error) { panic(errBang) },
			succeed(map[string]any{"p": 2}),
		)}}
		out := runJob(t, tasks, dag.Options{Name: "panics", Backoff: zeroBackoff})
		if out.Err != nil || calls.Load() != 2 {
			t.Fatalf("Wait() = %v after %d calls; want nil after 2", out.Err, calls.Load())
		}
		for _, e := range out.Events {
			var pe *dag.PanicError
			if e.To == dag.Retrying && (!errors.As(e.Err, &pe) || !errors.Is(e.Err, errBang)) {
				t.Errorf("%v: error %v; want a *dag.PanicError of bang", e, e.Err)
			}
		}
		if diff := cmp.Diff(map[string]any{"p": 2}, out.Res.Context); diff != "" {
			t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestFailGoexit checks that runtime.Goexit in a Func (as t.FailNow does)
// fails that attempt and never hangs the job, also with MaxParallel 1.
// In a synctest bubble a hang is a deadlock and fails the test.
func TestFailGoexit(t *testing.T) {
	t.Parallel()
	goexit := func(context.Context, dag.Values) (map[string]any, error) {
		runtime.Goexit()
		return nil, nil
	}
	cases := []struct {
		name      string
		tasks     func(calls *atomic.Int32) []dag.Task
		wantState dag.State
		wantTasks map[string]dag.State
	}{
		{
			name: "fails the job",
			tasks: func(c *atomic.Int32) []dag.Task {
				return []dag.Task{
					{Name: "g", Func: script(c, goexit)},
					{Name: "after", DependsOn: []string{"g"}, Func: succeed(nil)},
				}
			},
			wantState: dag.Failed,
			wantTasks: map[string]dag.State{"g": dag.Failed, "after": dag.Canceled},
		},
		{
			name: "retried, then succeeds",
			tasks: func(c *atomic.Int32) []dag.Task {
				return []dag.Task{
					{Name: "g", MaxRetries: 2, Func: script(c, goexit, goexit, succeed(nil))},
					{Name: "after", DependsOn: []string{"g"}, Func: succeed(nil)},
				}
			},
			wantState: dag.Completed,
			wantTasks: map[string]dag.State{"g": dag.Completed, "after": dag.Completed},
		},
		{
			name: "with ContinueOnFailure the rest runs",
			tasks: func(c *atomic.Int32) []dag.Task {
				return []dag.Task{
					{Name: "g", ContinueOnFailure: true, Func: script(c, goexit)},
					{Name: "after", DependsOn: []string{"g"}, Func: succeed(nil)},
					{Name: "x", Func: succeed(nil)},
					{Name: "y", Func: succeed(nil)},
				}
			},
			wantState: dag.Completed,
			wantTasks: map[string]dag.State{"g": dag.Failed, "after": dag.Completed, "x": dag.Completed, "y": dag.Completed},
		},
	}
	for _, tc := range cases {
		for _, mp := range parallels {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var calls atomic.Int32
					tasks := tc.tasks(&calls)
					out := runJob(t, tasks, dag.Options{Name: "goexit", MaxParallel: mp, Backoff: zeroBackoff})
					if out.Res.State != tc.wantState {
						t.Errorf("Result.State = %v (%v); want %v", out.Res.State, out.Err, tc.wantState)
					}
					if diff := cmp.Diff(tc.wantTasks, statesOf(out.Res)); diff != "" {
						t.Errorf("task states mismatch (-want +got):\n%s", diff)
					}
					if tr := out.Res.Tasks["g"]; tr.State == dag.Failed && tr.Err == nil {
						t.Errorf("Result.Tasks[g].Err = nil after Goexit; want an error")
					}
				})
			})
		}
	}
}
