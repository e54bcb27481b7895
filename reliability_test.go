package dag_test

// Reliability tests: graphs far larger than any test elsewhere, callers
// and task code that misbehave (mutating what they handed over, closing
// the events channel, panicking policies, Funcs that ignore ctx, panic,
// Goexit), and many jobs at once. Anything timed runs in a testing/synctest
// bubble, where time is fake and a hang is reported as a deadlock.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// hugeFlag makes the huge-graph tests use 1,000,000 tasks rather than the
// default run's 50,000, which keeps the package's tests fast under -race.
var hugeFlag = flag.Bool("dag.huge", false, "run the reliability tests' huge graphs at 1,000,000 tasks (slow under -race)")

// hugeN returns the size of the huge graphs: 1,000,000 with -dag.huge
// (and without -short), else 50,000.
func hugeN() int {
	if *hugeFlag && !testing.Short() {
		return 1_000_000
	}
	return 50_000
}

// hugeStack is the most stack any goroutine may use during a huge-graph
// test. Go grows a goroutine's stack up to 1 GB, so a graph walk that
// recursed once per task would pass on any graph a test can build; with
// this limit, one that recursed along 50,000 tasks would need at least
// 800 KB (16 bytes a frame, the least a call takes) and crash the test
// binary with "stack overflow", which fails the run. Everything dag does
// needs a few kilobytes.
const hugeStack = 512 << 10

// limitStack sets the limit of hugeStack until the test ends. The limit is
// the process's: a test that sets it must not run in parallel with others.
func limitStack(t *testing.T) {
	old := debug.SetMaxStack(hugeStack)
	t.Cleanup(func() { debug.SetMaxStack(old) })
}

