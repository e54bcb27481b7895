package dag_test

// Scaffolding shared by the package's tests: errors, cmp options, a hang
// guard, Funcs, running a job with its events recorded, and small readers
// of Values. The checkers are in checkers_test.go.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	errBoom = errors.New("boom")
	errBang = errors.New("bang")
)

// parallels are the MaxParallel values scheduling tests run with: 1,
// where deadlocks hide, and larger ones.
var parallels = []int{1, 2, 4}

// ignoreTimes ignores the timestamps of task results and events.
var ignoreTimes = cmp.Options{
	cmpopts.IgnoreFields(dag.TaskResult{}, "Started", "Finished", "Output"),
	cmpopts.IgnoreFields(dag.Event{}, "Time"),
	cmpopts.EquateErrors(),
}

// guard returns a context that ends a little before the test's deadline,
// so that a test waiting on a broken job fails with a message instead of
// being killed. Inside a synctest bubble it is a fake-time timer far in
// the future, which fires as soon as the bubble is otherwise deadlocked.
func guard(t *testing.T) context.Context {
	t.Helper()
	ctx := t.Context()
	if dl, ok := deadline(t); ok {
		c, cancel := context.WithTimeout(ctx, time.Until(dl)*9/10)
		t.Cleanup(cancel)
		return c
	}
	return ctx
}

// deadline is t.Deadline, but reports no deadline inside a synctest
// bubble, where t.Deadline panics: there a hang is a deadlock, which
// synctest reports by itself.
func deadline(t *testing.T) (dl time.Time, ok bool) {
	defer func() {
		if recover() != nil {
			dl, ok = time.Time{}, false
		}
	}()
	return t.Deadline()
}

// eventLog reads a job's events until Run closes the channel.
type eventLog struct {
	ch   chan dag.Event
	done chan struct{}
	evs  []dag.Event // written by the reader until done is closed
}

func newEventLog() *eventLog {
	r := &eventLog{ch: make(chan dag.Event), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for e := range r.ch {
			r.evs = append(r.evs, e)
		}
	}()
	return r
}

// events waits for the channel to be closed and returns every event.
func (r *eventLog) events(t *testing.T) []dag.Event {
	t.Helper()
	select {
	case <-r.done:
	case <-guard(t).Done():
		t.Fatalf("the events channel was not closed before the test's deadline")
	}
	return r.evs
}

// startJob runs tasks with a recorder on Options.Events.
func startJob(t *testing.T, ctx context.Context, tasks []dag.Task, opts dag.Options) (*dag.Job, *eventLog) {
	t.Helper()
	rec := newEventLog()
	opts.Events = rec.ch
	job, err := dag.Run(ctx, tasks, opts)
	if err != nil {
		close(rec.ch)
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	return job, rec
}

// waitJob waits for the job, failing the test if it does not end before
// the test's deadline.
func waitJob(t *testing.T, job *dag.Job) (dag.Result, error) {
	t.Helper()
	select {
	case <-job.Done():
	case <-guard(t).Done():
		t.Fatalf("the job did not end before the test's deadline; progress: %+v", job.Progress())
	}
	return job.Wait()
}

// finishJob waits for the job and its events, and checks them with
// checkJob.
func finishJob(t *testing.T, job *dag.Job, rec *eventLog, tasks []dag.Task, opts dag.Options) outcome {
	t.Helper()
	res, err := waitJob(t, job)
	out := outcome{Res: res, Err: err, Events: rec.events(t)}
	checkJob(t, tasks, opts, out)
	return out
}

// runJob runs tasks to the end and checks the outcome with checkJob.
func runJob(t *testing.T, tasks []dag.Task, opts dag.Options) outcome {
	t.Helper()
	job, rec := startJob(t, t.Context(), tasks, opts)
	return finishJob(t, job, rec, tasks, opts)
}

// script returns a Func that runs steps[i] on its call i (the last step
// on later calls) and counts its calls.
func script(calls *atomic.Int32, steps ...dag.TaskFunc) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		i := int(calls.Add(1)) - 1
		return steps[min(i, len(steps)-1)](ctx, in)
	}
}

// succeed returns a Func that returns a fresh copy of out.
func succeed(out map[string]any) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) { return maps.Clone(out), nil }
}

// noop is a Func that adds nothing.
func noop(context.Context, dag.Values) (map[string]any, error) { return nil, nil }

// fail returns a Func that fails with err.
func fail(err error) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) { return nil, err }
}

// zeroBackoff retries at once.
func zeroBackoff() backoff.BackOff { return &backoff.ZeroBackOff{} }

