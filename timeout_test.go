package dag_test

// Per-attempt timeouts, in fake time: the attempt fails at its deadline,
// late results are discarded, abandoned attempts are counted.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// TestTimeoutAttempt checks per-attempt timeouts in fake time, with Funcs
// that honour their ctx and Funcs that ignore it: the attempt fails at the
// deadline with an error matching context.DeadlineExceeded, the job moves
// on at once, and an ignoring Func is counted as abandoned until it
// returns.
func TestTimeoutAttempt(t *testing.T) {
	t.Parallel()
	for _, honours := range []bool{true, false} {
		for _, mp := range parallels {
			t.Run(fmt.Sprintf("honours ctx %t/MaxParallel=%d", honours, mp), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					release := make(chan struct{})
					releaseNow := sync.OnceFunc(func() { close(release) })
					defer releaseNow()
					ctxErr := make(chan error, 1)
					tasks := []dag.Task{
						{Name: "slow", Timeout: time.Second, Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
							if honours {
								<-ctx.Done()
								ctxErr <- context.Cause(ctx)
								return nil, ctx.Err()
							}
							<-release
							return map[string]any{"late": true}, nil
						}},
						{Name: "after", DependsOn: []string{"slow"}, Func: succeed(nil)},
						{Name: "quick", Func: succeed(map[string]any{"quick": 1})},
					}
					opts := dag.Options{Name: "timeouts", MaxParallel: mp}
					t0 := time.Now()
					job, rec := startJob(t, t.Context(), tasks, opts)
					out := finishJob(t, job, rec, tasks, opts)
					if d := time.Since(t0); d < time.Second || d > time.Second+50*time.Millisecond {
						t.Errorf("Wait returned after %v; want within 50ms of the 1s timeout", d)
					}
					if !errors.Is(out.Err, context.DeadlineExceeded) {
						t.Errorf("Wait() = %v; want an error matching context.DeadlineExceeded", out.Err)
					}
					var te *dag.TaskError
					if !errors.As(out.Err, &te) || te.Task != "slow" {
						t.Errorf("Wait() = %v; want a *dag.TaskError for task \"slow\"", out.Err)
					}
					for _, e := range out.Events {
						if e.Task == "slow" && e.To == dag.Failed && e.Time.Sub(t0) != time.Second {
							t.Errorf("%v happened after %v; want at the 1s deadline", e, e.Time.Sub(t0))
						}
					}
					abandoned := 1
					if honours {
						abandoned = 0
						if err := <-ctxErr; !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("context.Cause of the attempt's ctx = %v; want context.DeadlineExceeded", err)
						}
					}
					quick := dag.TaskResult{State: dag.Canceled}
					ctx := map[string]any{}
					if mp > 1 {
						quick = dag.TaskResult{State: dag.Completed, Attempts: 1}
						ctx["quick"] = 1
					}
					want := dag.Result{
						State:   dag.Failed,
						Context: ctx,
						Tasks: map[string]dag.TaskResult{
							"slow":  {State: dag.Failed, Attempts: 1, Err: context.DeadlineExceeded, Abandoned: abandoned},
							"after": {State: dag.Canceled},
							"quick": quick,
						},
					}
					if diff := cmp.Diff(want, out.Res, ignoreTimes); diff != "" {
						t.Errorf("Result mismatch (-want +got):\n%s", diff)
					}
					if got := job.Progress().Abandoned; got != abandoned {
						t.Errorf("Progress().Abandoned = %d after Wait; want %d", got, abandoned)
					}
					releaseNow()
					synctest.Wait()
					if got := job.Progress().Abandoned; got != 0 {
						t.Errorf("Progress().Abandoned = %d once the Func returned; want 0", got)
					}
				})
			})
		}
	}
}