// TestReliabilityHugeChain validates and runs a chain of hugeN tasks with
// two workers: neither validation nor scheduling may recurse along it,
// which the stack limit proves. Not parallel: see limitStack.
func TestReliabilityHugeChain(t *testing.T) {
	limitStack(t)
	n := hugeN()
	tasks := chain(n, false)
	t0 := time.Now()
	if err := dag.Validate(tasks); err != nil {
		t.Fatalf("Validate(%d-task chain) = %v; want nil", n, err)
	}
	validated := time.Since(t0)
	job, err := dag.Run(guard(t), tasks, dag.Options{MaxParallel: 2})
	if err != nil {
		t.Fatalf("Run(%d-task chain) = %v; want no error", n, err)
	}
	res, err := waitJob(t, job)
	allCompleted(t, res, err, tasks)
	t.Logf("%d-task chain: Validate %v, Validate+Run+Wait %v", n, validated.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}

// TestReliabilityHugeFanIn validates and runs a job in which one task
// depends on 20,000 others (100,000 with -dag.huge) and another names each
// of them twice. Not parallel: see limitStack.
func TestReliabilityHugeFanIn(t *testing.T) {
	limitStack(t)
	n := 20_000
	if hugeN() > 50_000 {
		n = 100_000
	}
	tasks := make([]dag.Task, n, n+2)
	deps := make([]string, n)
	for i := range n {
		key := taskName(i)
		deps[i] = key
		// Every dependency writes a key, so the sinks must see them all.
		tasks[i] = dag.Task{Name: key, Func: func(context.Context, dag.Values) (map[string]any, error) {
			return map[string]any{key: i}, nil
		}}
	}
	var seen [2]atomic.Int64
	sink := func(k int) dag.TaskFunc {
		return func(_ context.Context, in dag.Values) (map[string]any, error) {
			seen[k].Store(int64(in.Len()))
			return nil, nil
		}
	}
	tasks = append(tasks,
		dag.Task{Name: "sink", DependsOn: deps, Func: sink(0)},
		dag.Task{Name: "sink2", DependsOn: append(deps[:n:n], deps...), Func: sink(1)},
	)
	if err := dag.Validate(tasks); err != nil {
		t.Fatalf("Validate(a task with %d dependencies) = %v; want nil", n, err)
	}
	job, err := dag.Run(guard(t), tasks, dag.Options{})
	if err != nil {
		t.Fatalf("Run(a task with %d dependencies) = %v; want no error", n, err)
	}
	res, err := waitJob(t, job)
	allCompleted(t, res, err, tasks)
	for k := range seen {
		if got := seen[k].Load(); got != int64(n) {
			t.Errorf("%s saw %d keys; want %d, one per dependency", tasks[n+k].Name, got, n)
		}
	}
	if len(res.Context) != n {
		t.Errorf("Result.Context has %d keys; want %d", len(res.Context), n)
	}
}

// TestReliabilityHugeCycle checks that a cycle through every one of hugeN
// tasks is reported as ErrCycle, by Validate and Run, with the middle of
// the path elided, without overflowing the stack.
func TestReliabilityHugeCycle(t *testing.T) {
	limitStack(t)
	n := hugeN()
	tasks := chain(n, true)
	err := dag.Validate(tasks)
	if !errors.Is(err, dag.ErrCycle) {
		t.Fatalf("Validate(a %d-task cycle) = %v; want an error matching dag.ErrCycle", n, err)
	}
	for _, other := range []error{dag.ErrMissingDependency, dag.ErrDuplicateTask, dag.ErrInvalidTask} {
		if errors.Is(err, other) {
			t.Errorf("Validate(a %d-task cycle) matches %v too; want only dag.ErrCycle", n, other)
		}
	}
	msg := err.Error()
	// Shown in run order from the lowest-numbered task: 20 tasks at each
	// end and a count of the rest.
	wantStart := "dag: dependency cycle: t0 -> t1 -> t2 -> "
	wantMiddle := fmt.Sprintf(" -> t19 -> … (%d more) … -> %s -> ", n-40, taskName(n-20))
	wantEnd := fmt.Sprintf(" -> %s -> t0 (each task depends on the one before it); remove one of these dependencies", taskName(n-1))
	if !strings.HasPrefix(msg, wantStart) || !strings.Contains(msg, wantMiddle) || !strings.HasSuffix(msg, wantEnd) {
		t.Errorf("Validate(a %d-task cycle) = %q; want it to start %q, contain %q and end %q", n, msg, wantStart, wantMiddle, wantEnd)
	}
	if len(msg) > 1000 {
		t.Errorf("the cycle message is %d bytes long; want the path elided", len(msg))
	}
	job, rerr := dag.Run(context.Background(), tasks, dag.Options{})
	if job != nil || rerr == nil || rerr.Error() != msg {
		t.Errorf("Run(a %d-task cycle) = %v, %v; want nil and Validate's error", n, job, rerr)
	}
}

// TestReliabilityCallerMutatesAfterRun changes, while the job is blocked on
// a gate, everything the caller handed to Run: the tasks slice, the tasks'
// names, Funcs and DependsOn slices, and the Options.Context map. The job
// must go on with the tasks, dependencies and context as given.
func TestReliabilityCallerMutatesAfterRun(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	defer openGate()
	started := make(chan struct{})
	check := func(in dag.Values, want map[string]any) error {
		var got map[string]any = map[string]any{}
		for k, v := range in.All() {
			got[k] = v
		}
		if diff := cmp.Diff(want, got); diff != "" {
			return fmt.Errorf("the task saw the wrong context (-want +got):\n%s", diff)
		}
		return nil
	}
	initial := map[string]any{"init": "given", "deleted": 1}
	tasks := []dag.Task{
		{Name: "gate", Func: func(context.Context, dag.Values) (map[string]any, error) {
			close(started)
			<-gate
			return map[string]any{"gate": "out"}, nil
		}},
		{Name: "b", DependsOn: []string{"gate"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"b": 1}, check(in, map[string]any{"init": "given", "deleted": 1, "gate": "out"})
		}},
		{Name: "c", DependsOn: []string{"b", "gate"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"c": 1}, check(in, map[string]any{"init": "given", "deleted": 1, "gate": "out", "b": 1})
		}},
	}
	opts := dag.Options{Name: "mutated", Context: initial}
	job, err := dag.Run(guard(t), tasks, opts)
	if err != nil {
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	<-started

	// Everything the caller still holds, changed.
	failing := func(context.Context, dag.Values) (map[string]any, error) { return nil, errBoom }
	tasks[0].Name, tasks[0].Func = "renamed", failing
	tasks[1].DependsOn[0] = "c" // would make a cycle with c
	tasks[1].Func = failing
	tasks[2].DependsOn[0], tasks[2].DependsOn[1] = "nope", "nope"
	tasks[2].DependsOn = append(tasks[2].DependsOn, "b")
	tasks[2].Timeout = -1
	_ = append(tasks[:1], dag.Task{Name: "new", Func: failing}) // overwrites tasks[1] in place
	initial["init"] = "changed"
	initial["added"] = true
	delete(initial, "deleted")
	opts.Context = map[string]any{"other": 1}
	opts.Name = "other"

	openGate()
	res, err := waitJob(t, job)
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	want := dag.Result{
		State:   dag.Completed,
		Context: map[string]any{"init": "given", "deleted": 1, "gate": "out", "b": 1, "c": 1},
		Tasks: map[string]dag.TaskResult{
			"gate": {State: dag.Completed, Attempts: 1},
			"b":    {State: dag.Completed, Attempts: 1},
			"c":    {State: dag.Completed, Attempts: 1},
		},
	}
	if diff := cmp.Diff(want, res, ignoreTimes); diff != "" {
		t.Errorf("Result mismatch (-want +got):\n%s", diff)
	}
	if p := job.Progress(); p.Job != "mutated" {
		t.Errorf("Progress().Job = %q; want the name given to Run, \"mutated\"", p.Job)
	}
}

