package dag_test

// Tests of rules 2, 4, 5, 6 and 7 of the design (issue 2): scheduling,
// failures and retries, cancellation, events, observability, and a
// randomized property test over many DAGs. Anything that involves time
// (timeouts, backoff delays, job deadlines, the abandon grace period) runs in
// a testing/synctest bubble, where time is fake and a deadlock is reported
// instead of hanging.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dagrun/dag"
)

var (
	stErrBoom = errors.New("boom")
	stErrBang = errors.New("bang")
)

// stParallels are the MaxParallel values scheduling tests run with: 1,
// where deadlocks hide, and larger ones.
var stParallels = []int{1, 2, 4}

// stIgnoreTimes ignores the timestamps of task results and events.
var stIgnoreTimes = cmp.Options{
	cmpopts.IgnoreFields(dag.TaskResult{}, "Started", "Finished", "Output"),
	cmpopts.IgnoreFields(dag.Event{}, "Time"),
	cmpopts.EquateErrors(),
}

// stGuard returns a context that ends a little before the test's deadline,
// so that a test waiting on a broken job fails with a message instead of
// being killed. Inside a synctest bubble it is a fake-time timer far in
// the future, which fires as soon as the bubble is otherwise deadlocked.
func stGuard(t *testing.T) context.Context {
	t.Helper()
	ctx := t.Context()
	if dl, ok := stDeadline(t); ok {
		c, cancel := context.WithTimeout(ctx, time.Until(dl)*9/10)
		t.Cleanup(cancel)
		return c
	}
	return ctx
}

// stDeadline is t.Deadline, but reports no deadline inside a synctest
// bubble, where t.Deadline panics: there a hang is a deadlock, which
// synctest reports by itself.
func stDeadline(t *testing.T) (dl time.Time, ok bool) {
	defer func() {
		if recover() != nil {
			dl, ok = time.Time{}, false
		}
	}()
	return t.Deadline()
}

// stRecorder reads a job's events until Run closes the channel.
type stRecorder struct {
	ch   chan dag.Event
	done chan struct{}
	evs  []dag.Event // written by the reader until done is closed
}

func stNewRecorder() *stRecorder {
	r := &stRecorder{ch: make(chan dag.Event), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for e := range r.ch {
			r.evs = append(r.evs, e)
		}
	}()
	return r
}

// events waits for the channel to be closed and returns every event.
func (r *stRecorder) events(t *testing.T) []dag.Event {
	t.Helper()
	select {
	case <-r.done:
	case <-stGuard(t).Done():
		t.Fatalf("the events channel was not closed before the test's deadline")
	}
	return r.evs
}

// stStart runs tasks with a recorder on Options.Events.
func stStart(t *testing.T, ctx context.Context, tasks []dag.Task, opts dag.Options) (*dag.Job, *stRecorder) {
	t.Helper()
	rec := stNewRecorder()
	opts.Events = rec.ch
	job, err := dag.Run(ctx, tasks, opts)
	if err != nil {
		close(rec.ch)
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	return job, rec
}

// stWait waits for the job, failing the test if it does not end before
// the test's deadline.
func stWait(t *testing.T, job *dag.Job) (dag.Result, error) {
	t.Helper()
	select {
	case <-job.Done():
	case <-stGuard(t).Done():
		t.Fatalf("the job did not end before the test's deadline; progress: %+v", job.Progress())
	}
	return job.Wait()
}

// stOutcome is what one job did.
type stOutcome struct {
	Res    dag.Result
	Err    error
	Events []dag.Event
}

// stFinish waits for the job and its events, and checks them with
// stCheck.
func stFinish(t *testing.T, job *dag.Job, rec *stRecorder, tasks []dag.Task, opts dag.Options) stOutcome {
	t.Helper()
	res, err := stWait(t, job)
	out := stOutcome{Res: res, Err: err, Events: rec.events(t)}
	stCheck(t, tasks, opts, out)
	return out
}

// stRun runs tasks to the end and checks the outcome with stCheck.
func stRun(t *testing.T, tasks []dag.Task, opts dag.Options) stOutcome {
	t.Helper()
	job, rec := stStart(t, t.Context(), tasks, opts)
	return stFinish(t, job, rec, tasks, opts)
}

// stLegal reports whether a task may move from one state to another, as
// the table in events.go's doc says.
func stLegal(from, to dag.State) bool {
	switch {
	case to == dag.Canceled:
		return !from.Final()
	case from == dag.Pending:
		return to == dag.Ready
	case from == dag.Ready:
		return to == dag.Running
	case from == dag.Running:
		return to == dag.Completed || to == dag.Failed || to == dag.Retrying
	case from == dag.Retrying:
		return to == dag.Ready || to == dag.Running
	}
	return false
}

// stCheck checks what must hold of every job: the events (order, legality,
// attempts, errors, readiness, MaxParallel, the job's name), the result's
// agreement with the events, and Wait's error.
func stCheck(t *testing.T, tasks []dag.Task, opts dag.Options, out stOutcome) {
	t.Helper()
	stCheckEvents(t, tasks, opts, out)
	stCheckWaitErr(t, tasks, opts, out)
}

func stCheckEvents(t *testing.T, tasks []dag.Task, opts dag.Options, out stOutcome) {
	t.Helper()
	evs := out.Events
	if len(evs) < 2 {
		t.Errorf("got %d events; want at least the job's first and final", len(evs))
		return
	}
	wantFirst := dag.Event{Job: opts.Name, From: dag.Pending, To: dag.Running}
	if diff := cmp.Diff(wantFirst, evs[0], stIgnoreTimes); diff != "" {
		t.Errorf("first event mismatch (-want +got):\n%s", diff)
	}
	last := evs[len(evs)-1]
	wantLast := dag.Event{Job: opts.Name, From: dag.Running, To: out.Res.State, Err: out.Err}
	if diff := cmp.Diff(wantLast, last, stIgnoreTimes); diff != "" {
		t.Errorf("final event mismatch (-want +got):\n%s", diff)
	}

	byName := make(map[string]dag.Task, len(tasks))
	for _, task := range tasks {
		byName[task.Name] = task
	}
	type seq struct {
		state        dag.State
		runs         int
		firstRun     time.Time
		final        *dag.Event
		lastRetryErr error
	}
	seqs := make(map[string]*seq, len(tasks))
	for _, task := range tasks {
		seqs[task.Name] = &seq{}
	}
	running := 0
	for i := range evs {
		e := &evs[i]
		if e.Job != opts.Name {
			t.Errorf("event %d (%v) names job %q; want %q", i, e, e.Job, opts.Name)
		}
		if e.Task == "" {
			if i != 0 && i != len(evs)-1 {
				t.Errorf("event %d (%v) is a job event in the middle of the stream", i, e)
			}
			continue
		}
		task, ok := byName[e.Task]
		if !ok {
			t.Errorf("event %d (%v) names an unknown task", i, e)
			continue
		}
		s := seqs[e.Task]
		if e.From != s.state {
			t.Errorf("event %d (%v): task %q was %v", i, e, e.Task, s.state)
		}
		if s.final != nil {
			t.Errorf("event %d (%v) comes after the task's final event (%v)", i, e, s.final)
		}
		if !stLegal(e.From, e.To) {
			t.Errorf("event %d (%v) is not a legal transition", i, e)
		}
		wantAttempt := s.runs
		switch e.To {
		case dag.Running:
			s.runs++
			wantAttempt = s.runs
			if s.runs == 1 {
				s.firstRun = e.Time
			}
		case dag.Ready:
			wantAttempt = s.runs + 1
		}
		if e.Attempt != wantAttempt {
			t.Errorf("event %d (%v) has attempt %d; want %d", i, e, e.Attempt, wantAttempt)
		}
		if wantErr := e.To == dag.Failed || e.To == dag.Retrying; (e.Err != nil) != wantErr {
			t.Errorf("event %d (%v) has error %v; want an error: %t", i, e, e.Err, wantErr)
		}
		if e.From == dag.Pending && e.To == dag.Ready {
			for _, d := range task.DependsOn {
				ds := seqs[d].state
				if ds != dag.Completed && !(ds == dag.Failed && byName[d].ContinueOnFailure) {
					t.Errorf("event %d (%v): dependency %q is %v (ContinueOnFailure %t)", i, e, d, ds, byName[d].ContinueOnFailure)
				}
			}
		}
		if e.To == dag.Running {
			running++
		}
		if e.From == dag.Running {
			running--
		}
		if opts.MaxParallel > 0 && running > opts.MaxParallel {
			t.Errorf("event %d (%v): %d tasks running; MaxParallel is %d", i, e, running, opts.MaxParallel)
		}
		if e.To == dag.Retrying {
			s.lastRetryErr = e.Err
		}
		s.state = e.To
		if e.To.Final() {
			s.final = e
		}
	}

	if len(out.Res.Tasks) != len(tasks) {
		t.Errorf("Result.Tasks has %d tasks; want %d", len(out.Res.Tasks), len(tasks))
	}
	for _, task := range tasks {
		s := seqs[task.Name]
		tr, ok := out.Res.Tasks[task.Name]
		if !ok {
			t.Errorf("Result.Tasks lacks %q", task.Name)
			continue
		}
		if s.final == nil {
			t.Errorf("task %q has no final event; its last state is %v", task.Name, s.state)
			continue
		}
		if tr.State != s.final.To {
			t.Errorf("Result.Tasks[%q].State = %v; its final event says %v", task.Name, tr.State, s.final.To)
		}
		if tr.Attempts != s.runs {
			t.Errorf("Result.Tasks[%q].Attempts = %d; its events show %d Running", task.Name, tr.Attempts, s.runs)
		}
		var wantErr error
		switch tr.State {
		case dag.Failed:
			wantErr = s.final.Err
		case dag.Canceled:
			wantErr = s.lastRetryErr
		}
		if !errors.Is(tr.Err, wantErr) || (tr.Err == nil) != (wantErr == nil) {
			t.Errorf("Result.Tasks[%q].Err = %v; want %v", task.Name, tr.Err, wantErr)
		}
		if !tr.Started.Equal(s.firstRun) {
			t.Errorf("Result.Tasks[%q].Started = %v; its first Running event is at %v", task.Name, tr.Started, s.firstRun)
		}
		if !tr.Finished.Equal(s.final.Time) {
			t.Errorf("Result.Tasks[%q].Finished = %v; its final event is at %v", task.Name, tr.Finished, s.final.Time)
		}
	}
}

func stCheckWaitErr(t *testing.T, tasks []dag.Task, opts dag.Options, out stOutcome) {
	t.Helper()
	if out.Err != nil && opts.Name != "" && !strings.Contains(out.Err.Error(), opts.Name) {
		t.Errorf("Wait's error %q does not name the job %q", out.Err, opts.Name)
	}
	switch out.Res.State {
	case dag.Completed:
		if out.Err != nil {
			t.Errorf("Wait() = %v for a completed job; want nil", out.Err)
		}
	case dag.Failed:
		var te *dag.TaskError
		if !errors.As(out.Err, &te) {
			t.Errorf("Wait() = %v for a failed job; want a *dag.TaskError", out.Err)
			return
		}
		tr := out.Res.Tasks[te.Task]
		if tr.State != dag.Failed {
			t.Errorf("Wait's error names task %q, which is %v; want a failed task", te.Task, tr.State)
		}
		if te.Job != opts.Name || te.Attempts != tr.Attempts || !errors.Is(te.Err, tr.Err) {
			t.Errorf("Wait() = %#v; want Job %q, Attempts %d and Err %v, as Result.Tasks says", te, opts.Name, tr.Attempts, tr.Err)
		}
		for _, task := range tasks {
			if task.Name == te.Task && task.ContinueOnFailure {
				t.Errorf("task %q failed the job although it has ContinueOnFailure", te.Task)
			}
		}
	case dag.Canceled:
		if !errors.Is(out.Err, context.Canceled) && !errors.Is(out.Err, context.DeadlineExceeded) {
			t.Errorf("Wait() = %v for a cancelled job; want an error matching context.Canceled or context.DeadlineExceeded", out.Err)
		}
	default:
		t.Errorf("Result.State = %v; want Completed, Failed or Canceled", out.Res.State)
	}
}

// stScript returns a Func that runs steps[i] on its call i (the last step
// on later calls) and counts its calls.
func stScript(calls *atomic.Int32, steps ...dag.TaskFunc) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		i := int(calls.Add(1)) - 1
		return steps[min(i, len(steps)-1)](ctx, in)
	}
}