// raiseMax raises *max to at least n.
func raiseMax(max *atomic.Int32, n int32) {
	for {
		m := max.Load()
		if n <= m || max.CompareAndSwap(m, n) {
			return
		}
	}
}

// checkStates reports each task of want whose state in res is not the one
// want gives it; prefix, if not empty, starts each message.
func checkStates(t *testing.T, prefix string, res dag.Result, want map[string]dag.State) {
	t.Helper()
	for name, st := range want {
		if got := res.Tasks[name].State; got != st {
			t.Errorf("%s%s ended %v; want %v", prefix, name, got, st)
		}
	}
}

// statesOf returns the state of each task of res, by name.
func statesOf(res dag.Result) map[string]dag.State {
	states := make(map[string]dag.State, len(res.Tasks))
	for name, tr := range res.Tasks {
		states[name] = tr.State
	}
	return states
}

// tasksOf lists the task names of some events, in order, for those
// whose transition is to.
func tasksOf(evs []dag.Event, to dag.State) []string {
	var names []string
	for _, e := range evs {
		if e.Task != "" && e.To == to {
			names = append(names, e.Task)
		}
	}
	return names
}

// randomDAG makes n tasks with random dependencies (each on an earlier
// task of a hidden topological order), declared in a random order.
func randomDAG(r *rand.Rand, n int, p float64) []dag.Task {
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

// runTasks runs tasks to the end; Run must accept them.
func runTasks(t *testing.T, tasks []dag.Task, opts dag.Options) (dag.Result, error) {
	t.Helper()
	job, err := dag.Run(context.Background(), tasks, opts)
	if err != nil {
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	return waitJob(t, job)
}

// valuesMap collects v.All into a map.
func valuesMap(v dag.Values) map[string]any {
	m := map[string]any{}
	for k, val := range v.All() {
		m[k] = val
	}
	return m
}

// valuesKeys lists v.All's keys in the order it yields them.
func valuesKeys(v dag.Values) []string {
	var keys []string
	for k := range v.All() {
		keys = append(keys, k)
	}
	return keys
}

// view is everything a task saw of its Values, read three ways.
type view struct {
	Len  int
	Keys []string       // in the order All yields them
	All  map[string]any // from All
	Get  map[string]any // from Get, over every key of the job
}

// see reads v through Len, All and Get of every key in universe.
func see(v dag.Values, universe []string) view {
	view := view{Len: v.Len(), Keys: valuesKeys(v), All: valuesMap(v), Get: map[string]any{}}
	for _, k := range universe {
		if val, ok := v.Get(k); ok {
			view.Get[k] = val
		}
	}
	return view
}

// wantView is the view of a Values that holds exactly m.
func wantView(m map[string]any) view {
	keys := slices.Sorted(maps.Keys(m))
	return view{Len: len(m), Keys: keys, All: maps.Clone(m), Get: maps.Clone(m)}
}

// taskName names task i of a generated graph.
func taskName(i int) string { return "t" + strconv.Itoa(i) }

// chain returns n no-op tasks, each depending on the one before; with
// cycle, the first also depends on the last.
func chain(n int, cycle bool) []dag.Task {
	tasks := make([]dag.Task, n)
	// One backing array for all the one-name dependency lists.
	deps := make([]string, n)
	for i := range tasks {
		tasks[i] = dag.Task{Name: taskName(i), Func: noop}
		if i > 0 {
			deps[i] = tasks[i-1].Name
			tasks[i].DependsOn = deps[i : i+1 : i+1]
		}
	}
	if cycle {
		deps[0] = tasks[n-1].Name
		tasks[0].DependsOn = deps[0:1:1]
	}
	return tasks
}

// allCompleted checks that res completed with every one of tasks
// completed after one attempt.
func allCompleted(t *testing.T, res dag.Result, err error, tasks []dag.Task) {
	t.Helper()
	if err != nil || res.State != dag.Completed {
		t.Fatalf("Wait() = %v, %v; want completed, nil", res.State, err)
	}
	if len(res.Tasks) != len(tasks) {
		t.Fatalf("Result.Tasks has %d tasks; want %d", len(res.Tasks), len(tasks))
	}
	bad := 0
	for _, tk := range tasks {
		if tr := res.Tasks[tk.Name]; tr.State != dag.Completed || tr.Attempts != 1 {
			if bad++; bad <= 5 {
				t.Errorf("Result.Tasks[%q] = %v after %d attempts; want completed after 1", tk.Name, tr.State, tr.Attempts)
			}
		}
	}
	if bad > 5 {
		t.Errorf("… and %d more tasks not completed", bad-5)
	}
}