// TestReliabilityOutputMaps covers the maps Funcs return: nil, holding nil
// values, and one the task goes on writing to from its own goroutine after
// returning it.
func TestReliabilityOutputMaps(t *testing.T) {
	t.Parallel()
	t.Run("nil map", func(t *testing.T) {
		tasks := []dag.Task{
			{Name: "nil", Func: noop},
			{Name: "after", DependsOn: []string{"nil"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
				if in.Len() != 1 {
					return nil, fmt.Errorf("the task sees %v; want only the initial key", in)
				}
				return map[string]any{}, nil // empty, not nil: the same
			}},
		}
		job, err := dag.Run(guard(t), tasks, dag.Options{Context: map[string]any{"init": 0}})
		if err != nil {
			t.Fatalf("Run(…) = %v; want no error", err)
		}
		res, err := waitJob(t, job)
		allCompleted(t, res, err, tasks)
		if diff := cmp.Diff(map[string]any{"init": 0}, res.Context); diff != "" {
			t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("nil values", func(t *testing.T) {
		var nilErr error
		var nilPtr *int
		tasks := []dag.Task{
			{Name: "w", Func: func(context.Context, dag.Values) (map[string]any, error) {
				return map[string]any{"nil": nil, "nilerr": nilErr, "nilptr": nilPtr}, nil
			}},
			{Name: "r", DependsOn: []string{"w"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
				for _, key := range []string{"nil", "nilerr"} {
					if v, ok := in.Get(key); v != nil || !ok {
						return nil, fmt.Errorf("Get(%q) = %v, %t; want nil, true", key, v, ok)
					}
				}
				if v, ok := in.Get("nilptr"); v != any(nilPtr) || !ok {
					return nil, fmt.Errorf("Get(\"nilptr\") = %#v, %t; want (*int)(nil), true", v, ok)
				}
				if v, err := dag.Lookup[error](in, "nil"); v != nil || err != nil {
					return nil, fmt.Errorf("Lookup[error](\"nil\") = %v, %v; want nil, nil", v, err)
				}
				if v, err := dag.Lookup[*int](in, "nilptr"); v != nil || err != nil {
					return nil, fmt.Errorf("Lookup[*int](\"nilptr\") = %v, %v; want nil, nil", v, err)
				}
				if in.Len() != 3 {
					return nil, fmt.Errorf("Len() = %d; want 3", in.Len())
				}
				return nil, nil
			}},
		}
		job, err := dag.Run(guard(t), tasks, dag.Options{})
		if err != nil {
			t.Fatalf("Run(…) = %v; want no error", err)
		}
		res, err := waitJob(t, job)
		allCompleted(t, res, err, tasks)
		want := map[string]any{"nil": nil, "nilerr": nil, "nilptr": nilPtr}
		if diff := cmp.Diff(want, res.Context); diff != "" {
			t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("written after return", func(t *testing.T) {
		// The writer's goroutine changes its returned map once "r", which
		// depends on it, has started: by then the job has its copy. The
		// channels order the writes after the copy, so the race detector
		// would flag the job reading the map later.
		rStarted := make(chan struct{})
		mutated := make(chan struct{})
		var wg sync.WaitGroup
		defer wg.Wait()
		tasks := []dag.Task{
			{Name: "w", Func: func(context.Context, dag.Values) (map[string]any, error) {
				m := map[string]any{"k": "returned", "gone": 1}
				wg.Go(func() {
					<-rStarted
					for i := range 100 {
						m["k"] = i
						m["extra"+strconv.Itoa(i)] = i
					}
					delete(m, "gone")
					close(mutated)
				})
				return m, nil
			}},
			{Name: "r", DependsOn: []string{"w"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
				close(rStarted)
				<-mutated
				got := map[string]any{}
				for k, v := range in.All() {
					got[k] = v
				}
				if diff := cmp.Diff(map[string]any{"k": "returned", "gone": 1}, got); diff != "" {
					return nil, fmt.Errorf("the task saw changes made after its dependency returned (-want +got):\n%s", diff)
				}
				return nil, nil
			}},
		}
		job, err := dag.Run(guard(t), tasks, dag.Options{})
		if err != nil {
			t.Fatalf("Run(…) = %v; want no error", err)
		}
		res, err := waitJob(t, job)
		allCompleted(t, res, err, tasks)
		if diff := cmp.Diff(map[string]any{"k": "returned", "gone": 1}, res.Context); diff != "" {
			t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestReliabilityEventsClosedByCaller closes the events channel under the
// job, as Options.Events forbids but promises to survive: the remaining
// events are dropped, and the job runs and ends as it would have.
func TestReliabilityEventsClosedByCaller(t *testing.T) {
	t.Parallel()
	wantRes := dag.Result{
		State:   dag.Completed,
		Context: map[string]any{"gate": 1, "after": 2},
		Tasks: map[string]dag.TaskResult{
			"gate":  {State: dag.Completed, Attempts: 1},
			"after": {State: dag.Completed, Attempts: 1},
		},
	}
	newTasks := func(started chan<- struct{}, gate <-chan struct{}) []dag.Task {
		return []dag.Task{
			{Name: "gate", Func: func(context.Context, dag.Values) (map[string]any, error) {
				if started != nil {
					close(started)
				}
				if gate != nil {
					<-gate
				}
				return map[string]any{"gate": 1}, nil
			}},
			{Name: "after", DependsOn: []string{"gate"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
				if _, ok := in.Get("gate"); !ok {
					return nil, errors.New("after ran before gate")
				}
				return map[string]any{"after": 2}, nil
			}},
		}
	}

	t.Run("mid-job", func(t *testing.T) {
		// The caller reads the events sent so far, closes the channel while
		// "gate" runs, then lets it finish. The close happens before every
		// later send (through the gate), so the race detector has nothing
		// to report; a close racing a send would be the caller's data race.
		ch := make(chan dag.Event)
		started, gate := make(chan struct{}), make(chan struct{})
		openGate := sync.OnceFunc(func() { close(gate) })
		defer openGate()
		job, err := dag.Run(guard(t), newTasks(started, gate), dag.Options{Name: "closer", Events: ch})
		if err != nil {
			t.Fatalf("Run(…) = %v; want no error", err)
		}
		<-started
		var got []dag.Event
		for range 3 {
			got = append(got, <-ch)
		}
		want := []dag.Event{
			{Job: "closer", From: dag.Pending, To: dag.Running},
			{Job: "closer", Task: "gate", From: dag.Pending, To: dag.Ready, Attempt: 1},
			{Job: "closer", Task: "gate", From: dag.Ready, To: dag.Running, Attempt: 1},
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(dag.Event{}, "Time")); diff != "" {
			t.Errorf("events before the close mismatch (-want +got):\n%s", diff)
		}
		close(ch)
		openGate()
		res, err := waitJob(t, job)
		if err != nil {
			t.Errorf("Wait() = %v; want nil", err)
		}
		if diff := cmp.Diff(wantRes, res, ignoreTimes); diff != "" {
			t.Errorf("Result mismatch (-want +got):\n%s", diff)
		}
		if res2, err2 := job.Wait(); err2 != err || res2.State != res.State {
			t.Errorf("second Wait() = %v, %v; want %v, %v", res2.State, err2, res.State, err)
		}
		// TestMain's goleak check fails the run if the job's event
		// deliverer is left blocked.
	})

	for _, size := range []int{0, 8} {
		t.Run(fmt.Sprintf("already closed, buffer %d", size), func(t *testing.T) {
			ch := make(chan dag.Event, size)
			close(ch)
			job, err := dag.Run(guard(t), newTasks(nil, nil), dag.Options{Events: ch})
			if err != nil {
				t.Fatalf("Run(…) = %v; want no error", err)
			}
			res, err := waitJob(t, job)
			if err != nil {
				t.Errorf("Wait() = %v; want nil", err)
			}
			if diff := cmp.Diff(wantRes, res, ignoreTimes); diff != "" {
				t.Errorf("Result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// funcBackOff is a BackOff whose NextBackOff is next.
type funcBackOff struct{ next func() time.Duration }

func (b funcBackOff) NextBackOff() time.Duration { return b.next() }

func (b funcBackOff) Reset() {}

// TestReliabilityBadBackoff gives Options.Backoff policies that refuse to
// retry or break: as Options.Backoff documents, the task's retries end and
// its last error stands, with no crash and no retry.
func TestReliabilityBadBackoff(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		backoff func() backoff.BackOff
	}{
		{"factory returns nil", func() backoff.BackOff { return nil }},
		{"NextBackOff returns Stop", func() backoff.BackOff {
			return funcBackOff{func() time.Duration { return backoff.Stop }}
		}},
		{"factory panics", func() backoff.BackOff { panic("no policy") }},
		{"NextBackOff panics", func() backoff.BackOff {
			return funcBackOff{func() time.Duration { panic("no delay") }}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				tasks := []dag.Task{
					{Name: "f", MaxRetries: 5, ContinueOnFailure: true, Func: func(context.Context, dag.Values) (map[string]any, error) {
						calls.Add(1)
						return nil, errBoom
					}},
					{Name: "after", DependsOn: []string{"f"}, Func: noop},
				}
				job, err := dag.Run(t.Context(), tasks, dag.Options{MaxRetries: 3, Backoff: tc.backoff})
				if err != nil {
					t.Fatalf("Run(…) = %v; want no error", err)
				}
				res, err := job.Wait()
				if err != nil || res.State != dag.Completed {
					t.Errorf("Wait() = %v, %v; want completed, nil (f has ContinueOnFailure)", res.State, err)
				}
				if got := res.Tasks["f"]; got.State != dag.Failed || got.Attempts != 1 || !errors.Is(got.Err, errBoom) {
					t.Errorf("Result.Tasks[f] = %+v; want failed after 1 attempt with its own error", got)
				}
				if got := res.Tasks["after"]; got.State != dag.Completed {
					t.Errorf("Result.Tasks[after] = %+v; want completed", got)
				}
				if got := calls.Load(); got != 1 {
					t.Errorf("f's Func ran %d times; want 1: no retry", got)
				}

				// Without ContinueOnFailure the task fails the job.
				calls.Store(0)
				tasks[0].ContinueOnFailure = false
				job, err = dag.Run(t.Context(), tasks, dag.Options{Name: "bad backoff", MaxRetries: 3, Backoff: tc.backoff})
				if err != nil {
					t.Fatalf("Run(…) = %v; want no error", err)
				}
				_, err = job.Wait()
				var te *dag.TaskError
				if !errors.As(err, &te) || te.Task != "f" || te.Attempts != 1 || !errors.Is(err, errBoom) {
					t.Errorf("Wait() = %v; want a *dag.TaskError for f after 1 attempt, matching its error", err)
				}
				if got := calls.Load(); got != 1 {
					t.Errorf("f's Func ran %d times; want 1: no retry", got)
				}
			})
		})
	}
}

// TestReliabilityNilContext checks that Run refuses a nil ctx with an
// error rather than a panic.
func TestReliabilityNilContext(t *testing.T) {
	t.Parallel()
	var ctx context.Context // nil
	job, err := dag.Run(ctx, []dag.Task{{Name: "a", Func: noop}}, dag.Options{})
	if job != nil || !errors.Is(err, dag.ErrInvalidOptions) {
		t.Fatalf("Run(nil, …) = %v, %v; want nil and an error matching dag.ErrInvalidOptions", job, err)
	}
}

// TestReliabilityStuckTask runs a Func that ignores its ctx and blocks on a
// channel of its own, and stops the job in each way it can stop: the
// task's Timeout, Options.Timeout, Job.Cancel and the parent ctx. Wait
// must return within the grace period of the stop, count the attempt as
// abandoned until the Func returns, and discard what it returns late. In
// fake time, so exact.
func TestReliabilityStuckTask(t *testing.T) {
	t.Parallel()
	const grace = 20 * time.Millisecond // dag.abandonGrace, documented on Wait
	cases := []struct {
		name      string
		timeout   time.Duration // the task's
		opts      dag.Options
		stop      func(job *dag.Job, cancelParent context.CancelFunc)
		wantState dag.State // the job's
		wantErr   error
		wantTask  dag.State // the stuck task's
	}{
		{
			name: "Task.Timeout", timeout: time.Second,
			wantState: dag.Failed, wantErr: context.DeadlineExceeded, wantTask: dag.Failed,
		},
		{
			name: "Options.Timeout", opts: dag.Options{Timeout: time.Second},
			wantState: dag.Canceled, wantErr: context.DeadlineExceeded, wantTask: dag.Canceled,
		},
		{
			name: "Job.Cancel", stop: func(job *dag.Job, _ context.CancelFunc) { job.Cancel() },
			wantState: dag.Canceled, wantErr: context.Canceled, wantTask: dag.Canceled,
		},
		{
			name: "parent ctx", stop: func(_ *dag.Job, cancel context.CancelFunc) { cancel() },
			wantState: dag.Canceled, wantErr: context.Canceled, wantTask: dag.Canceled,
		},
	}
	for _, tc := range cases {
		for _, releaseEarly := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/released before the end %t", tc.name, releaseEarly), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					release := make(chan struct{}) // no ctx anywhere near it
					releaseNow := sync.OnceFunc(func() { close(release) })
					// A Func blocked "forever" is still released at the
					// end, or the bubble (and goleak) would report it.
					defer func() { releaseNow(); synctest.Wait() }()
					started := make(chan struct{})
					returned := make(chan struct{})
					tasks := []dag.Task{
						{Name: "stuck", Timeout: tc.timeout, Func: func(context.Context, dag.Values) (map[string]any, error) {
							defer close(returned)
							close(started)
							<-release
							return map[string]any{"late": true}, nil
						}},
						{Name: "after", DependsOn: []string{"stuck"}, Func: noop},
					}
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					opts := tc.opts
					opts.Context = map[string]any{"init": 1}
					t0 := time.Now()
					job, err := dag.Run(ctx, tasks, opts)
					if err != nil {
						t.Fatalf("Run(…) = %v; want no error", err)
					}
					<-started
					if tc.stop != nil {
						time.Sleep(time.Second) // fake time: the stop comes at 1s, as the timeouts do
						tc.stop(job, cancel)
					}
					res, err := job.Wait()
					if d := time.Since(t0); d < time.Second || d > time.Second+grace {
						t.Errorf("Wait returned %v after Run; want within %v of the stop at 1s", d, grace)
					}
					if res.State != tc.wantState || !errors.Is(err, tc.wantErr) {
						t.Errorf("Wait() = %v, %v; want %v and an error matching %v", res.State, err, tc.wantState, tc.wantErr)
					}
					want := map[string]dag.TaskResult{
						"stuck": {State: tc.wantTask, Attempts: 1, Abandoned: 1},
						"after": {State: dag.Canceled},
					}
					if tc.wantTask == dag.Failed {
						want["stuck"] = dag.TaskResult{State: dag.Failed, Attempts: 1, Err: context.DeadlineExceeded, Abandoned: 1}
					}
					if diff := cmp.Diff(want, res.Tasks, ignoreTimes); diff != "" {
						t.Errorf("Result.Tasks mismatch (-want +got):\n%s", diff)
					}
					if p := job.Progress(); p.Abandoned != 1 {
						t.Errorf("Progress().Abandoned = %d while the Func runs; want 1", p.Abandoned)
					}
					if !releaseEarly {
						return // released by the deferred call
					}
					releaseNow()
					<-returned
					synctest.Wait()
					if p := job.Progress(); p.Abandoned != 0 {
						t.Errorf("Progress().Abandoned = %d once the Func returned; want 0", p.Abandoned)
					}
					res2, err2 := job.Wait()
					if diff := cmp.Diff(res, res2, ignoreTimes); diff != "" || err2 != err {
						t.Errorf("Wait() changed once the late Func returned (-before +after):\n%s\nerr %v -> %v", diff, err, err2)
					}
					if diff := cmp.Diff(map[string]any{"init": 1}, res2.Context); diff != "" {
						t.Errorf("Result.Context mismatch, late output must be discarded (-want +got):\n%s", diff)
					}
				})
			})
		}
	}
}

// TestReliabilityBadTaskCode runs Funcs that end abnormally: panic(nil),
// which Go 1.21 and later turn into a *runtime.PanicNilError, a panic with
// an error, runtime.Goexit. Each fails its task with an error that tells
// what happened, and the job ends Failed without hanging, with and
// without ContinueOnFailure.
//
// A Func that starts a goroutine which panics later, without recovering,
// crashes the program: no library can recover a panic in a goroutine it
// did not start. That case is not run here (it would kill the test
// binary); the last case instead checks that a goroutine the task starts,
// which panics and recovers by itself after the task returned, does not
// disturb the job.
func TestReliabilityBadTaskCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fn    dag.TaskFunc
		check func(t *testing.T, err error)
	}{
		{
			name: "panic(nil)",
			fn:   func(context.Context, dag.Values) (map[string]any, error) { panic(nil) },
			check: func(t *testing.T, err error) {
				var pe *dag.PanicError
				var pne *runtime.PanicNilError
				if !errors.As(err, &pe) || !errors.As(err, &pne) {
					t.Errorf("error %v; want a *dag.PanicError holding a *runtime.PanicNilError", err)
				}
			},
		},
		{
			name: "panic with an error",
			fn: func(context.Context, dag.Values) (map[string]any, error) {
				panic(fmt.Errorf("wrapped: %w", errBoom))
			},
			check: func(t *testing.T, err error) {
				var pe *dag.PanicError
				if !errors.As(err, &pe) || !errors.Is(err, errBoom) {
					t.Errorf("error %v; want a *dag.PanicError matching the panic's error", err)
				}
			},
		},
		{
			name: "runtime.Goexit",
			fn: func(context.Context, dag.Values) (map[string]any, error) {
				runtime.Goexit()
				return nil, nil
			},
			check: func(t *testing.T, err error) {
				var pe *dag.PanicError
				if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "Goexit") {
					t.Errorf("error %v; want one naming runtime.Goexit, not a panic", err)
				}
			},
		},
	}
	for _, tc := range cases {
		for _, cont := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ContinueOnFailure %t", tc.name, cont), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					tasks := []dag.Task{
						{Name: "bad", MaxRetries: 2, ContinueOnFailure: cont, Func: tc.fn},
						{Name: "after", DependsOn: []string{"bad"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
							return map[string]any{"after": 1}, nil
						}},
					}
					job, err := dag.Run(t.Context(), tasks, dag.Options{MaxParallel: 1, Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
					if err != nil {
						t.Fatalf("Run(…) = %v; want no error", err)
					}
					res, err := job.Wait()
					bad := res.Tasks["bad"]
					if bad.State != dag.Failed || bad.Attempts != 3 {
						t.Errorf("Result.Tasks[bad] = %v after %d attempts; want failed after 3", bad.State, bad.Attempts)
					}
					tc.check(t, bad.Err)
					if cont {
						if err != nil || res.State != dag.Completed || res.Tasks["after"].State != dag.Completed {
							t.Errorf("Wait() = %v, %v, after %v; want completed, nil, after completed", res.State, err, res.Tasks["after"].State)
						}
						return
					}
					var te *dag.TaskError
					if !errors.As(err, &te) || te.Task != "bad" || te.Attempts != 3 {
						t.Errorf("Wait() = %v; want a *dag.TaskError for bad after 3 attempts", err)
					}
					tc.check(t, err)
					if res.State != dag.Failed || res.Tasks["after"].State != dag.Canceled {
						t.Errorf("Wait() = %v, after %v; want failed, after canceled", res.State, res.Tasks["after"].State)
					}
				})
			})
		}
	}

	t.Run("goroutine that panics and recovers later", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			afterStarted := make(chan struct{})
			recovered := make(chan any, 1)
			tasks := []dag.Task{
				{Name: "spawner", Func: func(context.Context, dag.Values) (map[string]any, error) {
					go func() {
						defer func() { recovered <- recover() }()
						<-afterStarted // the task has returned by now
						panic(errBoom)
					}()
					return map[string]any{"spawner": 1}, nil
				}},
				{Name: "after", DependsOn: []string{"spawner"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
					close(afterStarted)
					if r := <-recovered; r != errBoom {
						return nil, fmt.Errorf("the goroutine recovered %v; want %v", r, errBoom)
					}
					return map[string]any{"after": 1}, nil
				}},
				{Name: "other", Func: func(context.Context, dag.Values) (map[string]any, error) {
					return map[string]any{"other": 1}, nil
				}},
			}
			job, err := dag.Run(t.Context(), tasks, dag.Options{})
			if err != nil {
				t.Fatalf("Run(…) = %v; want no error", err)
			}
			res, err := job.Wait()
			allCompleted(t, res, err, tasks)
			if diff := cmp.Diff(map[string]any{"spawner": 1, "after": 1, "other": 1}, res.Context); diff != "" {
				t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
			}
		})
	})
}