func stOK(out map[string]any) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) { return out, nil }
}

func stFail(err error) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) { return nil, err }
}

// stZeroBackoff retries at once.
func stZeroBackoff() backoff.BackOff { return &backoff.ZeroBackOff{} }

// stRaise raises *max to at least n.
func stRaise(max *atomic.Int32, n int32) {
	for {
		m := max.Load()
		if n <= m || max.CompareAndSwap(m, n) {
			return
		}
	}
}

// stTasksOf lists the task names of some events, in order, for those
// whose transition is to.
func stTasksOf(evs []dag.Event, to dag.State) []string {
	var names []string
	for _, e := range evs {
		if e.Task != "" && e.To == to {
			names = append(names, e.Task)
		}
	}
	return names
}

// ---------------------------------------------------------------------------
// Scheduling (rule 2)

// stShapes are DAG shapes for the scheduling tests.
var stShapes = []struct {
	name string
	deps map[string][]string // in declaration order of names
	decl []string
}{
	{"chain", map[string][]string{"b": {"a"}, "c": {"b"}, "d": {"c"}}, []string{"a", "b", "c", "d"}},
	{"chain declared backwards", map[string][]string{"b": {"a"}, "c": {"b"}, "d": {"c"}}, []string{"d", "c", "b", "a"}},
	{"diamond", map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}, []string{"a", "b", "c", "d"}},
	{"fan-out fan-in", map[string][]string{
		"m1": {"root"}, "m2": {"root"}, "m3": {"root"}, "m4": {"root"}, "m5": {"root"},
		"sink": {"m1", "m2", "m3", "m4", "m5"},
	}, []string{"root", "m1", "m2", "m3", "m4", "m5", "sink"}},
	{"forest", map[string][]string{"a2": {"a1"}, "a3": {"a2"}, "b2": {"b1"}, "x": {"a1", "b2"}}, []string{"a1", "a2", "a3", "b1", "b2", "x", "solo"}},
}

// TestSchedDependenciesEndBeforeStart checks, from inside the Funcs and
// from the events, that no task starts before every dependency ended, on
// several shapes and MaxParallel values.
func TestSchedDependenciesEndBeforeStart(t *testing.T) {
	for _, shape := range stShapes {
		for _, mp := range stParallels {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", shape.name, mp), func(t *testing.T) {
				var mu sync.Mutex
				returned := map[string]bool{}
				calls := map[string]int{}
				var problems []string
				var tasks []dag.Task
				for _, name := range shape.decl {
					deps := shape.deps[name]
					tasks = append(tasks, dag.Task{
						Name:      name,
						DependsOn: deps,
						Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
							mu.Lock()
							calls[name]++
							for _, d := range deps {
								if !returned[d] {
									problems = append(problems, fmt.Sprintf("%s started before its dependency %s returned", name, d))
								}
							}
							mu.Unlock()
							runtime.Gosched() // give a wrong scheduler a chance to start a dependent
							mu.Lock()
							returned[name] = true
							mu.Unlock()
							return map[string]any{name: true}, nil
						},
					})
				}
				out := stRun(t, tasks, dag.Options{Name: "shapes", MaxParallel: mp})
				if out.Res.State != dag.Completed {
					t.Fatalf("Result.State = %v; want completed (err %v)", out.Res.State, out.Err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, p := range problems {
					t.Error(p)
				}
				for _, name := range shape.decl {
					if calls[name] != 1 {
						t.Errorf("task %q ran %d times; want 1", name, calls[name])
					}
				}
			})
		}
	}
}

