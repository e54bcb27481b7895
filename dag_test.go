package dag_test

// Tests of rules 1 and 3 of the design (issue 2): validation before
// anything runs, and the job context (what each task sees, who wins a key,
// conflicts, ownership of maps); and of Values, Lookup, TaskError and
// PanicError. Nothing here depends on time: tasks that must overlap or
// follow each other synchronise on channels, and retries use a zero
// backoff.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dagrun/dag"
)

var (
	dtErrBoom = errors.New("boom")
	dtErrBang = errors.New("bang")
)

// dtIgnoreTimes ignores the timestamps of task results.
var dtIgnoreTimes = cmp.Options{
	cmpopts.IgnoreFields(dag.TaskResult{}, "Started", "Finished", "Output"),
	cmpopts.EquateErrors(),
}

// dtGuard returns a context that ends a little before the test's deadline,
// so that a test waiting on a broken job fails with a message instead of
// being killed.
func dtGuard(t *testing.T) context.Context {
	t.Helper()
	ctx := t.Context()
	if dl, ok := t.Deadline(); ok {
		c, cancel := context.WithTimeout(ctx, time.Until(dl)*9/10)
		t.Cleanup(cancel)
		return c
	}
	return ctx
}

// dtWait waits for the job, failing the test if it does not end before
// the test's deadline.
func dtWait(t *testing.T, job *dag.Job) (dag.Result, error) {
	t.Helper()
	select {
	case <-job.Done():
	case <-dtGuard(t).Done():
		t.Fatalf("the job did not end before the test's deadline; progress: %+v", job.Progress())
	}
	return job.Wait()
}

// dtRun runs tasks to the end; Run must accept them.
func dtRun(t *testing.T, tasks []dag.Task, opts dag.Options) (dag.Result, error) {
	t.Helper()
	job, err := dag.Run(context.Background(), tasks, opts)
	if err != nil {
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	return dtWait(t, job)
}

// dtNoop is a Func that adds nothing.
func dtNoop(context.Context, dag.Values) (map[string]any, error) { return nil, nil }

// dtOK returns a Func that returns a fresh copy of out.
func dtOK(out map[string]any) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) { return maps.Clone(out), nil }
}

// dtMap collects v.All into a map.
func dtMap(v dag.Values) map[string]any {
	m := map[string]any{}
	for k, val := range v.All() {
		m[k] = val
	}
	return m
}

// dtKeys lists v.All's keys in the order it yields them.
func dtKeys(v dag.Values) []string {
	var keys []string
	for k := range v.All() {
		keys = append(keys, k)
	}
	return keys
}

// dtView is everything a task saw of its Values, read three ways.
type dtView struct {
	Len  int
	Keys []string       // in the order All yields them
	All  map[string]any // from All
	Get  map[string]any // from Get, over every key of the job
}

// dtSee reads v through Len, All and Get of every key in universe.
func dtSee(v dag.Values, universe []string) dtView {
	view := dtView{Len: v.Len(), Keys: dtKeys(v), All: dtMap(v), Get: map[string]any{}}
	for _, k := range universe {
		if val, ok := v.Get(k); ok {
			view.Get[k] = val
		}
	}
	return view
}

// dtWantView is the view of a Values that holds exactly m.
func dtWantView(m map[string]any) dtView {
	keys := slices.Sorted(maps.Keys(m))
	return dtView{Len: len(m), Keys: keys, All: maps.Clone(m), Get: maps.Clone(m)}
}

// ---------------------------------------------------------------------------
// Validation (rule 1)

// dtValidationCases are task lists with one kind of problem each.
var dtValidationCases = []struct {
	name   string
	tasks  []dag.Task
	want   error    // the sentinel the error must match
	msg    []string // substrings the message must contain
	reason string
}{
	{
		name:   "empty name",
		tasks:  []dag.Task{{Name: "ok", Func: dtNoop}, {Name: "", Func: dtNoop}},
		want:   dag.ErrInvalidTask,
		msg:    []string{"#1", "empty name"},
		reason: "a task without a name cannot be depended on or reported",
	},
	{
		name:   "duplicate names",
		tasks:  []dag.Task{{Name: "a", Func: dtNoop}, {Name: "b", Func: dtNoop}, {Name: "a", Func: dtNoop}},
		want:   dag.ErrDuplicateTask,
		msg:    []string{`"a"`, "#0", "#2"},
		reason: "dependencies on a would be ambiguous",
	},
	{
		name:   "nil Func",
		tasks:  []dag.Task{{Name: "a", Func: dtNoop}, {Name: "lazy"}},
		want:   dag.ErrInvalidTask,
		msg:    []string{`"lazy"`, "nil Func"},
		reason: "a task must do something",
	},
	{
		name:   "unknown dependency",
		tasks:  []dag.Task{{Name: "a", Func: dtNoop, DependsOn: []string{"ghost"}}},
		want:   dag.ErrMissingDependency,
		msg:    []string{`"a"`, `"ghost"`},
		reason: "a dependency must be declared",
	},
	{
		name:   "dependency on itself",
		tasks:  []dag.Task{{Name: "narcissus", Func: dtNoop, DependsOn: []string{"narcissus"}}},
		want:   dag.ErrCycle,
		msg:    []string{`"narcissus"`, "itself"},
		reason: "a self-dependency is the shortest cycle",
	},
	{
		name: "2-cycle",
		tasks: []dag.Task{
			{Name: "a", Func: dtNoop, DependsOn: []string{"b"}},
			{Name: "b", Func: dtNoop, DependsOn: []string{"a"}},
		},
		want:   dag.ErrCycle,
		msg:    []string{"a -> b -> a"},
		reason: "neither task could ever start",
	},
	{
		name: "3-cycle",
		// b runs after a, c after b, a after c.
		tasks: []dag.Task{
			{Name: "a", Func: dtNoop, DependsOn: []string{"c"}},
			{Name: "b", Func: dtNoop, DependsOn: []string{"a"}},
			{Name: "c", Func: dtNoop, DependsOn: []string{"b"}},
		},
		want:   dag.ErrCycle,
		msg:    []string{"a -> b -> c -> a"},
		reason: "the path is shown in execution direction, each task depending on the one before it",
	},
	{
		name: "cycle behind a valid prefix",
		tasks: []dag.Task{
			{Name: "root", Func: dtNoop},
			{Name: "x", Func: dtNoop, DependsOn: []string{"root", "z"}},
			{Name: "y", Func: dtNoop, DependsOn: []string{"x"}},
			{Name: "z", Func: dtNoop, DependsOn: []string{"y"}},
			{Name: "leaf", Func: dtNoop, DependsOn: []string{"z"}},
		},
		want:   dag.ErrCycle,
		msg:    []string{"x -> y -> z -> x"},
		reason: "only the cycle's tasks are in the path, not the tasks before or after it",
	},
	{
		name:   "negative Timeout",
		tasks:  []dag.Task{{Name: "hasty", Func: dtNoop, Timeout: -time.Second}},
		want:   dag.ErrInvalidTask,
		msg:    []string{`"hasty"`, "Timeout"},
		reason: "a negative timeout means nothing",
	},
	{
		name:   "MaxRetries below NoRetries",
		tasks:  []dag.Task{{Name: "eager", Func: dtNoop, MaxRetries: -2}},
		want:   dag.ErrInvalidTask,
		msg:    []string{`"eager"`, "MaxRetries", "-2"},
		reason: "only NoRetries (-1) may be negative",
	},
}