// randomJob is a random DAG of n tasks (each depending on up to three
// earlier ones) for job number id. Each Func checks what it sees (the
// job's own initial key, every dependency's key with this job's value,
// and not the key of a task it does not depend on) and writes its own key.
// want is the job's final context.
func randomJob(r *rand.Rand, id, n int) (tasks []dag.Task, opts dag.Options, want map[string]any) {
	names := make([]string, n)
	vals := make([]string, n)
	for i := range n {
		names[i] = taskName(i)
		vals[i] = "job " + strconv.Itoa(id) + " task " + strconv.Itoa(i)
	}
	// ancestors[i] has bit a set if task i depends on task a, directly or
	// not.
	ancestors := make([][2]uint64, n)
	tasks = make([]dag.Task, n)
	want = map[string]any{"job": id}
	for i := range n {
		var deps []string
		var direct []int
		if i > 0 {
			for range r.IntN(4) {
				d := r.IntN(i)
				deps = append(deps, names[d])
				direct = append(direct, d)
				ancestors[i][d/64] |= 1 << (d % 64)
				ancestors[i][0] |= ancestors[d][0]
				ancestors[i][1] |= ancestors[d][1]
			}
		}
		// A task it does not depend on: the next, or an earlier one.
		stranger := -1
		for k := 1; k < n; k++ {
			if s := (i + k*7) % n; s != i && ancestors[i][s/64]&(1<<(s%64)) == 0 {
				stranger = s
				break
			}
		}
		tasks[i] = dag.Task{Name: names[i], DependsOn: deps, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			if v, ok := in.Get("job"); !ok || v != id {
				return nil, fmt.Errorf("job %d task %d: Get(job) = %v, %t", id, i, v, ok)
			}
			for _, d := range direct {
				if v, ok := in.Get(names[d]); !ok || v != vals[d] {
					return nil, fmt.Errorf("job %d task %d: Get(%s) = %v, %t; want %q", id, i, names[d], v, ok, vals[d])
				}
			}
			if stranger >= 0 {
				if v, ok := in.Get(names[stranger]); ok {
					return nil, fmt.Errorf("job %d task %d sees %s = %v, from a task it does not depend on", id, i, names[stranger], v)
				}
			}
			return map[string]any{names[i]: vals[i]}, nil
		}}
		want[names[i]] = vals[i]
	}
	return tasks, dag.Options{Name: "job " + strconv.Itoa(id), Context: map[string]any{"job": id}}, want
}