// TestSchedChainIncrements is the classic chain: a→b→c each add one to v,
// starting from the initial context's 0, and each sees its predecessor's v;
// the caller's Options.Context is left as it was.
func TestSchedChainIncrements(t *testing.T) {
	for _, mp := range stParallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]int{}
			inc := func(name string) dag.TaskFunc {
				return func(ctx context.Context, in dag.Values) (map[string]any, error) {
					v, err := dag.Lookup[int](in, "v")
					if err != nil {
						return nil, err
					}
					mu.Lock()
					seen[name] = v
					mu.Unlock()
					return map[string]any{"v": v + 1}, nil
				}
			}
			tasks := []dag.Task{
				{Name: "c", Func: inc("c"), DependsOn: []string{"b"}},
				{Name: "a", Func: inc("a")},
				{Name: "b", Func: inc("b"), DependsOn: []string{"a"}},
			}
			initial := map[string]any{"v": 0}
			opts := dag.Options{Name: "chain", MaxParallel: mp, Context: initial}
			out := stRun(t, tasks, opts)
			if out.Err != nil {
				t.Fatalf("Wait() = %v; want nil", out.Err)
			}
			if diff := cmp.Diff(map[string]any{"v": 3}, out.Res.Context); diff != "" {
				t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(map[string]int{"a": 0, "b": 1, "c": 2}, seen); diff != "" {
				t.Errorf("v seen by each task mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]any{"v": 0}, initial); diff != "" {
				t.Errorf("Options.Context changed by the job (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSchedReadiness checks when a dependent becomes ready: only after each
// dependency Completed, or Failed with ContinueOnFailure, and never with the
// output of a failed dependency.
func TestSchedReadiness(t *testing.T) {
	type check struct {
		calls map[string]int  // Func calls by task
		sees  map[string]bool // keys b saw, by key
	}
	cases := []struct {
		name      string
		reason    string
		tasks     func(calls map[string]*atomic.Int32, seen func(dag.Values)) []dag.Task
		wantState dag.State
		wantErr   error
		want      check
		wantTasks map[string]dag.State
	}{
		{
			name:   "failed dependency with ContinueOnFailure",
			reason: "b runs without a's output, and the job completes",
			tasks: func(c map[string]*atomic.Int32, seen func(dag.Values)) []dag.Task {
				return []dag.Task{
					{Name: "a", ContinueOnFailure: true, Func: stScript(c["a"], func(context.Context, dag.Values) (map[string]any, error) {
						return map[string]any{"a": 1}, stErrBoom // the output of a failed attempt is seen by no one
					})},
					{Name: "b", DependsOn: []string{"a"}, Func: stScript(c["b"], func(_ context.Context, in dag.Values) (map[string]any, error) {
						seen(in)
						return map[string]any{"b": 1}, nil
					})},
				}
			},
			wantState: dag.Completed,
			want:      check{calls: map[string]int{"a": 1, "b": 1}, sees: map[string]bool{"a": false, "init": true, "x": false}},
			wantTasks: map[string]dag.State{"a": dag.Failed, "b": dag.Completed},
		},
		{
			name:   "failed dependency without ContinueOnFailure",
			reason: "b never runs: the job fails",
			tasks: func(c map[string]*atomic.Int32, seen func(dag.Values)) []dag.Task {
				return []dag.Task{
					{Name: "a", Func: stScript(c["a"], stFail(stErrBoom))},
					{Name: "b", DependsOn: []string{"a"}, Func: stScript(c["b"], stOK(nil))},
				}
			},
			wantState: dag.Failed,
			wantErr:   stErrBoom,
			want:      check{calls: map[string]int{"a": 1, "b": 0}, sees: map[string]bool{}},
			wantTasks: map[string]dag.State{"a": dag.Failed, "b": dag.Canceled},
		},
		{
			name:   "one completed and one failed-continue dependency",
			reason: "b waits for both, sees x's output but not a's",
			tasks: func(c map[string]*atomic.Int32, seen func(dag.Values)) []dag.Task {
				return []dag.Task{
					{Name: "a", ContinueOnFailure: true, Func: stScript(c["a"], stFail(stErrBoom))},
					{Name: "x", Func: stScript(c["x"], stOK(map[string]any{"x": 1}))},
					{Name: "b", DependsOn: []string{"a", "x"}, Func: stScript(c["b"], func(_ context.Context, in dag.Values) (map[string]any, error) {
						seen(in)
						return nil, nil
					})},
				}
			},
			wantState: dag.Completed,
			want:      check{calls: map[string]int{"a": 1, "x": 1, "b": 1}, sees: map[string]bool{"a": false, "x": true, "init": true}},
			wantTasks: map[string]dag.State{"a": dag.Failed, "x": dag.Completed, "b": dag.Completed},
		},
		{
			name:   "retried dependency",
			reason: "b waits for a's successful retry, not its first failure, and sees its output",
			tasks: func(c map[string]*atomic.Int32, seen func(dag.Values)) []dag.Task {
				return []dag.Task{
					{Name: "a", MaxRetries: 2, Func: stScript(c["a"], stFail(stErrBoom), stFail(stErrBoom), stOK(map[string]any{"a": 3}))},
					{Name: "b", DependsOn: []string{"a"}, Func: stScript(c["b"], func(_ context.Context, in dag.Values) (map[string]any, error) {
						seen(in)
						return nil, nil
					})},
				}
			},
			wantState: dag.Completed,
			want:      check{calls: map[string]int{"a": 3, "b": 1}, sees: map[string]bool{"a": true, "init": true, "x": false}},
			wantTasks: map[string]dag.State{"a": dag.Completed, "b": dag.Completed},
		},
	}
	for _, tc := range cases {
		for _, mp := range stParallels {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				calls := map[string]*atomic.Int32{}
				for _, n := range []string{"a", "b", "x"} {
					calls[n] = new(atomic.Int32)
				}
				var mu sync.Mutex
				sees := map[string]bool{}
				seen := func(in dag.Values) {
					mu.Lock()
					defer mu.Unlock()
					for _, k := range []string{"a", "x", "init"} {
						_, ok := in.Get(k)
						sees[k] = ok
					}
				}
				tasks := tc.tasks(calls, seen)
				opts := dag.Options{Name: "ready", MaxParallel: mp, Backoff: stZeroBackoff, Context: map[string]any{"init": 0}}
				out := stRun(t, tasks, opts)
				if out.Res.State != tc.wantState || !errors.Is(out.Err, tc.wantErr) || (out.Err == nil) != (tc.wantErr == nil) {
					t.Errorf("Wait() = %v, %v; want %v, %v (%s)", out.Res.State, out.Err, tc.wantState, tc.wantErr, tc.reason)
				}
				got := check{calls: map[string]int{}, sees: sees}
				for _, task := range tasks {
					got.calls[task.Name] = int(calls[task.Name].Load())
				}
				mu.Lock()
				defer mu.Unlock()
				if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(check{})); diff != "" {
					t.Errorf("calls and keys seen mismatch (-want +got) (%s):\n%s", tc.reason, diff)
				}
				states := map[string]dag.State{}
				for name, tr := range out.Res.Tasks {
					states[name] = tr.State
				}
				if diff := cmp.Diff(tc.wantTasks, states); diff != "" {
					t.Errorf("task states mismatch (-want +got) (%s):\n%s", tc.reason, diff)
				}
			})
		}
	}
}

// TestSchedMaxParallelFillsAndBounds gates every Func on its own channel
// and releases them one at a time. At each quiet point exactly
// min(MaxParallel, tasks that could run) Funcs are running, never more,
// and Progress reports the same counts.
func TestSchedMaxParallelFillsAndBounds(t *testing.T) {
	for _, mp := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var (
					mu            sync.Mutex
					entered       = map[string]bool{}
					running, peak atomic.Int32
					gates         = map[string]chan struct{}{}
					tasks         []dag.Task
				)
				add := func(name string, deps ...string) {
					gate := make(chan struct{})
					gates[name] = gate
					tasks = append(tasks, dag.Task{Name: name, DependsOn: deps, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
						mu.Lock()
						entered[name] = true
						mu.Unlock()
						stRaise(&peak, running.Add(1))
						defer running.Add(-1)
						<-gate
						return nil, nil
					}})
				}
				for i := range 6 {
					add(fmt.Sprintf("i%d", i))
				}
				add("d1", "i0")
				add("d2", "i1", "d1")
				opts := dag.Options{Name: "bound", MaxParallel: mp}
				job, rec := stStart(t, t.Context(), tasks, opts)
				defer func() { // on failure, let the Funcs end
					for name, gate := range gates {
						select {
						case <-gate:
						default:
							close(gates[name])
						}
					}
				}()

				released := map[string]bool{}
				for len(released) < len(tasks) {
					synctest.Wait()
					startable := 0
					var inflight []string
					mu.Lock()
					for _, task := range tasks {
						if released[task.Name] {
							continue
						}
						if !slices.ContainsFunc(task.DependsOn, func(d string) bool { return !released[d] }) {
							startable++
						}
						if entered[task.Name] {
							inflight = append(inflight, task.Name)
						}
					}
					mu.Unlock()
					want := min(mp, startable)
					if len(inflight) != want || int(running.Load()) != want {
						t.Fatalf("after releasing %d tasks: %d Funcs entered, %d running (%v); want %d (MaxParallel %d, %d can run)",
							len(released), len(inflight), running.Load(), inflight, want, mp, startable)
					}
					wantP := dag.Progress{
						Job: "bound", State: dag.Running,
						Pending: len(tasks) - len(released) - startable, Ready: startable - want,
						Running: want, Completed: len(released),
					}
					if diff := cmp.Diff(wantP, job.Progress()); diff != "" {
						t.Fatalf("Progress() after releasing %d tasks mismatch (-want +got):\n%s", len(released), diff)
					}
					released[inflight[0]] = true
					close(gates[inflight[0]])
				}
				out := stFinish(t, job, rec, tasks, opts)
				if out.Err != nil {
					t.Fatalf("Wait() = %v; want nil", out.Err)
				}
				if got, want := int(peak.Load()), min(mp, 6); got != want {
					t.Errorf("at most %d Funcs ran at once; want %d", got, want)
				}
				wantP := dag.Progress{Job: "bound", State: dag.Completed, Completed: len(tasks)}
				if diff := cmp.Diff(wantP, job.Progress()); diff != "" {
					t.Errorf("final Progress() mismatch (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestSchedIndependentTasksRunInParallel proves parallelism with a
// rendezvous: each task waits until all the others have started, which
// can only complete if they run at the same time.
func TestSchedIndependentTasksRunInParallel(t *testing.T) {
	cases := []struct {
		name   string
		n, max int
	}{
		{"two tasks, MaxParallel 2", 2, 2},
		{"four tasks, MaxParallel 4", 4, 4},
		{"two tasks, MaxParallel 0 means GOMAXPROCS", 2, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.max == 0 && runtime.GOMAXPROCS(0) < tc.n {
				t.Skipf("GOMAXPROCS is %d", runtime.GOMAXPROCS(0))
			}
			guard := stGuard(t)
			started := make([]chan struct{}, tc.n)
			for i := range started {
				started[i] = make(chan struct{})
			}
			var tasks []dag.Task
			for i := range tc.n {
				tasks = append(tasks, dag.Task{Name: fmt.Sprint("r", i), Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
					close(started[i])
					for j := range started {
						select {
						case <-started[j]:
						case <-guard.Done():
							return nil, fmt.Errorf("task %d never ran beside task %d", j, i)
						}
					}
					return nil, nil
				}})
			}
			out := stRun(t, tasks, dag.Options{Name: "rendezvous", MaxParallel: tc.max})
			if out.Err != nil {
				t.Fatalf("Wait() = %v; want nil", out.Err)
			}
		})
	}
}

// stModelOrder is the start order with MaxParallel 1, every task
// succeeding: among ready tasks, the one with the longest path of tasks
// ahead of it first, ties in declaration order.
func stModelOrder(tasks []dag.Task) []string {
	idx := map[string]int{}
	for i, task := range tasks {
		idx[task.Name] = i
	}
	outs := make([][]int, len(tasks))
	for i, task := range tasks {
		for _, d := range task.DependsOn {
			outs[idx[d]] = append(outs[idx[d]], i)
		}
	}
	rank := make([]int, len(tasks))
	var rankOf func(i int) int
	rankOf = func(i int) int {
		if rank[i] == 0 {
			r := 0
			for _, o := range outs[i] {
				r = max(r, rankOf(o))
			}
			rank[i] = r + 1
		}
		return rank[i]
	}
	done := make([]bool, len(tasks))
	var order []string
	for len(order) < len(tasks) {
		best := -1
		for i, task := range tasks {
			if done[i] || slices.ContainsFunc(task.DependsOn, func(d string) bool { return !done[idx[d]] }) {
				continue
			}
			if best < 0 || rankOf(i) > rankOf(best) {
				best = i
			}
		}
		done[best] = true
		order = append(order, tasks[best].Name)
	}
	return order
}

// TestSchedCriticalPathFirst checks the start order: longest remaining
// path first, ties in declaration order. With MaxParallel 1 the whole
// order is fixed; with more, the first batch is.
func TestSchedCriticalPathFirst(t *testing.T) {
	type spec struct {
		name string
		deps []string
	}
	cases := []struct {
		name      string
		reason    string
		tasks     []spec
		wantOrder []string // MaxParallel 1
		wantFirst []string // MaxParallel 2: the first two to start
	}{
		{
			name:      "ties in declaration order",
			reason:    "independent tasks start in declaration order, not by name",
			tasks:     []spec{{"z", nil}, {"y", nil}, {"x", nil}},
			wantOrder: []string{"z", "y", "x"},
			wantFirst: []string{"z", "y"},
		},
		{
			name:      "longer chain first",
			reason:    "c1 heads a path of 3, solo one of 1; then c3 and solo tie and solo was declared first",
			tasks:     []spec{{"solo", nil}, {"c1", nil}, {"c2", []string{"c1"}}, {"c3", []string{"c2"}}},
			wantOrder: []string{"c1", "c2", "solo", "c3"},
			wantFirst: []string{"c1", "solo"},
		},
		{
			name:   "path length, not number of dependents",
			reason: "w has four dependents but a path of 2; d1 has a path of 3",
			tasks: []spec{
				{"w", nil}, {"w1", []string{"w"}}, {"w2", []string{"w"}}, {"w3", []string{"w"}}, {"w4", []string{"w"}},
				{"d1", nil}, {"d2", []string{"d1"}}, {"d3", []string{"d2"}},
			},
			wantOrder: []string{"d1", "w", "d2", "w1", "w2", "w3", "w4", "d3"},
			wantFirst: []string{"d1", "w"},
		},
		{
			name:      "a task declared after its dependents",
			reason:    "ranks follow the graph, not the declaration order",
			tasks:     []spec{{"late", []string{"mid"}}, {"other", nil}, {"mid", []string{"root"}}, {"root", nil}},
			wantOrder: []string{"root", "mid", "late", "other"},
			wantFirst: []string{"root", "other"},
		},
	}
	for _, tc := range cases {
		var tasks []dag.Task
		for _, s := range tc.tasks {
			tasks = append(tasks, dag.Task{Name: s.name, DependsOn: s.deps, Func: stOK(nil)})
		}
		if got := stModelOrder(tasks); !slices.Equal(got, tc.wantOrder) {
			t.Fatalf("%s: the test's model gives %v; the case says %v", tc.name, got, tc.wantOrder)
		}
		for _, mp := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				out := stRun(t, tasks, dag.Options{MaxParallel: mp})
				got := stTasksOf(out.Events, dag.Running)
				if mp == 1 {
					if diff := cmp.Diff(tc.wantOrder, got); diff != "" {
						t.Errorf("start order mismatch (-want +got) (%s):\n%s", tc.reason, diff)
					}
					return
				}
				if diff := cmp.Diff(tc.wantFirst, got[:2]); diff != "" {
					t.Errorf("first two to start mismatch (-want +got) (%s):\n%s", tc.reason, diff)
				}
			})
		}
	}
}