// TestValidateEachProblem checks that each kind of problem is reported
// with its sentinel and a message naming the culprit.
func TestValidateEachProblem(t *testing.T) {
	for _, tc := range dtValidationCases {
		t.Run(tc.name, func(t *testing.T) {
			err := dag.Validate(tc.tasks)
			if err == nil {
				t.Fatalf("Validate(…) = nil; want an error matching %v (%s)", tc.want, tc.reason)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Validate(…) = %v; want an error matching %v (%s)", err, tc.want, tc.reason)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate(…) = %q; want a message containing %q (%s)", err, s, tc.reason)
				}
			}
			if tc.want == dag.ErrCycle {
				dtCheckCyclePaths(t, tc.tasks, err)
			}
			if !strings.HasPrefix(err.Error(), "dag: ") {
				t.Errorf("Validate(…) = %q; want a message starting with \"dag: \"", err)
			}
		})
	}
}

// dtCheckCyclePaths checks every path in a cycle error's message: each
// task in it must depend on the one before it, and the path must close.
func dtCheckCyclePaths(t *testing.T, tasks []dag.Task, err error) {
	t.Helper()
	deps := map[string][]string{}
	for _, task := range tasks {
		deps[task.Name] = task.DependsOn
	}
	const prefix = "dependency cycle: "
	for _, line := range strings.Split(err.Error(), "\n") {
		i := strings.Index(line, prefix)
		if i < 0 {
			continue
		}
		path, _, ok := strings.Cut(line[i+len(prefix):], " (")
		if !ok {
			t.Errorf("cycle message %q: want the path followed by an explanation in parentheses", line)
			continue
		}
		names := strings.Split(path, " -> ")
		if len(names) < 3 || names[0] != names[len(names)-1] {
			t.Errorf("cycle path %q does not close on itself", path)
			continue
		}
		for k := 1; k < len(names); k++ {
			if !slices.Contains(deps[names[k]], names[k-1]) {
				t.Errorf("cycle path %q: %q does not depend on %q; want each task to depend on the one before it", path, names[k], names[k-1])
			}
		}
	}
}

// TestValidateCycleRotations declares one 4-cycle in every rotation and
// checks the path is always a real cycle in execution direction, starting
// at the task declared first.
func TestValidateCycleRotations(t *testing.T) {
	// Execution order around the cycle: w, x, y, z, w.
	base := []dag.Task{
		{Name: "w", Func: dtNoop, DependsOn: []string{"z"}},
		{Name: "x", Func: dtNoop, DependsOn: []string{"w"}},
		{Name: "y", Func: dtNoop, DependsOn: []string{"x"}},
		{Name: "z", Func: dtNoop, DependsOn: []string{"y"}},
	}
	cycle := []string{"w", "x", "y", "z"}
	for r := range len(base) {
		tasks := append(slices.Clone(base[r:]), base[:r]...)
		t.Run("first="+tasks[0].Name, func(t *testing.T) {
			err := dag.Validate(tasks)
			if !errors.Is(err, dag.ErrCycle) {
				t.Fatalf("Validate(…) = %v; want ErrCycle", err)
			}
			want := append(append(slices.Clone(cycle[r:]), cycle[:r]...), cycle[r])
			if path := strings.Join(want, " -> "); !strings.Contains(err.Error(), path) {
				t.Errorf("Validate(…) = %q; want the path %q", err, path)
			}
			if n := strings.Count(err.Error(), "dependency cycle:"); n != 1 {
				t.Errorf("Validate(…) reports %d cycles; want 1:\n%v", n, err)
			}
			dtCheckCyclePaths(t, tasks, err)
		})
	}
}

// TestValidateAcceptsValid checks that valid task lists, including the
// edge values of each field, pass.
func TestValidateAcceptsValid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tasks  []dag.Task
		reason string
	}{
		{"none", nil, "zero tasks is an empty job"},
		{"one", []dag.Task{{Name: "a", Func: dtNoop}}, "Task{Name, Func} is complete"},
		{"NoRetries", []dag.Task{{Name: "a", Func: dtNoop, MaxRetries: dag.NoRetries}}, "-1 is the named constant"},
		{"zero Timeout", []dag.Task{{Name: "a", Func: dtNoop, Timeout: 0}}, "0 means no timeout"},
		{"duplicate dependency", []dag.Task{
			{Name: "a", Func: dtNoop},
			{Name: "b", Func: dtNoop, DependsOn: []string{"a", "a"}},
		}, "listing a task twice is listing it once"},
		{"declared after its dependent", []dag.Task{
			{Name: "b", Func: dtNoop, DependsOn: []string{"a"}},
			{Name: "a", Func: dtNoop},
		}, "declaration order is not execution order"},
		{"diamond", []dag.Task{
			{Name: "a", Func: dtNoop},
			{Name: "b", Func: dtNoop, DependsOn: []string{"a"}},
			{Name: "c", Func: dtNoop, DependsOn: []string{"a"}},
			{Name: "d", Func: dtNoop, DependsOn: []string{"b", "c"}},
		}, "two paths to one task are not a cycle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := dag.Validate(tc.tasks); err != nil {
				t.Errorf("Validate(…) = %v; want nil (%s)", err, tc.reason)
			}
		})
	}
}

// TestValidateReportsEveryProblem checks that one error reports every
// problem of a list, each matching its sentinel and naming its task.
func TestValidateReportsEveryProblem(t *testing.T) {
	tasks := []dag.Task{
		{Name: "loop1", Func: dtNoop, DependsOn: []string{"loop2"}},
		{Name: "loop2", Func: dtNoop, DependsOn: []string{"loop1"}},
		{Name: "orphan", Func: dtNoop, DependsOn: []string{"ghost"}},
		{Name: "twin", Func: dtNoop},
		{Name: "twin", Func: dtNoop},
		{Name: "lazy"},
		{Name: "hasty", Func: dtNoop, Timeout: -1},
	}
	err := dag.Validate(tasks)
	if err == nil {
		t.Fatal("Validate(…) = nil; want every problem")
	}
	for _, want := range []error{dag.ErrCycle, dag.ErrMissingDependency, dag.ErrDuplicateTask, dag.ErrInvalidTask} {
		if !errors.Is(err, want) {
			t.Errorf("Validate(…) = %v; want it to match %v too", err, want)
		}
	}
	if errors.Is(err, dag.ErrInvalidOptions) {
		t.Errorf("Validate(…) = %v; want no ErrInvalidOptions: Validate sees no options", err)
	}
	for _, name := range []string{"loop1 -> loop2 -> loop1", `"ghost"`, `"orphan"`, `"twin"`, `"lazy"`, `"hasty"`} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Validate(…) = %q; want it to name %s", err, name)
		}
	}

	// The same problems, plus bad options, through Run.
	var calls atomic.Int32
	counting := func(context.Context, dag.Values) (map[string]any, error) {
		calls.Add(1)
		return nil, nil
	}
	for i := range tasks {
		if tasks[i].Func != nil {
			tasks[i].Func = counting
		}
	}
	job, err := dag.Run(context.Background(), tasks, dag.Options{MaxParallel: -1, MaxRetries: -1, Timeout: -1})
	if job != nil {
		t.Errorf("Run(…) returned a job; want nil")
	}
	for _, want := range []error{dag.ErrCycle, dag.ErrMissingDependency, dag.ErrDuplicateTask, dag.ErrInvalidTask, dag.ErrInvalidOptions} {
		if !errors.Is(err, want) {
			t.Errorf("Run(…) = %v; want it to match %v", err, want)
		}
	}
	for _, name := range []string{"MaxParallel", "MaxRetries", "Options.Timeout", `"orphan"`, `"hasty"`} {
		if !strings.Contains(fmt.Sprint(err), name) {
			t.Errorf("Run(…) = %q; want it to name %s", err, name)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("Run with invalid tasks called Funcs %d times; want 0", n)
	}
}

