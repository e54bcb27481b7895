package dag_test

// Events: the exact stream of a job, event times, a slow reader, and
// logging with LogEvents.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// TestEventsExactSequence checks the whole stream of a small job, in
// order: retries, a failure with ContinueOnFailure, the errors carried.
func TestEventsExactSequence(t *testing.T) {
	t.Parallel()
	for _, mp := range parallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			var aCalls atomic.Int32
			tasks := []dag.Task{
				{Name: "a", MaxRetries: 1, Func: script(&aCalls, fail(errBoom), succeed(map[string]any{"a": 1}))},
				{Name: "b", DependsOn: []string{"a"}, ContinueOnFailure: true, MaxRetries: dag.NoRetries, Func: fail(errBang)},
				{Name: "c", DependsOn: []string{"b"}, Func: succeed(map[string]any{"c": 1})},
			}
			opts := dag.Options{Name: "seq", MaxParallel: mp, MaxRetries: 3, Backoff: zeroBackoff}
			out := runJob(t, tasks, opts)
			ev := func(task string, from, to dag.State, att int, err error) dag.Event {
				return dag.Event{Job: "seq", Task: task, From: from, To: to, Attempt: att, Err: err}
			}
			want := []dag.Event{
				ev("", dag.Pending, dag.Running, 0, nil),
				ev("a", dag.Pending, dag.Ready, 1, nil),
				ev("a", dag.Ready, dag.Running, 1, nil),
				ev("a", dag.Running, dag.Retrying, 1, errBoom),
				ev("a", dag.Retrying, dag.Ready, 2, nil),
				ev("a", dag.Ready, dag.Running, 2, nil),
				ev("a", dag.Running, dag.Completed, 2, nil),
				ev("b", dag.Pending, dag.Ready, 1, nil),
				ev("b", dag.Ready, dag.Running, 1, nil),
				ev("b", dag.Running, dag.Failed, 1, errBang),
				ev("c", dag.Pending, dag.Ready, 1, nil),
				ev("c", dag.Ready, dag.Running, 1, nil),
				ev("c", dag.Running, dag.Completed, 1, nil),
				ev("", dag.Running, dag.Completed, 0, nil),
			}
			if diff := cmp.Diff(want, out.Events, ignoreTimes); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventsTimesNeverGoBack runs wide jobs on real time, where workers
// finish at once: event times must follow the order of the events, and no
// task may be stamped Started before its dependencies' Finished.
func TestEventsTimesNeverGoBack(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		var tasks []dag.Task
		for i := range 30 {
			task := dag.Task{Name: fmt.Sprint("t", i), Func: succeed(nil)}
			if i >= 10 {
				task.DependsOn = []string{fmt.Sprint("t", i%10)}
			}
			tasks = append(tasks, task)
		}
		out := runJob(t, tasks, dag.Options{Name: "times", MaxParallel: 2})
		for i := 1; i < len(out.Events); i++ {
			if e, prev := out.Events[i], out.Events[i-1]; e.Time.Before(prev.Time) {
				t.Errorf("round %d: event %d (%v) is at %v, %v before the event before it (%v)",
					round, i, e, e.Time.Format(time.StampNano), prev.Time.Sub(e.Time), prev)
			}
		}
		for _, task := range tasks {
			for _, d := range task.DependsOn {
				if s, f := out.Res.Tasks[task.Name].Started, out.Res.Tasks[d].Finished; s.Before(f) {
					t.Errorf("round %d: task %s Started %v before its dependency %s Finished", round, task.Name, f.Sub(s), d)
				}
			}
		}
		if t.Failed() {
			return
		}
	}
}