// stRandomDAG makes n tasks with random dependencies (each on an earlier
// task of a hidden topological order), declared in a random order.
func stRandomDAG(r *rand.Rand, n int, p float64) []dag.Task {
	tasks := make([]dag.Task, n)
	for i := range tasks {
		tasks[i].Name = fmt.Sprintf("t%02d", i)
		for j := range i {
			if r.Float64() < p {
				tasks[i].DependsOn = append(tasks[i].DependsOn, tasks[j].Name)
			}
		}
	}
	r.Shuffle(n, func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
	return tasks
}

// TestSchedStartOrderMatchesModel compares the start order with MaxParallel
// 1 against stModelOrder on random DAGs.
func TestSchedStartOrderMatchesModel(t *testing.T) {
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		tasks := stRandomDAG(r, 1+r.IntN(15), 0.25)
		for i := range tasks {
			tasks[i].Func = stOK(nil)
		}
		out := stRun(t, tasks, dag.Options{MaxParallel: 1})
		if diff := cmp.Diff(stModelOrder(tasks), stTasksOf(out.Events, dag.Running)); diff != "" {
			t.Errorf("seed %d: start order mismatch (-want +got):\n%s", seed, diff)
		}
	}
}

// TestSchedMaxParallelOneSerializes checks that with MaxParallel 1 each
// attempt leaves Running before the next one enters it, and no two Funcs
// overlap, retries and failures included.
func TestSchedMaxParallelOneSerializes(t *testing.T) {
	var running, peak atomic.Int32
	wrap := func(f dag.TaskFunc) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			stRaise(&peak, running.Add(1))
			defer running.Add(-1)
			runtime.Gosched()
			return f(ctx, in)
		}
	}
	var flaky atomic.Int32
	tasks := []dag.Task{
		{Name: "a", Func: wrap(stOK(nil))},
		{Name: "b", Func: wrap(stOK(nil))},
		{Name: "flaky", MaxRetries: 2, Func: wrap(stScript(&flaky, stFail(stErrBoom), stOK(nil)))},
		{Name: "c", DependsOn: []string{"a", "b"}, Func: wrap(stOK(nil))},
		{Name: "broken", ContinueOnFailure: true, Func: wrap(stFail(stErrBang))},
		{Name: "d", DependsOn: []string{"broken", "flaky"}, Func: wrap(stOK(nil))},
	}
	opts := dag.Options{Name: "serial", MaxParallel: 1, Backoff: stZeroBackoff}
	out := stRun(t, tasks, opts)
	if out.Err != nil {
		t.Fatalf("Wait() = %v; want nil", out.Err)
	}
	if peak.Load() != 1 {
		t.Errorf("%d Funcs ran at once; want 1", peak.Load())
	}
	current := ""
	for _, e := range out.Events {
		switch {
		case e.To == dag.Running:
			if current != "" {
				t.Errorf("%v while %q is running", e, current)
			}
			current = e.Task
		case e.From == dag.Running:
			if e.Task != current {
				t.Errorf("%v while %q is running", e, current)
			}
			current = ""
		}
	}
}