// TestValidateAndRunAgree checks that Run rejects exactly what Validate
// rejects, with the same message, returns no job and calls no Func.
func TestValidateAndRunAgree(t *testing.T) {
	for _, tc := range dtValidationCases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := slices.Clone(tc.tasks)
			for i := range tasks {
				if tasks[i].Func != nil {
					tasks[i].Func = func(context.Context, dag.Values) (map[string]any, error) {
						calls.Add(1)
						return nil, nil
					}
				}
			}
			verr := dag.Validate(tasks)
			job, rerr := dag.Run(context.Background(), tasks, dag.Options{})
			if job != nil {
				t.Errorf("Run(…) returned a job for invalid tasks; want nil")
				job.Cancel()
				dtWait(t, job)
			}
			if rerr == nil || verr == nil {
				t.Fatalf("Validate(…) = %v, Run(…) = %v; want both to fail", verr, rerr)
			}
			if verr.Error() != rerr.Error() {
				t.Errorf("Run(…) = %q; want the same message as Validate(…) = %q", rerr, verr)
			}
			if !errors.Is(rerr, tc.want) {
				t.Errorf("Run(…) = %v; want an error matching %v", rerr, tc.want)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("Run with invalid tasks called Funcs %d times; want 0", n)
			}
		})
	}
}

// TestRunInvalidOptions checks each bad option and a nil context: Run
// returns no job and an error matching ErrInvalidOptions that names the
// field.
func TestRunInvalidOptions(t *testing.T) {
	var nilCtx context.Context
	for _, tc := range []struct {
		name string
		ctx  context.Context
		opts dag.Options
		msg  string
	}{
		{"MaxParallel", context.Background(), dag.Options{MaxParallel: -1}, "MaxParallel"},
		{"MaxRetries", context.Background(), dag.Options{MaxRetries: -1}, "MaxRetries"},
		{"Timeout", context.Background(), dag.Options{Timeout: -time.Nanosecond}, "Timeout"},
		{"nil context", nilCtx, dag.Options{}, "context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{{Name: "a", Func: func(context.Context, dag.Values) (map[string]any, error) {
				calls.Add(1)
				return nil, nil
			}}}
			job, err := dag.Run(tc.ctx, tasks, tc.opts)
			if job != nil {
				t.Errorf("Run(…) returned a job; want nil")
			}
			if !errors.Is(err, dag.ErrInvalidOptions) {
				t.Errorf("Run(…) = %v; want an error matching ErrInvalidOptions", err)
			}
			if !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Errorf("Run(…) = %q; want it to name %s", err, tc.msg)
			}
			for _, other := range []error{dag.ErrInvalidTask, dag.ErrCycle, dag.ErrMissingDependency, dag.ErrDuplicateTask} {
				if errors.Is(err, other) {
					t.Errorf("Run(…) = %v; want no match for %v: the tasks are fine", err, other)
				}
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("Run with invalid options called Funcs %d times; want 0", n)
			}
		})
	}
}

// TestRunZeroTasks checks that an empty job completes at once with the
// initial context as its result.
func TestRunZeroTasks(t *testing.T) {
	initial := map[string]any{"a": 1, "b": "two"}
	job, err := dag.Run(context.Background(), nil, dag.Options{Context: initial})
	if err != nil {
		t.Fatalf("Run(nil) = %v; want no error", err)
	}
	select {
	case <-job.Done():
	default:
		t.Fatal("Run(nil) returned a job that has not ended; want it done at once")
	}
	res, err := job.Wait()
	if err != nil {
		t.Errorf("Wait() = %v; want nil", err)
	}
	want := dag.Result{State: dag.Completed, Context: map[string]any{"a": 1, "b": "two"}, Tasks: map[string]dag.TaskResult{}}
	if diff := cmp.Diff(want, res, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Wait() mismatch (-want +got):\n%s", diff)
	}
	// The result's map is the caller's, not the one given to Run.
	res.Context["c"] = 3
	if _, ok := initial["c"]; ok {
		t.Errorf("writing Result.Context changed Options.Context; want a copy")
	}
}

// ---------------------------------------------------------------------------
// The job context (rule 3)

// dtCompletions reads a job's events until Run closes the channel, and
// closes a channel per task when that task completes, so that a Func can
// wait until another task's output is in the job context.
type dtCompletions struct {
	ch   chan dag.Event
	done map[string]chan struct{}
	end  chan struct{}
}

func dtNewCompletions(names ...string) *dtCompletions {
	c := &dtCompletions{ch: make(chan dag.Event), done: map[string]chan struct{}{}, end: make(chan struct{})}
	for _, name := range names {
		c.done[name] = make(chan struct{})
	}
	go func() {
		defer close(c.end)
		for e := range c.ch {
			if d, ok := c.done[e.Task]; ok && e.To == dag.Completed {
				close(d)
			}
		}
	}()
	return c
}

// await blocks until every named task has completed or ctx ends.
func (c *dtCompletions) await(ctx context.Context, names ...string) error {
	for _, name := range names {
		select {
		case <-c.done[name]:
		case <-ctx.Done():
			return fmt.Errorf("waiting for task %q to complete: %w", name, context.Cause(ctx))
		}
	}
	return nil
}

// wait waits for Run to close the events channel.
func (c *dtCompletions) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.end:
	case <-dtGuard(t).Done():
		t.Fatal("the events channel was not closed before the test's deadline")
	}
}

// dtVisibilityTasks is a diamond (root, l, r, sink) beside an unrelated
// chain (x, y). Each task writes its own name.
var dtVisibilityTasks = []struct {
	name string
	deps []string
	gate []string // with MaxParallel > 1, tasks to wait for before reading
	sees []string // keys the task must see besides "init"
}{
	{"root", nil, nil, nil},
	{"x", nil, []string{"root"}, nil},
	{"y", []string{"x"}, []string{"l", "r"}, []string{"x"}},
	{"l", []string{"root"}, nil, []string{"root"}},
	{"r", []string{"root"}, nil, []string{"root"}},
	{"sink", []string{"l", "r"}, []string{"y"}, []string{"root", "l", "r"}},
}