// TestReliabilityManyJobs runs 300 random jobs of 100 tasks at once (1,000
// with -dag.huge): each ends Completed with every task completed and
// exactly its own context, and no task sees another job's values.
func TestReliabilityManyJobs(t *testing.T) {
	t.Parallel()
	jobs, n := 300, 100
	if *hugeFlag {
		jobs = 1000
	}
	r := rand.New(rand.NewPCG(1, 2))
	type run struct {
		job   *dag.Job
		tasks []dag.Task
		want  map[string]any
	}
	runs := make([]run, jobs)
	guard := guard(t)
	for id := range runs {
		tasks, opts, want := randomJob(r, id, n)
		job, err := dag.Run(guard, tasks, opts)
		if err != nil {
			t.Fatalf("Run(job %d) = %v; want no error", id, err)
		}
		runs[id] = run{job, tasks, want}
	}
	for id, rn := range runs {
		res, err := waitJob(t, rn.job)
		allCompleted(t, res, err, rn.tasks)
		// maps.Equal first: cmp.Diff on every job would double the test's
		// time under -race.
		if !maps.Equal(rn.want, res.Context) {
			t.Errorf("job %d: Result.Context mismatch (-want +got):\n%s", id, cmp.Diff(rn.want, res.Context))
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestReliabilityJobsIsolated blocks every task of one job, more tasks than
// GOMAXPROCS, then runs another job to completion while the first still
// waits: jobs share no pool, and one job's slow tasks never delay
// another's.
func TestReliabilityJobsIsolated(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		slow := 2*runtime.GOMAXPROCS(0) + 2
		gate := make(chan struct{})
		openGate := sync.OnceFunc(func() { close(gate) })
		defer openGate()
		var running sync.WaitGroup
		running.Add(slow)
		var blocked []dag.Task
		for i := range slow {
			blocked = append(blocked, dag.Task{Name: taskName(i), Func: func(context.Context, dag.Values) (map[string]any, error) {
				running.Done()
				<-gate
				return nil, nil
			}})
		}
		first, err := dag.Run(t.Context(), blocked, dag.Options{Name: "slow", MaxParallel: slow})
		if err != nil {
			t.Fatalf("Run(slow) = %v; want no error", err)
		}
		running.Wait() // every slow task holds a worker

		t0 := time.Now()
		quick := chain(50, false)
		for _, mp := range []int{0, 1} {
			second, err := dag.Run(t.Context(), quick, dag.Options{Name: "quick", MaxParallel: mp})
			if err != nil {
				t.Fatalf("Run(quick) = %v; want no error", err)
			}
			// In the bubble a second job waiting on the first deadlocks,
			// which synctest reports, rather than hanging.
			res, err := second.Wait()
			allCompleted(t, res, err, quick)
		}
		if d := time.Since(t0); d != 0 {
			t.Errorf("the quick jobs took %v of fake time; want 0: nothing waited on a timer", d)
		}
		if p := first.Progress(); p.Running != slow || p.Completed != 0 {
			t.Errorf("slow job's Progress() = %+v; want all %d tasks still running", p, slow)
		}
		openGate()
		res, err := first.Wait()
		allCompleted(t, res, err, blocked)
	})
}

// panickyError is an error whose Unwrap panics.
type panickyError struct{}

func (panickyError) Error() string { return "panicky" }

func (panickyError) Unwrap() error { panic("Unwrap panics") }

// TestReliabilityErrorMethodsPanic checks that an error whose own methods
// panic fails its attempt like any error, retried, without crashing the
// process or the job; and that a panic carrying backoff.Permanent is not
// retried and keeps its *PanicError and stack.
func TestReliabilityErrorMethodsPanic(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tasks := []dag.Task{{Name: "p", MaxRetries: 2, Func: func(context.Context, dag.Values) (map[string]any, error) {
		calls.Add(1)
		return nil, panickyError{}
	}}}
	job, err := dag.Run(t.Context(), tasks, dag.Options{Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Wait()
	var te *dag.TaskError
	if !errors.As(err, &te) || te.Attempts != 3 || calls.Load() != 3 {
		t.Errorf("Wait() = %v after %d calls; want a TaskError after 3 attempts", err, calls.Load())
	}
	if _, ok := res.Tasks["p"].Err.(panickyError); !ok {
		t.Errorf("Result.Tasks[p].Err = %#v; want the task's error", res.Tasks["p"].Err)
	}

	boom := errors.New("boom")
	calls.Store(0)
	tasks[0].Func = func(context.Context, dag.Values) (map[string]any, error) {
		calls.Add(1)
		panic(backoff.Permanent(boom))
	}
	job, err = dag.Run(t.Context(), tasks, dag.Options{Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = job.Wait()
	var pe *dag.PanicError
	if calls.Load() != 1 || !errors.As(err, &pe) || len(pe.Stack) == 0 || !errors.Is(err, boom) {
		t.Errorf("Wait() = %v after %d calls; want one attempt failing with a *PanicError that wraps boom", err, calls.Load())
	}
}

// TestReliabilityRejectedRunClosesEvents checks that Run closes
// Options.Events when it refuses the tasks, so that a reader such as
// LogEvents ends instead of leaking.
func TestReliabilityRejectedRunClosesEvents(t *testing.T) {
	t.Parallel()
	events := make(chan dag.Event, 1)
	if _, err := dag.Run(t.Context(), []dag.Task{{Name: ""}}, dag.Options{Events: events}); err == nil {
		t.Fatal("Run accepted a task with no name")
	}
	if _, ok := <-events; ok {
		t.Error("Events received an event from a job that never ran")
	}
	// A LogEvents reader ends: goleak in TestMain fails the run otherwise.
	if _, err := dag.Run(t.Context(), []dag.Task{{Name: "x"}}, dag.Options{Events: dag.LogEvents(nil)}); err == nil {
		t.Fatal("Run accepted a task with no Func")
	}
}
