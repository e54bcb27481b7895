package dag_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dagrun/dag"
	"github.com/dagrun/dag/dagtest"
	"github.com/google/go-cmp/cmp"
)

// ranTasks returns the full names of the tasks whose Funcs rec saw
// called, sorted, each once.
func ranTasks(rec *dagtest.Recorder) []string {
	var names []string
	for _, c := range rec.Calls() {
		names = append(names, c.Task)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestResumeEveryKind resumes a job with every kind of task, after a run
// in which one task failed: only what failed, did not run, or depends on
// something that runs again, runs again; the final context equals an
// uninterrupted run's.
func TestResumeEveryKind(t *testing.T) {
	t.Parallel()
	broken := true
	flaky := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		if broken {
			return nil, errBoom
		}
		return map[string]any{"flaky": 1}, nil
	}
	put := func(k string) dag.TaskFunc { return succeed(map[string]any{k: k}) }
	m := dag.Map("m", "items", "mapped", func(ctx context.Context, s string) (string, error) { return s + "!", nil })
	m.DependsOn = []string{"plain"}
	tasks := []dag.Task{
		{Name: "plain", Func: succeed(map[string]any{"items": []string{"a", "b"}})},
		{Name: "g", DependsOn: []string{"plain"}, Sub: []dag.Task{
			{Name: "x", Func: put("x")},
			{Name: "y", DependsOn: []string{"x"}, Func: put("y")},
		}},
		{Name: "e", Expand: func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
			return []dag.Task{{Name: "c1", Func: put("c1")}, {Name: "c2", Func: put("c2")}}, nil
		}},
		m,
		{Name: "skip", When: func(dag.Values) bool { return false }, Func: put("skip")},
		{Name: "flaky", Func: flaky},
		{Name: "after-flaky", DependsOn: []string{"flaky"}, Func: put("after-flaky")},
		{Name: "tolerant", ContinueOnFailure: true, Func: fail(errBoom)},
		{Name: "after-all", DependsOn: []string{"g", "e", "m", "tolerant"}, Func: put("after-all")},
	}
	first, err, _ := ctRun(t, tasks, dag.Options{KeepGoing: true})
	if err == nil || first.Tasks["after-flaky"].State != dag.UpstreamFailed {
		t.Fatalf("first run: %v, %+v", err, first.Tasks["after-flaky"])
	}

	broken = false
	var rec dagtest.Recorder
	second, err, events := ctRun(t, rec.Wrap(tasks), dag.Options{KeepGoing: true, Resume: &first})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	// after-all depends on tolerant, which failed and runs again.
	if got, want := ranTasks(&rec), []string{"after-all", "after-flaky", "flaky", "tolerant"}; !slices.Equal(got, want) {
		t.Errorf("second run ran %v; want %v", got, want)
	}
	for _, name := range []string{"plain", "g/x", "g/y", "e/c1", "e/c2", "m/0", "m/1"} {
		tr := second.Tasks[name]
		if !tr.Restored || tr.State != dag.Completed {
			t.Errorf("%s = %+v; want restored", name, tr)
		}
		if old := first.Tasks[name]; !tr.Started.Equal(old.Started) || !tr.Finished.Equal(old.Finished) || tr.Attempts != old.Attempts {
			t.Errorf("%s: times or attempts changed: %+v, was %+v", name, tr, old)
		}
	}
	for _, e := range events {
		if e.Task == "plain" && (e.From != dag.Pending || e.To != dag.Completed || e.Attempt != 0) {
			t.Errorf("restored task's event %v; want pending -> completed, attempt 0", e)
		}
	}
	if second.Tasks["skip"].State != dag.Skipped || second.Tasks["tolerant"].State != dag.Failed {
		t.Errorf("skip %v, tolerant %v", second.Tasks["skip"].State, second.Tasks["tolerant"].State)
	}
	broken = false
	fresh, err, _ := ctRun(t, tasks, dag.Options{KeepGoing: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fresh.Context, second.Context); diff != "" {
		t.Errorf("resumed context differs from an uninterrupted run's (-fresh +resumed):\n%s", diff)
	}
}

// TestResumeChangedTasks resumes with tasks that changed in between: a
// task that is gone is ignored, a new task runs, and a task downstream of
// one that runs again runs again.
func TestResumeChangedTasks(t *testing.T) {
	t.Parallel()
	v1 := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"a": 1})},
		{Name: "gone", Func: succeed(map[string]any{"gone": 1})},
		{Name: "b", DependsOn: []string{"a"}, Func: succeed(map[string]any{"b": 1})},
	}
	first, err, _ := ctRun(t, v1, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v2 := []dag.Task{
		{Name: "new", Func: succeed(map[string]any{"new": 1})},
		{Name: "a", DependsOn: []string{"new"}, Func: succeed(map[string]any{"a": 2})},
		{Name: "b", DependsOn: []string{"a"}, Func: succeed(map[string]any{"b": 2})},
		{Name: "c", Func: succeed(map[string]any{"c": 1})},
	}
	var rec dagtest.Recorder
	second, err, events := ctRun(t, rec.Wrap(v2), dag.Options{Resume: &first})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ranTasks(&rec), []string{"a", "b", "c", "new"}; !slices.Equal(got, want) {
		t.Errorf("ran %v; want %v", got, want)
	}
	if _, ok := second.Tasks["gone"]; ok {
		t.Error("a task not in the list has a result")
	}
	if _, ok := second.Context["gone"]; ok {
		t.Error("a task not in the list put its output back")
	}
	for _, e := range events {
		if e.Task == "gone" {
			t.Errorf("event for a task not in the list: %v", e)
		}
	}
	if second.Context["a"] != 2 {
		t.Errorf("a = %v", second.Context["a"])
	}
}

