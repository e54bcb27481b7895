package dag_test

// Cancellation: Job.Cancel, Run's ctx and Options.Timeout stop the job;
// Cancel is idempotent; many goroutines may Wait.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestCancelStopsJob stops a running job in each of the four ways, with a
// slow task that honours or ignores its ctx, and checks the result, Wait's
// error, the time Wait takes, and abandoned attempts.
func TestCancelStopsJob(t *testing.T) {
	t.Parallel()
	kinds := []struct {
		name  string
		ctx   func(context.Context) (context.Context, context.CancelFunc) // Run's ctx
		opts  dag.Options
		stop  func(job *dag.Job, cancel context.CancelFunc) // at 1s; nil when the stop comes by itself
		want  error
		cause bool // Wait's error carries the cause of Run's ctx
	}{
		{name: "Job.Cancel", stop: func(j *dag.Job, _ context.CancelFunc) { j.Cancel() }, want: context.Canceled},
		{name: "Run's ctx canceled", stop: func(_ *dag.Job, c context.CancelFunc) { c() }, want: context.Canceled},
		{
			name: "Run's ctx deadline",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, time.Second)
			},
			want: context.DeadlineExceeded,
		},
		{name: "Options.Timeout", opts: dag.Options{Timeout: time.Second}, want: context.DeadlineExceeded},
	}
	for _, k := range kinds {
		for _, honours := range []bool{true, false} {
			for _, mp := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/honours ctx %t/MaxParallel=%d", k.name, honours, mp), func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						ctx, cancel := context.WithCancel(t.Context())
						defer cancel()
						if k.ctx != nil {
							var cancel2 context.CancelFunc
							ctx, cancel2 = k.ctx(ctx)
							defer cancel2()
						}
						release := make(chan struct{})
						releaseNow := sync.OnceFunc(func() { close(release) })
						defer releaseNow()
						saw := make(chan error, 1)
						tasks := []dag.Task{
							{Name: "q", Func: succeed(map[string]any{"q": 1})},
							{Name: "s", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
								if honours {
									<-ctx.Done()
									saw <- ctx.Err()
									return nil, ctx.Err()
								}
								<-release
								return map[string]any{"s": 1}, nil
							}},
							{Name: "c", DependsOn: []string{"q", "s"}, Func: succeed(map[string]any{"c": 1})},
						}
						opts := k.opts
						opts.Name, opts.MaxParallel, opts.Context = "stopme", mp, map[string]any{"init": 0}
						t0 := time.Now()
						job, rec := startJob(t, ctx, tasks, opts)
						time.Sleep(time.Second)
						if k.stop != nil {
							k.stop(job, cancel)
						}
						stopAt := t0.Add(time.Second)
						res, err := waitJob(t, job)
						if d := time.Since(stopAt); d > 50*time.Millisecond {
							t.Errorf("Wait returned %v after the stop; want at most 50ms", d)
						}
						out := outcome{Res: res, Err: err, Events: rec.events(t)}
						checkJob(t, tasks, opts, out)
						if !errors.Is(err, k.want) {
							t.Errorf("Wait() = %v; want an error matching %v", err, k.want)
						}
						abandoned := 1
						if honours {
							abandoned = 0
							if err := <-saw; !errors.Is(err, k.want) {
								t.Errorf("s's ctx.Err() = %v; want %v", err, k.want)
							}
						}
						want := dag.Result{
							State:   dag.Canceled,
							Context: map[string]any{"init": 0, "q": 1},
							Tasks: map[string]dag.TaskResult{
								"q": {State: dag.Completed, Attempts: 1},
								"s": {State: dag.Canceled, Attempts: 1, Abandoned: abandoned},
								"c": {State: dag.Canceled},
							},
						}
						if diff := cmp.Diff(want, res, ignoreTimes); diff != "" {
							t.Errorf("Result mismatch (-want +got):\n%s", diff)
						}
						wantP := dag.Progress{Job: "stopme", State: dag.Canceled, Completed: 1, Canceled: 2, Abandoned: abandoned}
						if diff := cmp.Diff(wantP, job.Progress()); diff != "" {
							t.Errorf("Progress() after Wait mismatch (-want +got):\n%s", diff)
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
}

// TestCancelIdempotent checks that Cancel may be called many times, at
// once, and after the end, without changing the answer.
func TestCancelIdempotent(t *testing.T) {
	t.Parallel()
	t.Run("many times at once, mid-run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tasks := []dag.Task{
				{Name: "a", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
					<-ctx.Done()
					return nil, ctx.Err()
				}},
				{Name: "b", DependsOn: []string{"a"}, Func: succeed(nil)},
			}
			opts := dag.Options{Name: "idem"}
			job, rec := startJob(t, t.Context(), tasks, opts)
			synctest.Wait()
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(job.Cancel)
			}
			wg.Wait()
			job.Cancel()
			out := finishJob(t, job, rec, tasks, opts)
			job.Cancel()
			if !errors.Is(out.Err, context.Canceled) || out.Res.State != dag.Canceled {
				t.Errorf("Wait() = %v, %v; want canceled, context.Canceled", out.Res.State, out.Err)
			}
			if n := len(tasksOf(out.Events, dag.Canceled)); n != 2 {
				t.Errorf("%d Canceled task events; want 2", n)
			}
		})
	})
	for _, tc := range []struct {
		name      string
		fn        dag.TaskFunc
		wantState dag.State
	}{
		{"after a completed job", succeed(map[string]any{"a": 1}), dag.Completed},
		{"after a failed job", fail(errBoom), dag.Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []dag.Task{{Name: "a", Func: tc.fn}}
			opts := dag.Options{Name: "idem"}
			out := runJob(t, tasks, opts)
			job, err := dag.Run(t.Context(), tasks, dag.Options{Name: "idem"})
			if err != nil {
				t.Fatal(err)
			}
			res1, err1 := waitJob(t, job)
			job.Cancel()
			job.Cancel()
			res2, err2 := job.Wait()
			if diff := cmp.Diff(res1, res2, cmpopts.EquateErrors()); diff != "" || err1 != err2 {
				t.Errorf("Wait() changed after Cancel: %v -> %v, (-before +after):\n%s", err1, err2, diff)
			}
			if res2.State != tc.wantState || out.Res.State != tc.wantState {
				t.Errorf("Result.State = %v; want %v", res2.State, tc.wantState)
			}
			if p := job.Progress(); p.State != tc.wantState || p.Canceled != 0 {
				t.Errorf("Progress() after Cancel = %+v; want state %v, nothing canceled", p, tc.wantState)
			}
		})
	}
}

