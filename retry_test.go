package dag_test

// Retries: how many attempts, the backoff delays (in fake time), retry
// delays holding no worker, backoff.Permanent and backoff.Stop.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// TestRetryCounts checks how often Func is called for the combinations of
// Task.MaxRetries, NoRetries and Options.MaxRetries.
func TestRetryCounts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		taskRetries int
		optRetries  int
		failures    int // attempts that fail before one succeeds
		wantCalls   int
		wantState   dag.State
	}{
		{"MaxRetries 3 always failing calls Func 4 times", 3, 0, 100, 4, dag.Failed},
		{"MaxRetries 3 succeeding on the third call", 3, 0, 2, 3, dag.Completed},
		{"MaxRetries 0 takes Options.MaxRetries", 0, 2, 100, 3, dag.Failed},
		{"Options.MaxRetries 0 means no retries", 0, 0, 100, 1, dag.Failed},
		{"NoRetries overrides Options.MaxRetries", dag.NoRetries, 5, 100, 1, dag.Failed},
		{"Task.MaxRetries overrides Options.MaxRetries", 1, 5, 100, 2, dag.Failed},
		{"no failure, no retry", 3, 3, 0, 1, dag.Completed},
	}
	for _, tc := range cases {
		for _, mp := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				var calls atomic.Int32
				tasks := []dag.Task{
					{Name: "r", MaxRetries: tc.taskRetries, Func: func(context.Context, dag.Values) (map[string]any, error) {
						if int(calls.Add(1)) <= tc.failures {
							return nil, errBoom
						}
						return map[string]any{"r": 1}, nil
					}},
					{Name: "other", Func: succeed(nil)},
				}
				opts := dag.Options{Name: "retries", MaxParallel: mp, MaxRetries: tc.optRetries, Backoff: zeroBackoff}
				out := runJob(t, tasks, opts)
				if got := int(calls.Load()); got != tc.wantCalls {
					t.Errorf("Func ran %d times; want %d", got, tc.wantCalls)
				}
				var wantErr error
				if tc.wantState == dag.Failed {
					wantErr = errBoom
				}
				want := dag.TaskResult{State: tc.wantState, Attempts: tc.wantCalls, Err: wantErr}
				if diff := cmp.Diff(want, out.Res.Tasks["r"], ignoreTimes); diff != "" {
					t.Errorf("Result.Tasks[r] mismatch (-want +got):\n%s", diff)
				}
				var retrying []dag.Event
				for _, e := range out.Events {
					if e.Task == "r" && e.To == dag.Retrying {
						retrying = append(retrying, e)
					}
				}
				if len(retrying) != min(tc.failures, tc.wantCalls-1) && tc.wantState == dag.Failed || tc.wantState == dag.Completed && len(retrying) != tc.wantCalls-1 {
					t.Errorf("%d Retrying events; want one per retry", len(retrying))
				}
				for _, e := range retrying {
					if !errors.Is(e.Err, errBoom) {
						t.Errorf("%v: error %v; want boom", e, e.Err)
					}
				}
			})
		}
	}
}

// TestRetryDelays checks, in fake time, that each retry waits for the
// BackOff's delay: a constant one, and the documented default (100 ms
// doubling, ±50% jitter).
func TestRetryDelays(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		backoff func() backoff.BackOff
		want    [][2]time.Duration // bounds of each delay
	}{
		{
			name:    "constant 1s",
			backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) },
			want:    [][2]time.Duration{{time.Second, time.Second}, {time.Second, time.Second}, {time.Second, time.Second}},
		},
		{
			name: "default exponential",
			want: [][2]time.Duration{
				{50 * time.Millisecond, 150 * time.Millisecond},
				{100 * time.Millisecond, 300 * time.Millisecond},
				{200 * time.Millisecond, 600 * time.Millisecond},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var starts []time.Time // written by the only task, read after Wait
				tasks := []dag.Task{{Name: "r", MaxRetries: 3, Func: func(context.Context, dag.Values) (map[string]any, error) {
					starts = append(starts, time.Now())
					return nil, errBoom
				}}}
				opts := dag.Options{Name: "delays", MaxParallel: 1, Backoff: tc.backoff}
				out := runJob(t, tasks, opts)
				if len(starts) != 4 {
					t.Fatalf("Func ran %d times; want 4", len(starts))
				}
				for i, w := range tc.want {
					if d := starts[i+1].Sub(starts[i]); d < w[0] || d > w[1] {
						t.Errorf("delay before retry %d = %v; want between %v and %v", i+1, d, w[0], w[1])
					}
				}
				var retryAt, readyAt []time.Time
				for _, e := range out.Events {
					switch {
					case e.To == dag.Retrying:
						retryAt = append(retryAt, e.Time)
					case e.From == dag.Retrying && e.To == dag.Ready:
						readyAt = append(readyAt, e.Time)
					}
				}
				for i := range retryAt {
					if i < len(readyAt) && readyAt[i].Sub(retryAt[i]) != starts[i+1].Sub(starts[i]) {
						t.Errorf("retry %d: Retrying at %v, Ready at %v; the delay between attempts was %v",
							i+1, retryAt[i], readyAt[i], starts[i+1].Sub(starts[i]))
					}
				}
			})
		})
	}
}