// TestResumeContext: the initial context is the new run's, and restored
// outputs rebuild what each task saw, even where a later task overwrote a
// key.
func TestResumeContext(t *testing.T) {
	t.Parallel()
	failing := true
	tasks := []dag.Task{
		{Name: "w1", Func: succeed(map[string]any{"k": 1})},
		{Name: "reader", DependsOn: []string{"w1"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			k, _ := dag.Lookup[int](in, "k")
			init, _ := dag.Lookup[string](in, "init")
			if failing {
				return nil, errBoom
			}
			return map[string]any{"seen": k, "init-seen": init}, nil
		}},
		{Name: "w2", DependsOn: []string{"w1"}, Func: succeed(map[string]any{"k": 2})},
	}
	first, _, _ := ctRun(t, tasks, dag.Options{KeepGoing: true, Context: map[string]any{"init": "old"}})
	failing = false
	second, err, _ := ctRun(t, tasks, dag.Options{Resume: &first, Context: map[string]any{"init": "new"}})
	if err != nil {
		t.Fatal(err)
	}
	if second.Context["seen"] != 1 || second.Context["init-seen"] != "new" {
		t.Errorf("reader saw k=%v init=%v; want 1 and new", second.Context["seen"], second.Context["init-seen"])
	}
	if !second.Tasks["w2"].Restored || second.Context["k"] != 2 {
		t.Errorf("w2 %+v, k=%v", second.Tasks["w2"], second.Context["k"])
	}
}

// TestResumeConflict: a task that runs again and a restored task writing
// the same key, neither depending on the other, conflict as an
// uninterrupted run would.
func TestResumeConflict(t *testing.T) {
	t.Parallel()
	first := dag.Result{State: dag.Failed, Tasks: map[string]dag.TaskResult{
		"a": {State: dag.Completed, Attempts: 1, Output: map[string]any{"k": "a"}},
	}}
	tasks := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"k": "a"})},
		{Name: "b", Func: succeed(map[string]any{"k": "b"})},
	}
	_, err, _ := ctRun(t, tasks, dag.Options{Resume: &first})
	if !errors.Is(err, dag.ErrConflict) {
		t.Errorf("Wait() = %v; want ErrConflict", err)
	}
}

// TestResumeGroupRerunsWhenItsInputChanged: a child with no dependency of
// its own inside a group whose dependency runs again is not restored: it
// sees what the group sees.
func TestResumeGroupRerunsWhenItsInputChanged(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "src", Func: succeed(map[string]any{"src": 1})},
		{Name: "g", DependsOn: []string{"src"}, Sub: []dag.Task{{Name: "c", Func: succeed(map[string]any{"c": 1})}}},
	}
	prev := dag.Result{Tasks: map[string]dag.TaskResult{
		"g/c": {State: dag.Completed, Attempts: 1, Output: map[string]any{"c": 1}},
	}}
	var rec dagtest.Recorder
	_, err, _ := ctRun(t, rec.Wrap(tasks), dag.Options{Resume: &prev})
	if err != nil {
		t.Fatal(err)
	}
	if got := ranTasks(&rec); !slices.Equal(got, []string{"g/c", "src"}) {
		t.Errorf("ran %v; want g/c to run again after src did", got)
	}
}