// TestContextVisibility checks that a task sees exactly the initial
// context plus the outputs of its transitive dependencies, through Len,
// All (sorted) and Get, and nothing of the tasks it does not depend on
// even when their outputs are already in the job context; and that
// Result.Context holds the initial context plus every output.
func TestContextVisibility(t *testing.T) {
	universe := []string{"init"}
	for _, vt := range dtVisibilityTasks {
		universe = append(universe, vt.name)
	}
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			for range 20 {
				guard := dtGuard(t)
				comp := dtNewCompletions(universe...)
				var mu sync.Mutex
				got := map[string]dtView{}
				var tasks []dag.Task
				for _, vt := range dtVisibilityTasks {
					tasks = append(tasks, dag.Task{Name: vt.name, DependsOn: vt.deps, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
						if mp > 1 {
							// Wait until unrelated outputs are in the context.
							if err := comp.await(guard, vt.gate...); err != nil {
								return nil, err
							}
						}
						view := dtSee(in, universe)
						mu.Lock()
						got[vt.name] = view
						mu.Unlock()
						return map[string]any{vt.name: vt.name + "-out"}, nil
					}})
				}
				res, err := dtRun(t, tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"init": 0}, Events: comp.ch})
				comp.wait(t)
				if err != nil {
					t.Fatalf("Wait() = %v; want nil", err)
				}
				want := map[string]dtView{}
				final := map[string]any{"init": 0}
				for _, vt := range dtVisibilityTasks {
					m := map[string]any{"init": 0}
					for _, k := range vt.sees {
						m[k] = k + "-out"
					}
					want[vt.name] = dtWantView(m)
					final[vt.name] = vt.name + "-out"
				}
				mu.Lock()
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("what each task saw mismatch (-want +got):\n%s", diff)
				}
				mu.Unlock()
				if diff := cmp.Diff(final, res.Context); diff != "" {
					t.Fatalf("Result.Context mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestContextFailedOutputsUnseen checks that the map returned with an error,
// by an attempt that is retried or by a task that fails for good with
// ContinueOnFailure, is seen by no task, is not in Result.Context, and
// cannot conflict with another task's write.
func TestContextFailedOutputsUnseen(t *testing.T) {
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			universe := []string{"init", "flaky", "junk", "broken", "shared", "after", "other"}
			var mu sync.Mutex
			got := map[string]dtView{}
			see := func(name string, in dag.Values) {
				mu.Lock()
				defer mu.Unlock()
				got[name] = dtSee(in, universe)
			}
			var calls atomic.Int32
			tasks := []dag.Task{
				{Name: "flaky", MaxRetries: 1, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					if calls.Add(1) == 1 {
						return map[string]any{"flaky": "bad", "junk": 1, "shared": "flaky"}, dtErrBoom
					}
					return map[string]any{"flaky": "good"}, nil
				}},
				{Name: "broken", ContinueOnFailure: true, MaxRetries: dag.NoRetries, Func: func(context.Context, dag.Values) (map[string]any, error) {
					return map[string]any{"broken": 1, "junk": 2, "shared": "broken"}, dtErrBang
				}},
				{Name: "after", DependsOn: []string{"flaky", "broken"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					see("after", in)
					return map[string]any{"after": 1}, nil
				}},
				// Unordered with flaky and broken: its write of shared is
				// no conflict, since theirs failed.
				{Name: "other", Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					see("other", in)
					return map[string]any{"other": 1, "shared": "other"}, nil
				}},
			}
			res, err := dtRun(t, tasks, dag.Options{
				MaxParallel: mp,
				Context:     map[string]any{"init": 0},
				Backoff:     func() backoff.BackOff { return &backoff.ZeroBackOff{} },
			})
			if err != nil {
				t.Fatalf("Wait() = %v; want nil: broken has ContinueOnFailure and failed writes are no conflict", err)
			}
			want := map[string]dtView{
				"after": dtWantView(map[string]any{"init": 0, "flaky": "good"}),
				"other": dtWantView(map[string]any{"init": 0}),
			}
			mu.Lock()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("what each task saw mismatch (-want +got):\n%s", diff)
			}
			mu.Unlock()
			wantRes := dag.Result{
				State:   dag.Completed,
				Context: map[string]any{"init": 0, "flaky": "good", "after": 1, "other": 1, "shared": "other"},
				Tasks: map[string]dag.TaskResult{
					"flaky":  {State: dag.Completed, Attempts: 2},
					"broken": {State: dag.Failed, Attempts: 1, Err: dtErrBang},
					"after":  {State: dag.Completed, Attempts: 1},
					"other":  {State: dag.Completed, Attempts: 1},
				},
			}
			if diff := cmp.Diff(wantRes, res, dtIgnoreTimes); diff != "" {
				t.Errorf("Result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContextDescendantWins checks that when ordered tasks write one key,
// every reader sees the write of its nearest writing ancestor and the
// result holds the last descendant's, whatever the timing and declaration
// order. Readers that depend on an early writer only must not see later
// writes, even when those are already in the context and the reader sits
// deeper in the graph than the later writers.
func TestContextDescendantWins(t *testing.T) {
	type spec struct {
		name   string
		deps   []string
		writes map[string]any
		gate   []string       // with MaxParallel > 1, wait for these first
		want   map[string]any // what the task must read of k, m and n
	}
	specs := []spec{
		// Declared in reverse, so that declaration order cannot stand in
		// for dependency order.
		{name: "h", deps: []string{"a", "q3"}, gate: []string{"c", "f"}, want: map[string]any{"k": "a", "m": "a", "n": "init"}},
		{name: "q3", deps: []string{"q2"}},
		{name: "q2", deps: []string{"q1"}},
		{name: "q1"},
		{name: "g", deps: []string{"e", "f"}, writes: map[string]any{"n": "g"}, want: map[string]any{"k": "c", "m": "f", "n": "init"}},
		{name: "f", deps: []string{"a"}, writes: map[string]any{"m": "f"}, want: map[string]any{"k": "a", "m": "a", "n": "init"}},
		{name: "e", deps: []string{"c", "d"}, want: map[string]any{"k": "c", "m": "a", "n": "init"}},
		{name: "d", deps: []string{"a"}, gate: []string{"c"}, want: map[string]any{"k": "a", "m": "a", "n": "init"}},
		{name: "c", deps: []string{"b"}, writes: map[string]any{"k": "c"}, want: map[string]any{"k": "b", "m": "a", "n": "init"}},
		{name: "b", deps: []string{"a"}, writes: map[string]any{"k": "b"}, want: map[string]any{"k": "a", "m": "a", "n": "init"}},
		{name: "a", writes: map[string]any{"k": "a", "m": "a"}, want: map[string]any{"k": "init", "m": "init", "n": "init"}},
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			for range 50 {
				guard := dtGuard(t)
				comp := dtNewCompletions(names...)
				var mu sync.Mutex
				got := map[string]map[string]any{}
				want := map[string]map[string]any{}
				var tasks []dag.Task
				for _, s := range specs {
					if s.want != nil {
						want[s.name] = s.want
					}
					tasks = append(tasks, dag.Task{Name: s.name, DependsOn: s.deps, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
						if s.want == nil {
							return nil, nil
						}
						if mp > 1 {
							if err := comp.await(guard, s.gate...); err != nil {
								return nil, err
							}
						}
						read := map[string]any{}
						for _, k := range []string{"k", "m", "n"} {
							read[k], _ = in.Get(k)
						}
						mu.Lock()
						got[s.name] = read
						mu.Unlock()
						return maps.Clone(s.writes), nil
					}})
				}
				res, err := dtRun(t, tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"k": "init", "m": "init", "n": "init"}, Events: comp.ch})
				comp.wait(t)
				if err != nil {
					t.Fatalf("Wait() = %v; want nil", err)
				}
				mu.Lock()
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("what each task read mismatch (-want +got):\n%s", diff)
				}
				mu.Unlock()
				if diff := cmp.Diff(map[string]any{"k": "c", "m": "f", "n": "g"}, res.Context); diff != "" {
					t.Fatalf("Result.Context mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestConflictUnorderedWriters checks that two tasks that do not depend on
// each other, directly or not, writing one key fail the job with
// ErrConflict, naming the key and both tasks, whatever the timing and
// whatever ContinueOnFailure says; and that the conflicting task's output
// is dropped whole from Result.Context.
func TestConflictUnorderedWriters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tasks  []dag.Task
		pair   []string // the tasks the message must name; exactly one completes
		blame  []string // the message names one of these too, if set
		absent []string // tasks the message must not name
		reason string
	}{
		{
			name: "two roots",
			tasks: []dag.Task{
				{Name: "p", Func: dtOK(map[string]any{"key": "p", "p1": 1, "p2": 2, "p3": 3})},
				{Name: "q", Func: dtOK(map[string]any{"key": "q", "q1": 1, "q2": 2, "q3": 3})},
			},
			pair:   []string{"p", "q"},
			reason: "which value wins would depend on which finished last",
		},
		{
			name: "same value",
			tasks: []dag.Task{
				{Name: "p", Func: dtOK(map[string]any{"key": 1})},
				{Name: "q", Func: dtOK(map[string]any{"key": 1})},
			},
			pair:   []string{"p", "q"},
			reason: "the rule is about the graph, not the values",
		},
		{
			name: "key of the initial context",
			tasks: []dag.Task{
				{Name: "p", Func: dtOK(map[string]any{"init": "p"})},
				{Name: "q", Func: dtOK(map[string]any{"init": "q"})},
			},
			pair:   []string{"p", "q"},
			reason: "overriding the initial context does not order the writers",
		},
		{
			name: "one with ContinueOnFailure",
			tasks: []dag.Task{
				{Name: "p", ContinueOnFailure: true, Func: dtOK(map[string]any{"key": "p", "p1": 1})},
				{Name: "q", Func: dtOK(map[string]any{"key": "q", "q1": 1})},
			},
			pair:   []string{"p", "q"},
			reason: "a conflict is a bug in the job, not a failure to tolerate",
		},
		{
			name: "one with ContinueOnFailure, declared second",
			tasks: []dag.Task{
				{Name: "q", Func: dtOK(map[string]any{"key": "q", "q1": 1})},
				{Name: "p", ContinueOnFailure: true, Func: dtOK(map[string]any{"key": "p", "p1": 1})},
			},
			pair:   []string{"p", "q"},
			reason: "a conflict is a bug in the job, not a failure to tolerate",
		},
		{
			name: "both with ContinueOnFailure",
			tasks: []dag.Task{
				{Name: "p", ContinueOnFailure: true, Func: dtOK(map[string]any{"key": "p"})},
				{Name: "q", ContinueOnFailure: true, Func: dtOK(map[string]any{"key": "q"})},
			},
			pair:   []string{"p", "q"},
			reason: "a conflict is a bug in the job, not a failure to tolerate",
		},
		{
			name: "siblings below a common writer",
			tasks: []dag.Task{
				{Name: "a", Func: dtOK(map[string]any{"key": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: dtOK(map[string]any{"key": "b", "b1": 1})},
				{Name: "c", DependsOn: []string{"a"}, Func: dtOK(map[string]any{"key": "c", "c1": 1})},
			},
			pair:   []string{"b", "c"},
			absent: []string{"a"},
			reason: "b and c are each ordered with a but not with each other",
		},
		{
			name: "deep siblings",
			tasks: []dag.Task{
				{Name: "a", Func: dtOK(map[string]any{"key": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: dtNoop},
				{Name: "c", DependsOn: []string{"b"}, Func: dtOK(map[string]any{"key": "c"})},
				{Name: "d", DependsOn: []string{"a"}, Func: dtOK(map[string]any{"key": "d"})},
			},
			pair:   []string{"c", "d"},
			absent: []string{"a", "b"},
			reason: "c and d are ordered with a only",
		},
		{
			name: "ordered pair and an outsider",
			tasks: []dag.Task{
				{Name: "a", Func: dtOK(map[string]any{"key": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: dtOK(map[string]any{"key": "b"})},
				{Name: "x", Func: dtOK(map[string]any{"key": "x"})},
			},
			blame:  []string{"a", "b"},
			pair:   []string{"x"},
			reason: "x is ordered with neither a nor b",
		},
	} {
		for _, mp := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				for range 20 {
					res, err := dtRun(t, tc.tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"init": 0}})
					if !errors.Is(err, dag.ErrConflict) {
						t.Fatalf("Wait() = %v; want an error matching ErrConflict (%s)", err, tc.reason)
					}
					if res.State != dag.Failed {
						t.Errorf("Result.State = %v; want failed", res.State)
					}
					var te *dag.TaskError
					if !errors.As(err, &te) {
						t.Errorf("Wait() = %v; want a *TaskError", err)
					}
					msg := err.Error()
					key := "key"
					if tc.name == "key of the initial context" {
						key = "init"
					}
					for _, s := range append([]string{key}, tc.pair...) {
						if !strings.Contains(msg, fmt.Sprintf("%q", s)) {
							t.Errorf("Wait() = %q; want it to name %q", msg, s)
						}
					}
					if tc.blame != nil && !slices.ContainsFunc(tc.blame, func(s string) bool { return strings.Contains(msg, fmt.Sprintf("%q", s)) }) {
						t.Errorf("Wait() = %q; want it to name one of %q", msg, tc.blame)
					}
					for _, s := range tc.absent {
						if strings.Contains(msg, fmt.Sprintf("%q", s)) {
							t.Errorf("Wait() = %q; want it not to name %q, which is ordered with both writers", msg, s)
						}
					}
					// Result.Context is the initial context plus the
					// output of every task that completed, all of it.
					want := map[string]any{"init": 0}
					for _, task := range tc.tasks {
						if res.Tasks[task.Name].State != dag.Completed {
							continue
						}
						out, _ := task.Func(context.Background(), dag.Values{})
						maps.Copy(want, out)
					}
					if tc.blame == nil {
						// Whichever finished first, the key keeps the value
						// of the writer declared first, and the error
						// blames the one declared second.
						var first, second dag.Task
						for _, task := range tc.tasks {
							if slices.Contains(tc.pair, task.Name) {
								if first.Name == "" {
									first = task
								} else {
									second = task
								}
							}
						}
						out, _ := first.Func(context.Background(), dag.Values{})
						want[key] = out[key]
						if te != nil && te.Task != second.Name {
							t.Errorf("TaskError.Task = %q; want %q, the writer declared second", te.Task, second.Name)
						}
					}
					if tc.blame != nil {
						// Three writers: the first two to finish conflict,
						// and the key holds one of the writers' values.
						if v, ok := res.Context[key].(string); ok && slices.Contains([]string{"a", "b", "x"}, v) {
							want[key] = v
						}
					}
					if diff := cmp.Diff(want, res.Context); diff != "" {
						t.Fatalf("Result.Context is not the initial context plus completed outputs, the key holding the first-declared writer's value (-want +got):\n%s\ntasks: %+v", diff, res.Tasks)
					}
					if tc.blame == nil {
						completed := 0
						for _, name := range tc.pair {
							if res.Tasks[name].State == dag.Completed {
								completed++
							}
						}
						if completed != 1 {
							t.Errorf("%d of %q completed; want exactly one, the first to finish: %+v", completed, tc.pair, res.Tasks)
						}
					}
				}
			})
		}
	}
}

// TestConflictOrderedWritersAllowed checks the cases that are not
// conflicts: a writer and its descendant (direct or not), and unordered
// tasks writing different keys.
func TestConflictOrderedWritersAllowed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tasks []dag.Task
		want  map[string]any
	}{
		{"direct", []dag.Task{
			{Name: "b", DependsOn: []string{"a"}, Func: dtOK(map[string]any{"key": "b"})},
			{Name: "a", Func: dtOK(map[string]any{"key": "a"})},
		}, map[string]any{"key": "b"}},
		{"indirect", []dag.Task{
			{Name: "c", DependsOn: []string{"b"}, Func: dtOK(map[string]any{"key": "c"})},
			{Name: "b", DependsOn: []string{"a"}, Func: dtNoop},
			{Name: "a", Func: dtOK(map[string]any{"key": "a"})},
		}, map[string]any{"key": "c"}},
		{"diamond, both branches above the last writer", []dag.Task{
			{Name: "a", Func: dtOK(map[string]any{"key": "a"})},
			{Name: "b", DependsOn: []string{"a"}, Func: dtOK(map[string]any{"key": "b"})},
			{Name: "c", DependsOn: []string{"a"}, Func: dtNoop},
			{Name: "d", DependsOn: []string{"b", "c"}, Func: dtOK(map[string]any{"key": "d"})},
		}, map[string]any{"key": "d"}},
		{"different keys", []dag.Task{
			{Name: "p", Func: dtOK(map[string]any{"p": 1})},
			{Name: "q", Func: dtOK(map[string]any{"q": 1})},
		}, map[string]any{"p": 1, "q": 1}},
	} {
		for _, mp := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				for range 20 {
					res, err := dtRun(t, tc.tasks, dag.Options{MaxParallel: mp})
					if err != nil {
						t.Fatalf("Wait() = %v; want nil", err)
					}
					if diff := cmp.Diff(tc.want, res.Context); diff != "" {
						t.Fatalf("Result.Context mismatch (-want +got):\n%s", diff)
					}
				}
			})
		}
	}
}