// TestEventsSlowReader reads no event until Wait has returned: the job
// must not wait for its reader, and no event may be lost.
func TestEventsSlowReader(t *testing.T) {
	t.Parallel()
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 100
				tasks := make([]dag.Task, n)
				for i := range tasks {
					tasks[i] = dag.Task{Name: fmt.Sprint("t", i), Func: succeed(nil)}
					if i%3 != 0 {
						tasks[i].DependsOn = []string{fmt.Sprint("t", i-1)}
					}
				}
				ch := make(chan dag.Event) // unbuffered, and not read yet
				opts := dag.Options{Name: "slow-reader", MaxParallel: mp, Events: ch}
				job, err := dag.Run(t.Context(), tasks, opts)
				if err != nil {
					t.Fatal(err)
				}
				// In the bubble, a job blocked on its reader deadlocks this
				// Wait and fails the test.
				res, err := waitJob(t, job)
				if err != nil {
					t.Fatalf("Wait() = %v; want nil", err)
				}
				var evs []dag.Event
				for e := range ch {
					evs = append(evs, e)
				}
				if len(evs) != 2+3*n {
					t.Errorf("%d events; want %d", len(evs), 2+3*n)
				}
				checkJob(t, tasks, opts, outcome{Res: res, Err: err, Events: evs})
			})
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestEventsLogEvents logs a job with LogEvents on a text handler at debug
// level and compares every line; the logger's goroutine must end when the
// job closes the channel (the bubble fails otherwise).
func TestEventsLogEvents(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
			Level: slog.LevelDebug,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.Attr{}
				}
				return a
			},
		}))
		var aCalls atomic.Int32
		tasks := []dag.Task{
			{Name: "a", MaxRetries: 1, Func: script(&aCalls, fail(errBoom), succeed(nil))},
			{Name: "b", DependsOn: []string{"a"}, Func: succeed(nil)},
			{Name: "c", ContinueOnFailure: true, Func: fail(errBang)},
		}
		job, err := dag.Run(t.Context(), tasks, dag.Options{Name: "logs", MaxParallel: 1, Backoff: zeroBackoff, Events: dag.LogEvents(logger)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := job.Wait(); err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		synctest.Wait() // the logger has written everything and ended
		want := strings.Join([]string{
			`level=INFO msg="dag: job" job=logs from=pending to=running`,
			`level=DEBUG msg="dag: task" job=logs task=a from=pending to=ready attempt=1`,
			`level=DEBUG msg="dag: task" job=logs task=c from=pending to=ready attempt=1`,
			`level=DEBUG msg="dag: task" job=logs task=a from=ready to=running attempt=1`,
			`level=WARN msg="dag: task" job=logs task=a from=running to=retrying attempt=1 err=boom`,
			`level=DEBUG msg="dag: task" job=logs task=a from=retrying to=ready attempt=2`,
			`level=DEBUG msg="dag: task" job=logs task=a from=ready to=running attempt=2`,
			`level=INFO msg="dag: task" job=logs task=a from=running to=completed attempt=2`,
			`level=DEBUG msg="dag: task" job=logs task=b from=pending to=ready attempt=1`,
			`level=DEBUG msg="dag: task" job=logs task=b from=ready to=running attempt=1`,
			`level=INFO msg="dag: task" job=logs task=b from=running to=completed attempt=1`,
			`level=DEBUG msg="dag: task" job=logs task=c from=ready to=running attempt=1`,
			`level=ERROR msg="dag: task" job=logs task=c from=running to=failed attempt=1 err=bang`,
			`level=INFO msg="dag: job" job=logs from=running to=completed`,
		}, "\n") + "\n"
		if diff := cmp.Diff(want, buf.String()); diff != "" {
			t.Errorf("log mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestEventString checks the one-line form of events: the job's name
// (left out when empty), the task, the transition, the attempt, and the
// error without its "dag: " prefix.
func TestEventString(t *testing.T) {
	t.Parallel()
	timeout := fmt.Errorf("dag: task %q timed out after 1s: %w", "fetch", context.DeadlineExceeded)
	for _, tc := range []struct {
		e    dag.Event
		want string
	}{
		{dag.Event{Job: "nightly", From: dag.Pending, To: dag.Running}, `job "nightly" pending -> running`},
		{dag.Event{From: dag.Pending, To: dag.Running}, `job pending -> running`},
		{dag.Event{Job: "nightly", Task: "fetch", From: dag.Pending, To: dag.Ready, Attempt: 1}, `job "nightly": task "fetch" pending -> ready (attempt 1)`},
		{dag.Event{Task: "fetch", From: dag.Ready, To: dag.Running, Attempt: 2}, `task "fetch" ready -> running (attempt 2)`},
		{dag.Event{Job: "nightly", Task: "fetch", From: dag.Running, To: dag.Retrying, Attempt: 1, Err: errBoom}, `job "nightly": task "fetch" running -> retrying (attempt 1): boom`},
		{dag.Event{Job: "nightly", Task: "fetch", From: dag.Running, To: dag.Failed, Attempt: 3, Err: timeout}, `job "nightly": task "fetch" running -> failed (attempt 3): task "fetch" timed out after 1s: context deadline exceeded`},
		{dag.Event{Job: "nightly", Task: "g/c", From: dag.Pending, To: dag.Skipped}, `job "nightly": task "g/c" pending -> skipped`},
		{dag.Event{Job: "nightly", From: dag.Running, To: dag.Canceled, Err: errors.New("dag: job \"nightly\" was canceled: context canceled")}, `job "nightly" running -> canceled: job "nightly" was canceled: context canceled`},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%#v.String() = %q; want %q", tc.e, got, tc.want)
		}
	}
}