// TestTimeoutLateReturnWithinGrace lets a timed-out attempt return during
// the grace period, while another task runs and none is ready: the worker
// that ran it ends, and the grace period's end must not then abandon it,
// nor touch the other task's worker.
func TestTimeoutLateReturnWithinGrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		releaseA := make(chan struct{})
		releaseANow := sync.OnceFunc(func() { close(releaseA) })
		defer releaseANow()
		gateB := make(chan struct{})
		gateBNow := sync.OnceFunc(func() { close(gateB) })
		defer gateBNow()
		tasks := []dag.Task{
			{Name: "a", Timeout: time.Second, MaxRetries: dag.NoRetries, ContinueOnFailure: true, Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-releaseA // ignores ctx
				return nil, nil
			}},
			{Name: "b", Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-gateB
				return map[string]any{"b": 1}, nil
			}},
		}
		opts := dag.Options{Name: "grace", MaxParallel: 2}
		job, rec := startJob(t, t.Context(), tasks, opts)
		time.Sleep(time.Second + 5*time.Millisecond) // a timed out at 1s
		releaseANow()                                // a's Func returns within the grace period
		synctest.Wait()
		time.Sleep(time.Second) // the grace period is long over
		if p := job.Progress(); p.Running != 1 || p.Abandoned != 0 {
			t.Errorf("Progress() = %+v while b runs; want 1 running, none abandoned", p)
		}
		gateBNow()
		out := finishJob(t, job, rec, tasks, opts)
		if out.Err != nil {
			t.Fatalf("Wait() = %v; want nil", out.Err)
		}
		want := map[string]dag.TaskResult{
			"a": {State: dag.Failed, Attempts: 1, Err: context.DeadlineExceeded},
			"b": {State: dag.Completed, Attempts: 1},
		}
		if diff := cmp.Diff(want, out.Res.Tasks, ignoreTimes); diff != "" {
			t.Errorf("Result.Tasks mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestTimeoutRetryDiscardsLateResult times out a first attempt whose Func
// ignores ctx, retries, and lets the first attempt return while the job
// still runs: its late result is seen by no one.
func TestTimeoutRetryDiscardsLateResult(t *testing.T) {
	t.Parallel()
	for _, mp := range parallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release1 := make(chan struct{})
				release1Now := sync.OnceFunc(func() { close(release1) })
				defer release1Now()
				gateB := make(chan struct{})
				gateBNow := sync.OnceFunc(func() { close(gateB) })
				defer gateBNow()
				var aCalls atomic.Int32
				bSaw := make(chan []any, 1)
				tasks := []dag.Task{
					{Name: "a", Timeout: time.Second, MaxRetries: 1, Func: script(&aCalls,
						func(context.Context, dag.Values) (map[string]any, error) {
							<-release1
							return map[string]any{"v": "late", "late": true}, nil
						},
						succeed(map[string]any{"v": "second"}),
					)},
					{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
						<-gateB
						v, _ := in.Get("v")
						_, late := in.Get("late")
						bSaw <- []any{v, late}
						return nil, nil
					}},
				}
				opts := dag.Options{Name: "late", MaxParallel: mp, Backoff: zeroBackoff}
				t0 := time.Now()
				job, rec := startJob(t, t.Context(), tasks, opts)
				time.Sleep(2 * time.Second) // fake: a times out at 1s, retries, and b waits
				synctest.Wait()
				release1Now() // the late result arrives while b runs
				synctest.Wait()
				gateBNow()
				out := finishJob(t, job, rec, tasks, opts)
				if out.Err != nil {
					t.Fatalf("Wait() = %v; want nil", out.Err)
				}
				if diff := cmp.Diff([]any{"second", false}, <-bSaw); diff != "" {
					t.Errorf("b saw (v, late) mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(map[string]any{"v": "second"}, out.Res.Context); diff != "" {
					t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
				}
				if tr := out.Res.Tasks["a"]; tr.State != dag.Completed || tr.Attempts != 2 || tr.Abandoned != 0 {
					t.Errorf("Result.Tasks[a] = %+v; want completed after 2 attempts, none abandoned", tr)
				}
				for _, e := range out.Events {
					if e.Task != "a" {
						continue
					}
					switch {
					case e.To == dag.Retrying:
						if !errors.Is(e.Err, context.DeadlineExceeded) || e.Time.Sub(t0) != time.Second {
							t.Errorf("%v after %v; want an error matching context.DeadlineExceeded at 1s", e, e.Time.Sub(t0))
						}
					case e.To == dag.Running && e.Attempt == 2:
						if d := e.Time.Sub(t0); d < time.Second || d > time.Second+50*time.Millisecond {
							t.Errorf("%v after %v; want within 50ms of the 1s timeout", e, d)
						}
					}
				}
			})
		})
	}
}