// TestContextKeepsNoReferenceToOutput checks that dag copies each output:
// a dependent that changes the map its dependency returned, and the test
// changing it after the job ended, change neither what tasks see nor
// Result.Context. Under the race detector, a library that read the map
// later would also be reported.
func TestContextKeepsNoReferenceToOutput(t *testing.T) {
	var kept map[string]any // written by a, then changed by b and by the test
	var mu sync.Mutex
	var seen dtView
	universe := []string{"init", "k", "a-only", "b-added", "b"}
	tasks := []dag.Task{
		{Name: "a", Func: func(context.Context, dag.Values) (map[string]any, error) {
			kept = map[string]any{"k": 1, "a-only": "a"}
			return kept, nil
		}},
		{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			kept["k"] = 99
			kept["b-added"] = true
			delete(kept, "a-only")
			if v, _ := in.Get("k"); v != 1 {
				return nil, fmt.Errorf("b sees k = %v after changing a's map; want 1", v)
			}
			out := map[string]any{"b": 1}
			return out, nil
		}},
		{Name: "c", DependsOn: []string{"b"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			mu.Lock()
			defer mu.Unlock()
			seen = dtSee(in, universe)
			return nil, nil
		}},
	}
	res, err := dtRun(t, tasks, dag.Options{Context: map[string]any{"init": 0}})
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	kept["k"] = 1000
	kept["after-wait"] = true
	want := map[string]any{"init": 0, "k": 1, "a-only": "a", "b": 1}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(dtWantView(want), seen); diff != "" {
		t.Errorf("what c saw mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, res.Context); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}
}

// TestContextTaskReusesItsMap checks that a task may reuse the map it
// returned: one Func returns the same map on every attempt, changing it in
// between, and a goroutine the task started changes it after the job
// ended.
func TestContextTaskReusesItsMap(t *testing.T) {
	buf := map[string]any{}
	var calls atomic.Int32
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	var wg sync.WaitGroup
	defer wg.Wait()
	defer releaseOnce()
	tasks := []dag.Task{
		{Name: "reuser", MaxRetries: 2, Func: func(context.Context, dag.Values) (map[string]any, error) {
			// Attempts run one after the other: the map is this task's.
			switch calls.Add(1) {
			case 1:
				buf["k"] = "attempt 1"
				buf["junk"] = true
				return buf, dtErrBoom
			case 2:
				clear(buf)
				buf["k"] = "attempt 2"
				wg.Go(func() {
					<-release
					buf["k"] = "changed after the job"
					buf["late"] = true
				})
				return buf, nil
			}
			return nil, fmt.Errorf("attempt %d; want 2", calls.Load())
		}},
		{Name: "reader", DependsOn: []string{"reuser"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			if diff := cmp.Diff(map[string]any{"k": "attempt 2"}, dtMap(in)); diff != "" {
				return nil, fmt.Errorf("reader saw (-want +got):\n%s", diff)
			}
			return nil, nil
		}},
	}
	res, err := dtRun(t, tasks, dag.Options{Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
	releaseOnce()
	wg.Wait()
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	if diff := cmp.Diff(map[string]any{"k": "attempt 2"}, res.Context); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}
}

// TestContextValuesOutliveTask checks that a Values stays valid and
// unchanged after its task and the job ended, while descendants and
// unrelated tasks write the same and new keys: read during the task and
// again after Wait, and read for the first time only after Wait; and that
// a goroutine reading it while the job runs sees it unchanged.
func TestContextValuesOutliveTask(t *testing.T) {
	universe := []string{"init", "k", "x", "late", "other"}
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			var mu sync.Mutex
			var during dtView
			var read, unread dag.Values
			handed := make(chan dag.Values, 1)
			tasks := []dag.Task{
				{Name: "a", Func: dtOK(map[string]any{"k": 1, "x": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					mu.Lock()
					defer mu.Unlock()
					read, during = in, dtSee(in, universe)
					handed <- in
					return nil, nil
				}},
				{Name: "b2", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					mu.Lock()
					defer mu.Unlock()
					unread = in // not read until the job ended
					return nil, nil
				}},
				{Name: "c", DependsOn: []string{"b", "b2"}, Func: dtOK(map[string]any{"k": 2, "late": true})},
				{Name: "d", DependsOn: []string{"c"}, Func: dtOK(map[string]any{"x": "d"})},
				{Name: "other", Func: dtOK(map[string]any{"other": 1})},
			}
			job, err := dag.Run(context.Background(), tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"init": 0}})
			if err != nil {
				t.Fatalf("Run(…) = %v; want no error", err)
			}
			want := dtWantView(map[string]any{"init": 0, "k": 1, "x": "a"})
			// Read b's Values from another goroutine while the job runs.
			var concurrent []string
			var wg sync.WaitGroup
			wg.Go(func() {
				var v dag.Values
				select {
				case v = <-handed:
				case <-job.Done():
					select {
					case v = <-handed:
					default:
						return // b never ran; the main goroutine reports it
					}
				}
				for {
					if diff := cmp.Diff(want, dtSee(v, universe)); diff != "" {
						concurrent = append(concurrent, diff)
						return
					}
					select {
					case <-job.Done():
						return
					default:
					}
				}
			})
			_, err = dtWait(t, job)
			wg.Wait()
			if err != nil {
				t.Fatalf("Wait() = %v; want nil", err)
			}
			for _, diff := range concurrent {
				t.Errorf("b's Values read while the job ran mismatch (-want +got):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(want, during); diff != "" {
				t.Errorf("b's Values read during b mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, dtSee(read, universe)); diff != "" {
				t.Errorf("b's Values read after Wait mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, dtSee(unread, universe)); diff != "" {
				t.Errorf("b2's Values first read after Wait mismatch (-want +got):\n%s", diff)
			}
			if got, want := unread.String(), "map[init:0 k:1 x:a]"; got != want {
				t.Errorf("b2's Values.String() = %q; want %q", got, want)
			}
		})
	}
}