// ---------------------------------------------------------------------------
// Failures, retries, panics and timeouts (rule 4)

// TestFailTaskFailsJob is the classic failing task: the job fails, Wait
// names the task and wraps the user's error, the context keeps what
// completed, and the rest ends Canceled, with running attempts seeing
// their ctx cancelled.
func TestFailTaskFailsJob(t *testing.T) {
	for _, mp := range stParallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				type seen struct{ err, cause error }
				dSaw := make(chan seen, 1)
				var dCalls atomic.Int32
				tasks := []dag.Task{
					{Name: "a", Func: stOK(map[string]any{"a": 1})},
					{Name: "b", DependsOn: []string{"a"}, Func: stFail(stErrBoom)},
					{Name: "c", DependsOn: []string{"b"}, Func: stOK(map[string]any{"c": 1})},
					// d runs beside a and b when MaxParallel > 1, until
					// its ctx is cancelled.
					{Name: "d", Func: stScript(&dCalls, func(ctx context.Context, _ dag.Values) (map[string]any, error) {
						<-ctx.Done()
						dSaw <- seen{ctx.Err(), context.Cause(ctx)}
						return map[string]any{"d": 1}, nil
					})},
					{Name: "e", DependsOn: []string{"d"}, Func: stOK(nil)},
				}
				opts := dag.Options{Name: "failjob", MaxParallel: mp, Context: map[string]any{"init": 0}}
				job, rec := stStart(t, t.Context(), tasks, opts)
				out := stFinish(t, job, rec, tasks, opts)

				var te *dag.TaskError
				if !errors.As(out.Err, &te) {
					t.Fatalf("Wait() = %v; want a *dag.TaskError", out.Err)
				}
				wantTE := dag.TaskError{Job: "failjob", Task: "b", Attempts: 1, Err: stErrBoom}
				if diff := cmp.Diff(wantTE, *te, cmpopts.EquateErrors()); diff != "" {
					t.Errorf("Wait's *TaskError mismatch (-want +got):\n%s", diff)
				}
				if !errors.Is(out.Err, stErrBoom) {
					t.Errorf("errors.Is(%v, stErrBoom) = false; want true", out.Err)
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
						"b": {State: dag.Failed, Attempts: 1, Err: stErrBoom},
						"c": {State: dag.Canceled},
						"d": {State: dag.Canceled, Attempts: dAttempts},
						"e": {State: dag.Canceled},
					},
				}
				if diff := cmp.Diff(want, out.Res, stIgnoreTimes); diff != "" {
					t.Errorf("Result mismatch (-want +got):\n%s", diff)
				}
				if mp > 1 {
					s := <-dSaw
					if !errors.Is(s.err, context.Canceled) {
						t.Errorf("d's ctx.Err() = %v; want context.Canceled", s.err)
					}
					if !errors.Is(s.cause, stErrBoom) {
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

// TestRetryCounts checks how often Func is called for the combinations of
// Task.MaxRetries, NoRetries and Options.MaxRetries.
func TestRetryCounts(t *testing.T) {
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
							return nil, stErrBoom
						}
						return map[string]any{"r": 1}, nil
					}},
					{Name: "other", Func: stOK(nil)},
				}
				opts := dag.Options{Name: "retries", MaxParallel: mp, MaxRetries: tc.optRetries, Backoff: stZeroBackoff}
				out := stRun(t, tasks, opts)
				if got := int(calls.Load()); got != tc.wantCalls {
					t.Errorf("Func ran %d times; want %d", got, tc.wantCalls)
				}
				var wantErr error
				if tc.wantState == dag.Failed {
					wantErr = stErrBoom
				}
				want := dag.TaskResult{State: tc.wantState, Attempts: tc.wantCalls, Err: wantErr}
				if diff := cmp.Diff(want, out.Res.Tasks["r"], stIgnoreTimes); diff != "" {
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
					if !errors.Is(e.Err, stErrBoom) {
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
					return nil, stErrBoom
				}}}
				opts := dag.Options{Name: "delays", MaxParallel: 1, Backoff: tc.backoff}
				out := stRun(t, tasks, opts)
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
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		var aCalls atomic.Int32
		gate := make(chan struct{})
		tasks := []dag.Task{
			{Name: "a", MaxRetries: 1, Func: stScript(&aCalls, stFail(stErrBoom), stOK(map[string]any{"a": 2}))},
			{Name: "b", Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-gate
				return map[string]any{"b": 1}, nil
			}},
		}
		opts := dag.Options{
			Name: "slots", MaxParallel: 1,
			Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) },
		}
		job, rec := stStart(t, t.Context(), tasks, opts)
		synctest.Wait()
		want := dag.Progress{Job: "slots", State: dag.Running, Retrying: 1, Running: 1}
		if diff := cmp.Diff(want, job.Progress()); diff != "" {
			t.Errorf("Progress() during a's retry delay mismatch (-want +got):\n%s", diff)
		}
		close(gate)
		out := stFinish(t, job, rec, tasks, opts)
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
		if got := stTasksOf(out.Events, dag.Running); !slices.Equal(got, []string{"a", "b", "a"}) {
			t.Errorf("start order %v; want [a b a]", got)
		}
	})
}

// TestRetryPermanent checks that backoff.Permanent ends the retries at once
// and that the recorded error is the one inside it, or, when the task
// wrapped the permanent error, the task's whole error: no message and no
// panic stack is lost.
func TestRetryPermanent(t *testing.T) {
	wrapped := fmt.Errorf("wrapped: %w", backoff.Permanent(stErrBoom))
	cases := []struct {
		name      string
		steps     []dag.TaskFunc
		wantCalls int
		wantErr   error
	}{
		{"on the first attempt", []dag.TaskFunc{stFail(backoff.Permanent(stErrBoom))}, 1, stErrBoom},
		{"on the second attempt", []dag.TaskFunc{stFail(stErrBang), stFail(backoff.Permanent(stErrBoom))}, 2, stErrBoom},
		{"wrapped", []dag.TaskFunc{stFail(wrapped)}, 1, wrapped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{{Name: "p", MaxRetries: 5, Func: stScript(&calls, tc.steps...)}}
			out := stRun(t, tasks, dag.Options{Name: "perm", Backoff: stZeroBackoff})
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("Func ran %d times; want %d", calls.Load(), tc.wantCalls)
			}
			tr := out.Res.Tasks["p"]
			if tr.Err != tc.wantErr {
				t.Errorf("Result.Tasks[p].Err = %#v; want %#v", tr.Err, tc.wantErr)
			}
			if !errors.Is(out.Err, stErrBoom) {
				t.Errorf("errors.Is(%v, boom) = false; want true", out.Err)
			}
		})
	}
}

// TestRetryBackoffStop checks that a BackOff returning backoff.Stop ends
// the retries, leaving the last attempt's error.
func TestRetryBackoffStop(t *testing.T) {
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
			tasks := []dag.Task{{Name: "s", MaxRetries: 5, Func: stScript(&calls, stFail(stErrBoom))}}
			out := stRun(t, tasks, dag.Options{Name: "stop", Backoff: tc.backoff})
			if int(calls.Load()) != tc.wantCalls {
				t.Errorf("Func ran %d times; want %d", calls.Load(), tc.wantCalls)
			}
			if tr := out.Res.Tasks["s"]; tr.State != dag.Failed || tr.Err != stErrBoom {
				t.Errorf("Result.Tasks[s] = %v, %#v; want failed with the attempt's own error", tr.State, tr.Err)
			}
		})
	}
}