// TestCancelWaitManyCallers checks that Wait from many goroutines, started
// before the end, returns the same answer, and that Done is closed exactly
// when the job has ended.
func TestCancelWaitManyCallers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		tasks := []dag.Task{
			{Name: "a", Func: succeed(map[string]any{"a": 1})},
			{Name: "b", DependsOn: []string{"a"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-gate
				return nil, errBoom
			}},
		}
		job, err := dag.Run(t.Context(), tasks, dag.Options{Name: "waiters"})
		if err != nil {
			t.Fatal(err)
		}
		type answer struct {
			res dag.Result
			err error
		}
		answers := make([]answer, 16)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				res, err := job.Wait()
				answers[i] = answer{res, err}
			})
		}
		synctest.Wait()
		select {
		case <-job.Done():
			t.Fatal("Done() is closed while a task runs")
		default:
		}
		close(gate)
		wg.Wait()
		<-job.Done() // a deadlock here fails the test
		res, err := job.Wait()
		var te *dag.TaskError
		if !errors.As(err, &te) || te.Task != "b" {
			t.Fatalf("Wait() = %v; want a *dag.TaskError for b", err)
		}
		for i, a := range answers {
			if a.err != err {
				t.Errorf("Wait() in goroutine %d = %v; want the same error value %v", i, a.err, err)
			}
			if diff := cmp.Diff(res, a.res, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("Wait() in goroutine %d: Result mismatch (-want +got):\n%s", i, diff)
			}
		}
	})
}