// TestContextCallerMutatesInitial checks that changing the map given as
// Options.Context after Run returned reaches no task and not the result.
func TestContextCallerMutatesInitial(t *testing.T) {
	initial := map[string]any{"keep": 1, "change": "given", "remove": true}
	gate := make(chan struct{})
	var mu sync.Mutex
	got := map[string]map[string]any{}
	record := func(name string) dag.TaskFunc {
		return func(_ context.Context, in dag.Values) (map[string]any, error) {
			if name == "first" {
				<-gate
			}
			mu.Lock()
			got[name] = dtMap(in)
			mu.Unlock()
			return map[string]any{name: 1}, nil
		}
	}
	tasks := []dag.Task{
		{Name: "first", Func: record("first")},
		{Name: "second", DependsOn: []string{"first"}, Func: record("second")},
	}
	job, err := dag.Run(context.Background(), tasks, dag.Options{Context: initial})
	if err != nil {
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	initial["change"] = "changed"
	initial["added"] = 2
	delete(initial, "remove")
	clear(initial)
	close(gate)
	res, err := dtWait(t, job)
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	given := map[string]any{"keep": 1, "change": "given", "remove": true}
	want := map[string]map[string]any{
		"first":  given,
		"second": {"keep": 1, "change": "given", "remove": true, "first": 1},
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what the tasks saw mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"keep": 1, "change": "given", "remove": true, "first": 1, "second": 1}, res.Context); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}
}

