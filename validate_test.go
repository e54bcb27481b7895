package dag_test

// Validation: every problem reported at once, each with its sentinel and
// its task; Run and Validate agree; bad options.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// validationCases are task lists with one kind of problem each.
var validationCases = []struct {
	name   string
	tasks  []dag.Task
	want   error    // the sentinel the error must match
	msg    []string // substrings the message must contain
	reason string
}{
	{
		name:   "empty name",
		tasks:  []dag.Task{{Name: "ok", Func: noop}, {Name: "", Func: noop}},
		want:   dag.ErrInvalidTask,
		msg:    []string{"#1", "empty name"},
		reason: "a task without a name cannot be depended on or reported",
	},
	{
		name:   "duplicate names",
		tasks:  []dag.Task{{Name: "a", Func: noop}, {Name: "b", Func: noop}, {Name: "a", Func: noop}},
		want:   dag.ErrDuplicateTask,
		msg:    []string{`"a"`, "#0", "#2"},
		reason: "dependencies on a would be ambiguous",
	},
	{
		name:   "nil Func",
		tasks:  []dag.Task{{Name: "a", Func: noop}, {Name: "lazy"}},
		want:   dag.ErrInvalidTask,
		msg:    []string{`"lazy"`, "nil Func"},
		reason: "a task must do something",
	},
	{
		name:   "unknown dependency",
		tasks:  []dag.Task{{Name: "a", Func: noop, DependsOn: []string{"ghost"}}},
		want:   dag.ErrMissingDependency,
		msg:    []string{`"a"`, `"ghost"`},
		reason: "a dependency must be declared",
	},
	{
		name:   "dependency on itself",
		tasks:  []dag.Task{{Name: "narcissus", Func: noop, DependsOn: []string{"narcissus"}}},
		want:   dag.ErrCycle,
		msg:    []string{`"narcissus"`, "itself"},
		reason: "a self-dependency is the shortest cycle",
	},
	{
		name: "2-cycle",
		tasks: []dag.Task{
			{Name: "a", Func: noop, DependsOn: []string{"b"}},
			{Name: "b", Func: noop, DependsOn: []string{"a"}},
		},
		want:   dag.ErrCycle,
		msg:    []string{"a -> b -> a"},
		reason: "neither task could ever start",
	},
	{
		name: "3-cycle",
		// b runs after a, c after b, a after c.
		tasks: []dag.Task{
			{Name: "a", Func: noop, DependsOn: []string{"c"}},
			{Name: "b", Func: noop, DependsOn: []string{"a"}},
			{Name: "c", Func: noop, DependsOn: []string{"b"}},
		},
		want:   dag.ErrCycle,
		msg:    []string{"a -> b -> c -> a"},
		reason: "the path is shown in execution direction, each task depending on the one before it",
	},
	{
		name: "cycle behind a valid prefix",
		tasks: []dag.Task{
			{Name: "root", Func: noop},
			{Name: "x", Func: noop, DependsOn: []string{"root", "z"}},
			{Name: "y", Func: noop, DependsOn: []string{"x"}},
			{Name: "z", Func: noop, DependsOn: []string{"y"}},
			{Name: "leaf", Func: noop, DependsOn: []string{"z"}},
		},
		want:   dag.ErrCycle,
		msg:    []string{"x -> y -> z -> x"},
		reason: "only the cycle's tasks are in the path, not the tasks before or after it",
	},
	{
		name:   "negative Timeout",
		tasks:  []dag.Task{{Name: "hasty", Func: noop, Timeout: -time.Second}},
		want:   dag.ErrInvalidTask,
		msg:    []string{`"hasty"`, "Timeout"},
		reason: "a negative timeout means nothing",
	},
	{
		name:   "MaxRetries below NoRetries",
		tasks:  []dag.Task{{Name: "eager", Func: noop, MaxRetries: -2}},
		want:   dag.ErrInvalidTask,
		msg:    []string{`"eager"`, "MaxRetries", "-2"},
		reason: "only NoRetries (-1) may be negative",
	},
}

// TestValidateEachProblem checks that each kind of problem is reported
// with its sentinel and a message naming the culprit.
func TestValidateEachProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range validationCases {
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
				checkCyclePaths(t, tc.tasks, err)
			}
			if !strings.HasPrefix(err.Error(), "dag: ") {
				t.Errorf("Validate(…) = %q; want a message starting with \"dag: \"", err)
			}
		})
	}
}

// checkCyclePaths checks every path in a cycle error's message: each
// task in it must depend on the one before it, and the path must close.
func checkCyclePaths(t *testing.T, tasks []dag.Task, err error) {
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
	t.Parallel()
	// Execution order around the cycle: w, x, y, z, w.
	base := []dag.Task{
		{Name: "w", Func: noop, DependsOn: []string{"z"}},
		{Name: "x", Func: noop, DependsOn: []string{"w"}},
		{Name: "y", Func: noop, DependsOn: []string{"x"}},
		{Name: "z", Func: noop, DependsOn: []string{"y"}},
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
			checkCyclePaths(t, tasks, err)
		})
	}
}

// TestValidateAcceptsValid checks that valid task lists, including the
// edge values of each field, pass.
func TestValidateAcceptsValid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tasks  []dag.Task
		reason string
	}{
		{"none", nil, "zero tasks is an empty job"},
		{"one", []dag.Task{{Name: "a", Func: noop}}, "Task{Name, Func} is complete"},
		{"NoRetries", []dag.Task{{Name: "a", Func: noop, MaxRetries: dag.NoRetries}}, "-1 is the named constant"},
		{"zero Timeout", []dag.Task{{Name: "a", Func: noop, Timeout: 0}}, "0 means no timeout"},
		{"duplicate dependency", []dag.Task{
			{Name: "a", Func: noop},
			{Name: "b", Func: noop, DependsOn: []string{"a", "a"}},
		}, "listing a task twice is listing it once"},
		{"declared after its dependent", []dag.Task{
			{Name: "b", Func: noop, DependsOn: []string{"a"}},
			{Name: "a", Func: noop},
		}, "declaration order is not execution order"},
		{"diamond", []dag.Task{
			{Name: "a", Func: noop},
			{Name: "b", Func: noop, DependsOn: []string{"a"}},
			{Name: "c", Func: noop, DependsOn: []string{"a"}},
			{Name: "d", Func: noop, DependsOn: []string{"b", "c"}},
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
	t.Parallel()
	tasks := []dag.Task{
		{Name: "loop1", Func: noop, DependsOn: []string{"loop2"}},
		{Name: "loop2", Func: noop, DependsOn: []string{"loop1"}},
		{Name: "orphan", Func: noop, DependsOn: []string{"ghost"}},
		{Name: "twin", Func: noop},
		{Name: "twin", Func: noop},
		{Name: "lazy"},
		{Name: "hasty", Func: noop, Timeout: -1},
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
	t.Parallel()
	for _, tc := range validationCases {
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
				waitJob(t, job)
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
	t.Parallel()
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
	t.Parallel()
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

// TestValidateCycleOddNames checks that a cycle's path quotes the names that
// would blur it, and shortens long ones, while plain names stay as they are.
func TestValidateCycleOddNames(t *testing.T) {
	t.Parallel()
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