// TestFailPanic checks that a panicking Func fails its attempt with a
// *dag.PanicError carrying the value and the stack, and is retried like
// any error.
func TestFailPanic(t *testing.T) {
	t.Run("string value", func(t *testing.T) {
		tasks := []dag.Task{{Name: "p", Func: func(context.Context, dag.Values) (map[string]any, error) {
			panic("kaboom")
		}}}
		out := stRun(t, tasks, dag.Options{Name: "panics"})
		var pe *dag.PanicError
		if !errors.As(out.Err, &pe) {
			t.Fatalf("Wait() = %v; want a *dag.PanicError inside", out.Err)
		}
		if pe.Value != "kaboom" {
			t.Errorf("PanicError.Value = %#v; want \"kaboom\"", pe.Value)
		}
		if !bytes.Contains(pe.Stack, []byte("scheduler_test.go")) || !bytes.Contains(pe.Stack, []byte("TestFailPanic")) {
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
			panic(fmt.Errorf("wrapped: %w", stErrBoom))
		}}}
		out := stRun(t, tasks, dag.Options{Name: "panics"})
		var pe *dag.PanicError
		if !errors.Is(out.Err, stErrBoom) || !errors.As(out.Err, &pe) {
			t.Errorf("Wait() = %v; want an error matching boom through a *dag.PanicError", out.Err)
		}
	})
	t.Run("retried", func(t *testing.T) {
		var calls atomic.Int32
		tasks := []dag.Task{{Name: "p", MaxRetries: 1, Func: stScript(&calls,
			func(context.Context, dag.Values) (map[string]any, error) { panic(stErrBang) },
			stOK(map[string]any{"p": 2}),
		)}}
		out := stRun(t, tasks, dag.Options{Name: "panics", Backoff: stZeroBackoff})
		if out.Err != nil || calls.Load() != 2 {
			t.Fatalf("Wait() = %v after %d calls; want nil after 2", out.Err, calls.Load())
		}
		for _, e := range out.Events {
			var pe *dag.PanicError
			if e.To == dag.Retrying && (!errors.As(e.Err, &pe) || !errors.Is(e.Err, stErrBang)) {
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
					{Name: "g", Func: stScript(c, goexit)},
					{Name: "after", DependsOn: []string{"g"}, Func: stOK(nil)},
				}
			},
			wantState: dag.Failed,
			wantTasks: map[string]dag.State{"g": dag.Failed, "after": dag.Canceled},
		},
		{
			name: "retried, then succeeds",
			tasks: func(c *atomic.Int32) []dag.Task {
				return []dag.Task{
					{Name: "g", MaxRetries: 2, Func: stScript(c, goexit, goexit, stOK(nil))},
					{Name: "after", DependsOn: []string{"g"}, Func: stOK(nil)},
				}
			},
			wantState: dag.Completed,
			wantTasks: map[string]dag.State{"g": dag.Completed, "after": dag.Completed},
		},
		{
			name: "with ContinueOnFailure the rest runs",
			tasks: func(c *atomic.Int32) []dag.Task {
				return []dag.Task{
					{Name: "g", ContinueOnFailure: true, Func: stScript(c, goexit)},
					{Name: "after", DependsOn: []string{"g"}, Func: stOK(nil)},
					{Name: "x", Func: stOK(nil)},
					{Name: "y", Func: stOK(nil)},
				}
			},
			wantState: dag.Completed,
			wantTasks: map[string]dag.State{"g": dag.Failed, "after": dag.Completed, "x": dag.Completed, "y": dag.Completed},
		},
	}
	for _, tc := range cases {
		for _, mp := range stParallels {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var calls atomic.Int32
					tasks := tc.tasks(&calls)
					out := stRun(t, tasks, dag.Options{Name: "goexit", MaxParallel: mp, Backoff: stZeroBackoff})
					if out.Res.State != tc.wantState {
						t.Errorf("Result.State = %v (%v); want %v", out.Res.State, out.Err, tc.wantState)
					}
					states := map[string]dag.State{}
					for name, tr := range out.Res.Tasks {
						states[name] = tr.State
					}
					if diff := cmp.Diff(tc.wantTasks, states); diff != "" {
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

// TestTimeoutAttempt checks per-attempt timeouts in fake time, with Funcs
// that honour their ctx and Funcs that ignore it: the attempt fails at the
// deadline with an error matching context.DeadlineExceeded, the job moves
// on at once, and an ignoring Func is counted as abandoned until it
// returns.
func TestTimeoutAttempt(t *testing.T) {
	for _, honours := range []bool{true, false} {
		for _, mp := range stParallels {
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
						{Name: "after", DependsOn: []string{"slow"}, Func: stOK(nil)},
						{Name: "quick", Func: stOK(map[string]any{"quick": 1})},
					}
					opts := dag.Options{Name: "timeouts", MaxParallel: mp}
					t0 := time.Now()
					job, rec := stStart(t, t.Context(), tasks, opts)
					out := stFinish(t, job, rec, tasks, opts)
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
					if diff := cmp.Diff(want, out.Res, stIgnoreTimes); diff != "" {
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
		job, rec := stStart(t, t.Context(), tasks, opts)
		time.Sleep(time.Second + 5*time.Millisecond) // a timed out at 1s
		releaseANow()                                // a's Func returns within the grace period
		synctest.Wait()
		time.Sleep(time.Second) // the grace period is long over
		if p := job.Progress(); p.Running != 1 || p.Abandoned != 0 {
			t.Errorf("Progress() = %+v while b runs; want 1 running, none abandoned", p)
		}
		gateBNow()
		out := stFinish(t, job, rec, tasks, opts)
		if out.Err != nil {
			t.Fatalf("Wait() = %v; want nil", out.Err)
		}
		want := map[string]dag.TaskResult{
			"a": {State: dag.Failed, Attempts: 1, Err: context.DeadlineExceeded},
			"b": {State: dag.Completed, Attempts: 1},
		}
		if diff := cmp.Diff(want, out.Res.Tasks, stIgnoreTimes); diff != "" {
			t.Errorf("Result.Tasks mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestTimeoutRetryDiscardsLateResult times out a first attempt whose Func
// ignores ctx, retries, and lets the first attempt return while the job
// still runs: its late result is seen by no one.
func TestTimeoutRetryDiscardsLateResult(t *testing.T) {
	for _, mp := range stParallels {
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
					{Name: "a", Timeout: time.Second, MaxRetries: 1, Func: stScript(&aCalls,
						func(context.Context, dag.Values) (map[string]any, error) {
							<-release1
							return map[string]any{"v": "late", "late": true}, nil
						},
						stOK(map[string]any{"v": "second"}),
					)},
					{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
						<-gateB
						v, _ := in.Get("v")
						_, late := in.Get("late")
						bSaw <- []any{v, late}
						return nil, nil
					}},
				}
				opts := dag.Options{Name: "late", MaxParallel: mp, Backoff: stZeroBackoff}
				t0 := time.Now()
				job, rec := stStart(t, t.Context(), tasks, opts)
				time.Sleep(2 * time.Second) // fake: a times out at 1s, retries, and b waits
				synctest.Wait()
				release1Now() // the late result arrives while b runs
				synctest.Wait()
				gateBNow()
				out := stFinish(t, job, rec, tasks, opts)
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

// ---------------------------------------------------------------------------
// Cancellation (rule 5)

// TestCancelStopsJob stops a running job in each of the four ways, with a
// slow task that honours or ignores its ctx, and checks the result, Wait's
// error, the time Wait takes, and abandoned attempts.
func TestCancelStopsJob(t *testing.T) {
	kinds := []struct {
		name  string
		ctx   func(context.Context) (context.Context, context.CancelFunc) // Run's ctx
		opts  dag.Options
		stop  func(job *dag.Job, cancel context.CancelFunc) // at 1s; nil when the stop comes by itself
		want  error
		cause bool // Wait's error carries the cause of Run's ctx
	}{
		{name: "Job.Cancel", stop: func(j *dag.Job, _ context.CancelFunc) { j.Cancel() }, want: context.Canceled},
		{name: "Run's ctx cancelled", stop: func(_ *dag.Job, c context.CancelFunc) { c() }, want: context.Canceled},
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
							{Name: "q", Func: stOK(map[string]any{"q": 1})},
							{Name: "s", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
								if honours {
									<-ctx.Done()
									saw <- ctx.Err()
									return nil, ctx.Err()
								}
								<-release
								return map[string]any{"s": 1}, nil
							}},
							{Name: "c", DependsOn: []string{"q", "s"}, Func: stOK(map[string]any{"c": 1})},
						}
						opts := k.opts
						opts.Name, opts.MaxParallel, opts.Context = "stopme", mp, map[string]any{"init": 0}
						t0 := time.Now()
						job, rec := stStart(t, ctx, tasks, opts)
						time.Sleep(time.Second)
						if k.stop != nil {
							k.stop(job, cancel)
						}
						stopAt := t0.Add(time.Second)
						res, err := stWait(t, job)
						if d := time.Since(stopAt); d > 50*time.Millisecond {
							t.Errorf("Wait returned %v after the stop; want at most 50ms", d)
						}
						out := stOutcome{Res: res, Err: err, Events: rec.events(t)}
						stCheck(t, tasks, opts, out)
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
						if diff := cmp.Diff(want, res, stIgnoreTimes); diff != "" {
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
	t.Run("many times at once, mid-run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tasks := []dag.Task{
				{Name: "a", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
					<-ctx.Done()
					return nil, ctx.Err()
				}},
				{Name: "b", DependsOn: []string{"a"}, Func: stOK(nil)},
			}
			opts := dag.Options{Name: "idem"}
			job, rec := stStart(t, t.Context(), tasks, opts)
			synctest.Wait()
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(job.Cancel)
			}
			wg.Wait()
			job.Cancel()
			out := stFinish(t, job, rec, tasks, opts)
			job.Cancel()
			if !errors.Is(out.Err, context.Canceled) || out.Res.State != dag.Canceled {
				t.Errorf("Wait() = %v, %v; want canceled, context.Canceled", out.Res.State, out.Err)
			}
			if n := len(stTasksOf(out.Events, dag.Canceled)); n != 2 {
				t.Errorf("%d Canceled task events; want 2", n)
			}
		})
	})
	for _, tc := range []struct {
		name      string
		fn        dag.TaskFunc
		wantState dag.State
	}{
		{"after a completed job", stOK(map[string]any{"a": 1}), dag.Completed},
		{"after a failed job", stFail(stErrBoom), dag.Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []dag.Task{{Name: "a", Func: tc.fn}}
			opts := dag.Options{Name: "idem"}
			out := stRun(t, tasks, opts)
			job, err := dag.Run(t.Context(), tasks, dag.Options{Name: "idem"})
			if err != nil {
				t.Fatal(err)
			}
			res1, err1 := stWait(t, job)
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
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		tasks := []dag.Task{
			{Name: "a", Func: stOK(map[string]any{"a": 1})},
			{Name: "b", DependsOn: []string{"a"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-gate
				return nil, stErrBoom
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

// ---------------------------------------------------------------------------
// Events (rule 6)

// TestEventsExactSequence checks the whole stream of a small job, in
// order: retries, a failure with ContinueOnFailure, the errors carried.
func TestEventsExactSequence(t *testing.T) {
	for _, mp := range stParallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			var aCalls atomic.Int32
			tasks := []dag.Task{
				{Name: "a", MaxRetries: 1, Func: stScript(&aCalls, stFail(stErrBoom), stOK(map[string]any{"a": 1}))},
				{Name: "b", DependsOn: []string{"a"}, ContinueOnFailure: true, MaxRetries: dag.NoRetries, Func: stFail(stErrBang)},
				{Name: "c", DependsOn: []string{"b"}, Func: stOK(map[string]any{"c": 1})},
			}
			opts := dag.Options{Name: "seq", MaxParallel: mp, MaxRetries: 3, Backoff: stZeroBackoff}
			out := stRun(t, tasks, opts)
			ev := func(task string, from, to dag.State, att int, err error) dag.Event {
				return dag.Event{Job: "seq", Task: task, From: from, To: to, Attempt: att, Err: err}
			}
			want := []dag.Event{
				ev("", dag.Pending, dag.Running, 0, nil),
				ev("a", dag.Pending, dag.Ready, 1, nil),
				ev("a", dag.Ready, dag.Running, 1, nil),
				ev("a", dag.Running, dag.Retrying, 1, stErrBoom),
				ev("a", dag.Retrying, dag.Ready, 2, nil),
				ev("a", dag.Ready, dag.Running, 2, nil),
				ev("a", dag.Running, dag.Completed, 2, nil),
				ev("b", dag.Pending, dag.Ready, 1, nil),
				ev("b", dag.Ready, dag.Running, 1, nil),
				ev("b", dag.Running, dag.Failed, 1, stErrBang),
				ev("c", dag.Pending, dag.Ready, 1, nil),
				ev("c", dag.Ready, dag.Running, 1, nil),
				ev("c", dag.Running, dag.Completed, 1, nil),
				ev("", dag.Running, dag.Completed, 0, nil),
			}
			if diff := cmp.Diff(want, out.Events, stIgnoreTimes); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventsTimesNeverGoBack runs wide jobs on real time, where workers
// finish at once: event times must follow the order of the events, and no
// task may be stamped Started before its dependencies' Finished.
func TestEventsTimesNeverGoBack(t *testing.T) {
	for round := range 20 {
		var tasks []dag.Task
		for i := range 30 {
			task := dag.Task{Name: fmt.Sprint("t", i), Func: stOK(nil)}
			if i >= 10 {
				task.DependsOn = []string{fmt.Sprint("t", i%10)}
			}
			tasks = append(tasks, task)
		}
		out := stRun(t, tasks, dag.Options{Name: "times", MaxParallel: 2})
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
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 100
				tasks := make([]dag.Task, n)
				for i := range tasks {
					tasks[i] = dag.Task{Name: fmt.Sprint("t", i), Func: stOK(nil)}
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
				res, err := stWait(t, job)
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
				stCheck(t, tasks, opts, stOutcome{Res: res, Err: err, Events: evs})
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Observability (rule 7)

// stSyncBuffer is a bytes.Buffer safe for a logger's goroutine and the test.
type stSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *stSyncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *stSyncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestEventsLogEvents logs a job with LogEvents on a text handler at debug
// level and compares every line; the logger's goroutine must end when the
// job closes the channel (the bubble fails otherwise).
func TestEventsLogEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf stSyncBuffer
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
			{Name: "a", MaxRetries: 1, Func: stScript(&aCalls, stFail(stErrBoom), stOK(nil))},
			{Name: "b", DependsOn: []string{"a"}, Func: stOK(nil)},
			{Name: "c", ContinueOnFailure: true, Func: stFail(stErrBang)},
		}
		job, err := dag.Run(t.Context(), tasks, dag.Options{Name: "logs", MaxParallel: 1, Backoff: stZeroBackoff, Events: dag.LogEvents(logger)})
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

// TestProgressConsistent polls Progress while a job runs: every snapshot
// counts each task once, never more than MaxParallel running, and ended
// tasks never come back; the final snapshot is exact.
func TestProgressConsistent(t *testing.T) {
	for _, mp := range stParallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(mp), 7))
			tasks := stRandomDAG(r, 40, 0.08)
			wantFailed := 0
			for i := range tasks {
				tasks[i].Func = stOK(nil)
				switch i % 7 {
				case 3:
					tasks[i].ContinueOnFailure = true
					tasks[i].Func = stFail(stErrBoom)
					wantFailed++
				case 5:
					var calls atomic.Int32
					tasks[i].MaxRetries = 2
					tasks[i].Func = stScript(&calls, stFail(stErrBoom), stOK(nil))
				}
			}
			opts := dag.Options{Name: "progress", MaxParallel: mp, Backoff: stZeroBackoff}
			job, rec := stStart(t, t.Context(), tasks, opts)
			var problems []string
			var wg sync.WaitGroup
			wg.Go(func() {
				ended := 0
				for {
					select {
					case <-job.Done():
						return
					default:
					}
					p := job.Progress()
					sum := p.Pending + p.Ready + p.Running + p.Retrying + p.Completed + p.Failed + p.Canceled
					if sum != len(tasks) || p.Running > mp || p.Job != "progress" || p.Completed+p.Failed+p.Canceled < ended {
						problems = append(problems, fmt.Sprintf("%+v", p))
					}
					ended = p.Completed + p.Failed + p.Canceled
					runtime.Gosched()
				}
			})
			out := stFinish(t, job, rec, tasks, opts)
			wg.Wait()
			for _, p := range problems {
				t.Errorf("inconsistent Progress(): %s", p)
			}
			if out.Err != nil {
				t.Fatalf("Wait() = %v; want nil", out.Err)
			}
			want := dag.Progress{Job: "progress", State: dag.Completed, Completed: len(tasks) - wantFailed, Failed: wantFailed}
			if diff := cmp.Diff(want, job.Progress()); diff != "" {
				t.Errorf("final Progress() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The property test

// What an attempt of the property test does.
const (
	stDoOK        = iota // succeed, after a fake delay
	stDoErr              // fail, after a fake delay
	stDoPanic            // panic with an error
	stDoPermanent        // fail with backoff.Permanent
	stDoHang             // block until ctx ends (needs a timeout or a stop)
	stDoIgnore           // block until the end of the test, ignoring ctx
	stDoGoexit           // runtime.Goexit
)

// stProbe watches the Funcs of one property-test job.
type stProbe struct {
	mu        sync.Mutex
	calls     map[string]int
	succeeded map[string]bool // some attempt returned successfully
	problems  []string

	running atomic.Int32 // attempts whose ctx has not ended
}

func (p *stProbe) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// stPropertyCase is one random job.
type stPropertyCase struct {
	tasks    []dag.Task
	opts     dag.Options
	cancelAt time.Duration // 0: no cancel
	byCtx    bool          // cancel Run's ctx rather than calling Job.Cancel
	timeline string        // what was drawn, for failure messages
}

func stNewPropertyCase(seed uint64, p *stProbe, release <-chan struct{}) stPropertyCase {
	r := rand.New(rand.NewPCG(seed, 0xdecaf))
	n := 1 + r.IntN(12)
	tasks := stRandomDAG(r, n, 0.2)
	c := stPropertyCase{
		opts: dag.Options{
			Name:        fmt.Sprint("prop-", seed),
			MaxParallel: 1 + r.IntN(4),
			MaxRetries:  r.IntN(3),
			Context:     map[string]any{"init": true},
		},
	}
	delay := time.Duration(r.IntN(20)) * time.Millisecond
	c.opts.Backoff = func() backoff.BackOff { return backoff.NewConstantBackOff(delay) }
	if r.IntN(4) == 0 {
		c.opts.Timeout = time.Duration(20+r.IntN(200)) * time.Millisecond
	}
	if r.IntN(4) == 0 {
		c.cancelAt = time.Duration(1+r.IntN(150)) * time.Millisecond
		c.byCtx = r.IntN(2) == 0
	}
	var tl strings.Builder
	fmt.Fprintf(&tl, "MaxParallel %d, MaxRetries %d, backoff %v, Timeout %v, cancel at %v (ctx %t)\n",
		c.opts.MaxParallel, c.opts.MaxRetries, delay, c.opts.Timeout, c.cancelAt, c.byCtx)

	cont := map[string]bool{}
	for i := range tasks {
		task := &tasks[i]
		task.MaxRetries = r.IntN(4) - 1
		task.ContinueOnFailure = r.IntN(3) == 0
		cont[task.Name] = task.ContinueOnFailure
		if r.IntN(3) == 0 {
			task.Timeout = time.Duration(10+r.IntN(40)) * time.Millisecond
		}
	}
	for i := range tasks {
		task := &tasks[i]
		name, deps := task.Name, task.DependsOn
		kinds := make([]int, 4)
		sleeps := make([]time.Duration, 4)
		for a := range kinds {
			switch x := r.IntN(100); {
			case x < 55:
				kinds[a] = stDoOK
			case x < 70:
				kinds[a] = stDoErr
			case x < 77:
				kinds[a] = stDoPanic
			case x < 82:
				kinds[a] = stDoPermanent
			case x < 89:
				kinds[a] = stDoHang
			case x < 96:
				kinds[a] = stDoIgnore
			default:
				kinds[a] = stDoGoexit
			}
			if (kinds[a] == stDoHang || kinds[a] == stDoIgnore) && task.Timeout == 0 {
				kinds[a] = stDoOK // it would hang the job
			}
			sleeps[a] = time.Duration(r.IntN(30)) * time.Millisecond
		}
		fmt.Fprintf(&tl, "%s deps %v timeout %v retries %d cont %t kinds %v sleeps %v\n",
			name, deps, task.Timeout, task.MaxRetries, task.ContinueOnFailure, kinds, sleeps)
		mp := c.opts.MaxParallel
		task.Func = func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if n := p.running.Add(1); int(n) > mp {
				p.problem("%s: %d attempts running; MaxParallel is %d", name, n, mp)
			}
			var once sync.Once
			dec := func() { once.Do(func() { p.running.Add(-1) }) }
			stop := context.AfterFunc(ctx, dec)
			defer func() {
				stop()
				dec()
			}()

			p.mu.Lock()
			p.calls[name]++
			a := p.calls[name] - 1
			for _, d := range deps {
				if !p.succeeded[d] && !cont[d] {
					p.problems = append(p.problems, fmt.Sprintf("%s started before its dependency %s completed", name, d))
				}
				if _, ok := in.Get("k" + d); !ok && !cont[d] {
					p.problems = append(p.problems, fmt.Sprintf("%s does not see the output of its dependency %s", name, d))
				}
			}
			p.mu.Unlock()
			kind, sleep := kinds[min(a, len(kinds)-1)], sleeps[min(a, len(sleeps)-1)]

			if kind == stDoOK || kind == stDoErr {
				timer := time.NewTimer(sleep)
				defer timer.Stop()
				select {
				case <-timer.C:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			switch kind {
			case stDoErr:
				return nil, stErrBoom
			case stDoPanic:
				panic(stErrBang)
			case stDoPermanent:
				return nil, backoff.Permanent(stErrBoom)
			case stDoHang:
				<-ctx.Done()
				return nil, ctx.Err()
			case stDoIgnore:
				<-release
				return map[string]any{"late-" + name: true}, nil
			case stDoGoexit:
				runtime.Goexit()
			}
			p.mu.Lock()
			p.succeeded[name] = true
			p.mu.Unlock()
			return map[string]any{"k" + name: a + 1}, nil
		}
	}
	c.tasks = tasks
	c.timeline = tl.String()
	return c
}

// TestPropertyRandomJobs runs a few hundred random jobs, with random
// errors, panics, Goexits, timeouts, retries, ContinueOnFailure, job
// timeouts and cancels, in fake time, and checks what must always hold.
func TestPropertyRandomJobs(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &stProbe{calls: map[string]int{}, succeeded: map[string]bool{}}
				release := make(chan struct{})
				releaseNow := sync.OnceFunc(func() { close(release) })
				defer releaseNow()
				c := stNewPropertyCase(seed, p, release)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				job, rec := stStart(t, ctx, c.tasks, c.opts)
				if c.cancelAt > 0 {
					go func() {
						timer := time.NewTimer(c.cancelAt)
						defer timer.Stop()
						select {
						case <-timer.C:
						case <-job.Done():
							return
						}
						if c.byCtx {
							cancel()
						} else {
							job.Cancel()
						}
					}()
				}
				res, err := stWait(t, job)
				waited := time.Now()
				out := stOutcome{Res: res, Err: err, Events: rec.events(t)}
				stCheck(t, c.tasks, c.opts, out)

				// Wait returns promptly once the job stops.
				for _, e := range out.Events {
					if e.To == dag.Canceled && e.Task != "" {
						if d := waited.Sub(e.Time); d > 50*time.Millisecond {
							t.Errorf("Wait returned %v after the job stopped; want at most 50ms", d)
						}
						break
					}
				}
				// The context holds the outputs of completed tasks only.
				wantKeys := []string{"init"}
				for name, tr := range res.Tasks {
					if tr.State == dag.Completed {
						wantKeys = append(wantKeys, "k"+name)
					}
				}
				var gotKeys []string
				for k := range res.Context {
					gotKeys = append(gotKeys, k)
				}
				if diff := cmp.Diff(wantKeys, gotKeys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("Result.Context keys mismatch (-want +got):\n%s", diff)
				}

				releaseNow()
				synctest.Wait() // every Func has returned
				p.mu.Lock()
				defer p.mu.Unlock()
				for _, prob := range p.problems {
					t.Error(prob)
				}
				for name, tr := range res.Tasks {
					if p.calls[name] != tr.Attempts {
						t.Errorf("task %s: Func called %d times; Result says %d attempts", name, p.calls[name], tr.Attempts)
					}
				}
				if pr := job.Progress(); pr.Abandoned != 0 {
					t.Errorf("Progress().Abandoned = %d once every Func returned; want 0", pr.Abandoned)
				}
				if t.Failed() {
					t.Logf("the job:\n%s", c.timeline)
					for _, e := range out.Events {
						t.Logf("%v", e)
					}
				}
			})
		})
	}
}