// dtModelTask is one task of TestContextTimingIndependent's job.
type dtModelTask struct {
	deps  []int
	spine bool // writes "spine"; spine writers form a chain
}

// dtModelJob is a fixed pseudo-random DAG of n tasks: task i depends on
// some earlier tasks, and every fourth task writes "spine" and depends on
// the previous spine writer, so that no two writers of a key are
// unordered.
func dtModelJob(n int, seed uint64) []dtModelTask {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	job := make([]dtModelTask, n)
	for i := range job {
		for j := range i {
			if r.IntN(4) == 0 {
				job[i].deps = append(job[i].deps, j)
			}
		}
		if i%4 == 0 {
			job[i].spine = true
			if i >= 4 && !slices.Contains(job[i].deps, i-4) {
				job[i].deps = append(job[i].deps, i-4)
			}
		}
	}
	return job
}

// dtDigest condenses everything a task sees into its output value.
func dtDigest(in dag.Values) string {
	h := fnv.New64a()
	fmt.Fprint(h, in.Len(), " ", in.String())
	return fmt.Sprintf("%d:%x", in.Len(), h.Sum64())
}

// TestContextTimingIndependent runs one job, whose tasks each output a
// digest of everything they see, 50 times with each MaxParallel from 1 to
// 4, and checks every run against a model of rule 3: a task sees the
// initial context plus its ancestors' outputs, the nearest writer of a key
// winning.
func TestContextTimingIndependent(t *testing.T) {
	const n = 24
	model := dtModelJob(n, 7)
	name := func(i int) string { return fmt.Sprintf("t%02d", i) }

	// The model, in index order, which is a topological order.
	ancestors := make([]map[int]bool, n)
	outputs := make([]map[string]any, n)
	initial := map[string]any{"init": 0, "spine": -1}
	want := maps.Clone(initial)
	for i, mt := range model {
		ancestors[i] = map[int]bool{}
		for _, d := range mt.deps {
			ancestors[i][d] = true
			maps.Copy(ancestors[i], ancestors[d])
		}
		seen := maps.Clone(initial)
		for a := range i { // ascending: along the spine chain, nearer writers last
			if ancestors[i][a] {
				maps.Copy(seen, outputs[a])
			}
		}
		outputs[i] = map[string]any{name(i): dtDigest(dag.ValuesOf(seen))}
		if mt.spine {
			outputs[i]["spine"] = i
		}
		maps.Copy(want, outputs[i])
	}

	tasks := make([]dag.Task, n)
	for i, mt := range model {
		var deps []string
		for _, d := range mt.deps {
			deps = append(deps, name(d))
		}
		tasks[i] = dag.Task{Name: name(i), DependsOn: deps, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			out := map[string]any{name(i): dtDigest(in)}
			if mt.spine {
				out["spine"] = i
			}
			return out, nil
		}}
	}
	for mp := 1; mp <= 4; mp++ {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			for run := range 50 {
				res, err := dtRun(t, tasks, dag.Options{MaxParallel: mp, Context: initial})
				if err != nil {
					t.Fatalf("run %d: Wait() = %v; want nil", run, err)
				}
				if diff := cmp.Diff(want, res.Context); diff != "" {
					t.Fatalf("run %d: Result.Context differs from the model (-want +got):\n%s", run, diff)
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Values and Lookup

// TestValuesOf checks Get, Len, All (sorted) and String of ValuesOf, and
// that it holds a copy of the map.
func TestValuesOf(t *testing.T) {
	src := map[string]any{"b": 2, "a": "one", "c": nil, "d": []int{4}}
	v := dag.ValuesOf(src)
	src["a"] = "changed"
	src["e"] = 5
	delete(src, "b")

	want := dtWantView(map[string]any{"a": "one", "b": 2, "c": nil, "d": []int{4}})
	if diff := cmp.Diff(want, dtSee(v, []string{"a", "b", "c", "d", "e", "missing"})); diff != "" {
		t.Errorf("ValuesOf(…) after changing the source mismatch (-want +got):\n%s", diff)
	}
	if val, ok := v.Get("c"); !ok || val != nil {
		t.Errorf("Get(%q) = %v, %v; want nil, true: a nil value is still present", "c", val, ok)
	}
	if val, ok := v.Get("missing"); ok || val != nil {
		t.Errorf("Get(%q) = %v, %v; want nil, false", "missing", val, ok)
	}
	if got, want := v.String(), "map[a:one b:2 c:<nil> d:[4]]"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}

	// All stops when the loop breaks.
	var first []string
	for k := range v.All() {
		first = append(first, k)
		if len(first) == 2 {
			break
		}
	}
	if diff := cmp.Diff([]string{"a", "b"}, first); diff != "" {
		t.Errorf("All() with a break after two keys mismatch (-want +got):\n%s", diff)
	}

	// Many keys come out sorted whatever the map's order.
	big := map[string]any{}
	for i := range 200 {
		big[fmt.Sprintf("k%03d", (i*37)%200)] = i
	}
	keys := dtKeys(dag.ValuesOf(big))
	if !slices.IsSorted(keys) || len(keys) != 200 {
		t.Errorf("All() yields %d keys, sorted %v; want 200, sorted", len(keys), slices.IsSorted(keys))
	}
}

// TestValuesEmpty checks the zero Values and ValuesOf of nil and empty
// maps: usable, empty.
func TestValuesEmpty(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    dag.Values
	}{
		{"zero", dag.Values{}},
		{"ValuesOf(nil)", dag.ValuesOf(nil)},
		{"ValuesOf(empty)", dag.ValuesOf(map[string]any{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := tc.v.Len(); n != 0 {
				t.Errorf("Len() = %d; want 0", n)
			}
			if val, ok := tc.v.Get("x"); ok || val != nil {
				t.Errorf("Get(%q) = %v, %v; want nil, false", "x", val, ok)
			}
			for k, val := range tc.v.All() {
				t.Errorf("All() yielded %q: %v; want nothing", k, val)
			}
			if s := tc.v.String(); s != "map[]" {
				t.Errorf("String() = %q; want %q", s, "map[]")
			}
			if _, err := dag.Lookup[int](tc.v, "x"); !errors.Is(err, dag.ErrMissingKey) {
				t.Errorf("Lookup[int](…, %q) = %v; want ErrMissingKey", "x", err)
			}
		})
	}
}

type dtStringer struct{}

func (dtStringer) String() string { return "dtStringer" }

// TestLookup checks Lookup's success and each way it fails.
func TestLookup(t *testing.T) {
	var nilPtr *int
	v := dag.ValuesOf(map[string]any{
		"int":    42,
		"string": "s",
		"nil":    nil,
		"nilptr": nilPtr,
		"err":    dtErrBoom,
		"str":    dtStringer{},
	})
	for _, tc := range []struct {
		name   string
		lookup func() (any, error)
		want   any
		is     error    // the sentinel the error must match, if any
		msg    []string // substrings of the error; none if nil
		reason string
	}{
		{"int", func() (any, error) { return dag.Lookup[int](v, "int") }, 42, nil, nil, "the value has the type asked for"},
		{"string", func() (any, error) { return dag.Lookup[string](v, "string") }, "s", nil, nil, "the value has the type asked for"},
		{"any", func() (any, error) { return dag.Lookup[any](v, "int") }, 42, nil, nil, "any holds everything"},
		{"interface", func() (any, error) { return dag.Lookup[fmt.Stringer](v, "str") }, dtStringer{}, nil, nil, "the value implements the interface"},
		{"error", func() (any, error) { return dag.Lookup[error](v, "err") }, dtErrBoom, nil, nil, "an error value is an error"},
		{"nil into error", func() (any, error) { return dag.Lookup[error](v, "nil") }, nil, nil, nil, "nil is a valid interface value"},
		{"nil into any", func() (any, error) { return dag.Lookup[any](v, "nil") }, nil, nil, nil, "nil is a valid interface value"},
		{"typed nil pointer", func() (any, error) { return dag.Lookup[*int](v, "nilptr") }, nilPtr, nil, nil, "a nil *int is a *int"},
		{"missing", func() (any, error) { return dag.Lookup[int](v, "absent") }, 0, dag.ErrMissingKey, []string{`"absent"`}, "the key is not there"},
		{"wrong type", func() (any, error) { return dag.Lookup[int](v, "string") }, 0, nil, []string{`"string"`, "string", "int"}, "a string is not an int"},
		{"wrong interface", func() (any, error) { return dag.Lookup[fmt.Stringer](v, "int") }, nil, nil, []string{`"int"`, "int", "fmt.Stringer"}, "an int has no String method"},
		{"nil into int", func() (any, error) { return dag.Lookup[int](v, "nil") }, 0, nil, []string{`"nil"`, "int"}, "nil is not an int"},
		{"nil into pointer", func() (any, error) { return dag.Lookup[*int](v, "nil") }, nilPtr, nil, []string{`"nil"`, "*int"}, "an untyped nil is a *int only through an interface type, as the doc says"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.lookup()
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("Lookup value mismatch (-want +got):\n%s", diff)
			}
			if tc.msg == nil && tc.is == nil {
				if err != nil {
					t.Errorf("Lookup error = %v; want nil (%s)", err, tc.reason)
				}
				return
			}
			if err == nil {
				t.Fatalf("Lookup error = nil; want one (%s)", tc.reason)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Lookup error = %v; want it to match %v (%s)", err, tc.is, tc.reason)
			}
			if tc.is == nil && errors.Is(err, dag.ErrMissingKey) {
				t.Errorf("Lookup error = %v; want no ErrMissingKey: the key is present", err)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Lookup error = %q; want it to contain %q", err, s)
				}
			}
		})
	}
}