// TestRetryWaitHoldsNoWorker checks that a task waiting out a retry delay
// is Retrying and holds no worker: with MaxParallel 1 another task runs
// and completes during the delay.
func TestRetryWaitHoldsNoWorker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		var aCalls atomic.Int32
		gate := make(chan struct{})
		tasks := []dag.Task{
			{Name: "a", MaxRetries: 1, Func: script(&aCalls, fail(errBoom), succeed(map[string]any{"a": 2}))},
			{Name: "b", Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-gate
				return map[string]any{"b": 1}, nil
			}},
		}
		opts := dag.Options{
			Name: "slots", MaxParallel: 1,
			Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) },
		}
		job, rec := startJob(t, t.Context(), tasks, opts)
		synctest.Wait()
		want := dag.Progress{Job: "slots", State: dag.Running, Retrying: 1, Running: 1}
		if diff := cmp.Diff(want, job.Progress()); diff != "" {
			t.Errorf("Progress() during a's retry delay mismatch (-want +got):\n%s", diff)
		}
		close(gate)
		out := finishJob(t, job, rec, tasks, opts)
		if out.Err != nil {
			t.Fatalf("Wait() = %v; want nil", out.Err)
		}
		var bDone, aReady time.Time
		for _, e := range out.Events {
			if e.Task == "b" && e.To == dag.Completed {
				bDone = e.Time
			}
			if e.Task == "a" && e.From == dag.Retrying {
				aReady = e.Time
			}
		}
		if bDone.Sub(t0) != 0 || aReady.Sub(t0) != time.Hour {
			t.Errorf("b completed after %v and a's retry was ready after %v; want 0 and 1h", bDone.Sub(t0), aReady.Sub(t0))
		}
		if got := tasksOf(out.Events, dag.Running); !slices.Equal(got, []string{"a", "b", "a"}) {
			t.Errorf("start order %v; want [a b a]", got)
		}
	})
}

// TestRetryPermanent checks that backoff.Permanent ends the retries at once
// and that the recorded error is the one inside it, or, when the task
// wrapped the permanent error, the task's whole error: no message and no
// panic stack is lost.
func TestRetryPermanent(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("wrapped: %w", backoff.Permanent(errBoom))
	cases := []struct {
		name      string
		steps     []dag.TaskFunc
		wantCalls int
		wantErr   error
	}{
		{"on the first attempt", []dag.TaskFunc{fail(backoff.Permanent(errBoom))}, 1, errBoom},
		{"on the second attempt", []dag.TaskFunc{fail(errBang), fail(backoff.Permanent(errBoom))}, 2, errBoom},
		{"wrapped", []dag.TaskFunc{fail(wrapped)}, 1, wrapped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{{Name: "p", MaxRetries: 5, Func: script(&calls, tc.steps...)}}
			out := runJob(t, tasks, dag.Options{Name: "perm", Backoff: zeroBackoff})
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("Func ran %d times; want %d", calls.Load(), tc.wantCalls)
			}
			tr := out.Res.Tasks["p"]
			if tr.Err != tc.wantErr {
				t.Errorf("Result.Tasks[p].Err = %#v; want %#v", tr.Err, tc.wantErr)
			}
			if !errors.Is(out.Err, errBoom) {
				t.Errorf("errors.Is(%v, boom) = false; want true", out.Err)
			}
		})
	}
}

// TestRetryBackoffStop checks that a BackOff returning backoff.Stop ends
// the retries, leaving the last attempt's error.
func TestRetryBackoffStop(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		backoff   func() backoff.BackOff
		wantCalls int
	}{
		{"StopBackOff", func() backoff.BackOff { return &backoff.StopBackOff{} }, 1},
		{"WithMaxRetries 1", func() backoff.BackOff { return backoff.WithMaxRetries(&backoff.ZeroBackOff{}, 1) }, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{{Name: "s", MaxRetries: 5, Func: script(&calls, fail(errBoom))}}
			out := runJob(t, tasks, dag.Options{Name: "stop", Backoff: tc.backoff})
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("Func ran %d times; want %d", calls.Load(), tc.wantCalls)
			}
			if tr := out.Res.Tasks["s"]; tr.State != dag.Failed || tr.Err != errBoom {
				t.Errorf("Result.Tasks[s] = %v, %#v; want failed with the attempt's own error", tr.State, tr.Err)
			}
		})
	}
}