// TestLookupInTask checks Lookup on the Values a task gets, for a key from
// the initial context and one from a dependency.
func TestLookupInTask(t *testing.T) {
	var mu sync.Mutex
	var errs []error
	var got []any
	tasks := []dag.Task{
		{Name: "a", Func: dtOK(map[string]any{"n": 7})},
		{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			n, err1 := dag.Lookup[int](in, "n")
			s, err2 := dag.Lookup[string](in, "s")
			_, err3 := dag.Lookup[string](in, "n")
			_, err4 := dag.Lookup[int](in, "nope")
			mu.Lock()
			defer mu.Unlock()
			got = []any{n, s}
			errs = []error{err1, err2, err3, err4}
			return nil, nil
		}},
	}
	if _, err := dtRun(t, tasks, dag.Options{Context: map[string]any{"s": "init"}}); err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]any{7, "init"}, got); diff != "" {
		t.Errorf("Lookup values mismatch (-want +got):\n%s", diff)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("Lookup errors = %v, %v; want nil, nil", errs[0], errs[1])
	}
	if errs[2] == nil || errors.Is(errs[2], dag.ErrMissingKey) || !strings.Contains(errs[2].Error(), "string") {
		t.Errorf("Lookup[string](…, %q) = %v; want a type error naming string", "n", errs[2])
	}
	if !errors.Is(errs[3], dag.ErrMissingKey) || !strings.Contains(errs[3].Error(), `"nope"`) {
		t.Errorf("Lookup[int](…, %q) = %v; want ErrMissingKey naming the key", "nope", errs[3])
	}
}

// ---------------------------------------------------------------------------
// Errors

// TestRunTaskError checks the error Wait returns for a failed task: a
// *TaskError naming the job and the task, with the attempts made, through
// which errors.Is finds the task's own error.
func TestRunTaskError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		job      string
		retries  int
		err      error
		attempts int
		msg      []string
	}{
		{"named job, retried", "nightly", 2, fmt.Errorf("fetching: %w", dtErrBoom), 3, []string{`job "nightly"`, `task "fetch"`, "3 attempts", "boom"}},
		{"unnamed job, once", "", dag.NoRetries, dtErrBoom, 1, []string{`task "fetch"`, "1 attempt:", "boom"}},
		{"permanent", "nightly", 5, backoff.Permanent(fmt.Errorf("fetching: %w", dtErrBoom)), 1, []string{`job "nightly"`, `task "fetch"`, "1 attempt:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{
				{Name: "fetch", MaxRetries: tc.retries, Func: func(context.Context, dag.Values) (map[string]any, error) {
					calls.Add(1)
					return nil, tc.err
				}},
				{Name: "after", DependsOn: []string{"fetch"}, Func: dtNoop},
			}
			res, err := dtRun(t, tasks, dag.Options{Name: tc.job, Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
			if !errors.Is(err, dtErrBoom) {
				t.Errorf("Wait() = %v; want an error matching the task's %v", err, dtErrBoom)
			}
			var te *dag.TaskError
			if !errors.As(err, &te) {
				t.Fatalf("Wait() = %v; want a *TaskError", err)
			}
			if te.Job != tc.job || te.Task != "fetch" || te.Attempts != tc.attempts || !errors.Is(te.Err, dtErrBoom) {
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
	for _, tc := range []struct {
		name  string
		value any
		isErr bool
	}{
		{"error", fmt.Errorf("wrapped: %w", dtErrBang), true},
		{"string", "not an error", false},
		{"int", 42, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []dag.Task{{Name: "bomb", Func: func(context.Context, dag.Values) (map[string]any, error) {
				dtPanicker(tc.value)
				return nil, nil
			}}}
			res, err := dtRun(t, tasks, dag.Options{Name: "pj"})
			var pe *dag.PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("Wait() = %v; want a *PanicError inside", err)
			}
			if diff := cmp.Diff(tc.value, pe.Value, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("PanicError.Value mismatch (-want +got):\n%s", diff)
			}
			if got := errors.Is(err, dtErrBang); got != tc.isErr {
				t.Errorf("errors.Is(Wait(), bang) = %v; want %v", got, tc.isErr)
			}
			if !bytes.Contains(pe.Stack, []byte("dtPanicker")) {
				t.Errorf("PanicError.Stack does not show the panicking function dtPanicker:\n%s", pe.Stack)
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

// dtPanicker panics with v; its name shows in the stack.
//
//go:noinline
func dtPanicker(v any) { panic(v) }

// TestValidateCycleOddNames checks that a cycle's path quotes the names that
// would blur it, and shortens long ones, while plain names stay as they are.
func TestValidateCycleOddNames(t *testing.T) {
	long := strings.Repeat("x", 1000)
	noop := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
	tasks := []dag.Task{
		{Name: "a", DependsOn: []string{"b -> c"}, Func: noop},
		{Name: "b -> c", DependsOn: []string{long}, Func: noop},
		{Name: long, DependsOn: []string{"a"}, Func: noop},
	}
	err := dag.Validate(tasks)
	if !errors.Is(err, dag.ErrCycle) {
		t.Fatalf("Validate() = %v; want ErrCycle", err)
	}
	want := `dag: dependency cycle: a -> "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (1000 bytes) -> "b -> c" -> a (each task depends on the one before it)`
	if msg := err.Error(); !strings.HasPrefix(msg, want) {
		t.Errorf("Validate() = %q; want it to start with %q", msg, want)
	}
}
