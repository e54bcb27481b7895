package dag_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagrun/dag"
)

// ctRun runs tasks to the end and checks the outcome with checkJob (see
// checkers_test.go): legal transitions, trigger rules, attempts, results
// and Wait's error.
func ctRun(t *testing.T, tasks []dag.Task, opts dag.Options) (dag.Result, error, []dag.Event) {
	t.Helper()
	out := runJob(t, tasks, opts)
	return out.Res, out.Err, out.Events
}

// depKind is a way for a dependency to end, and the tasks that make it so.
type depKind struct {
	name  string
	state dag.State
	tol   bool
	tasks func(name string) []dag.Task // the dependency is the last one
}

var ctDepKinds = []depKind{
	{"completed", dag.Completed, false, func(n string) []dag.Task { return []dag.Task{{Name: n, Func: succeed(map[string]any{n: 1})}} }},
	{"tolerated", dag.Failed, true, func(n string) []dag.Task { return []dag.Task{{Name: n, Func: fail(errBoom), ContinueOnFailure: true}} }},
	{"failed", dag.Failed, false, func(n string) []dag.Task { return []dag.Task{{Name: n, Func: fail(errBoom)}} }},
	{"skipped", dag.Skipped, false, func(n string) []dag.Task {
		return []dag.Task{{Name: n, Func: func(context.Context, dag.Values) (map[string]any, error) { return nil, dag.ErrSkip }}}
	}},
	{"upstream", dag.UpstreamFailed, false, func(n string) []dag.Task {
		return []dag.Task{{Name: n + "-cause", Func: fail(errBoom)}, {Name: n, DependsOn: []string{n + "-cause"}, Func: succeed(map[string]any{n: 1})}}
	}},
}

// ctExpect is how a task with Trigger tr and a no-op Func ends after
// dependencies that ended as deps say: the rule as the property test's
// reference model states it (cpRule), Completed where that says it runs.
func ctExpect(tr dag.Trigger, deps []depKind) dag.State {
	states, tolerated := make([]dag.State, len(deps)), make([]bool, len(deps))
	for i, d := range deps {
		states[i], tolerated[i] = d.state, d.tol
	}
	if st := cpRule(tr, states, tolerated); st != dag.Running {
		return st
	}
	return dag.Completed
}

// TestTriggerEveryCombination runs each Trigger against every combination
// of one, two and three dependencies' final states, with KeepGoing so that
// a failure does not stop the job first, and checks the task's end against
// the table, and that it saw exactly the outputs of the dependencies that
// completed.
func TestTriggerEveryCombination(t *testing.T) {
	t.Parallel()
	var combos [][]depKind
	for a := range ctDepKinds {
		combos = append(combos, []depKind{ctDepKinds[a]})
		for b := a; b < len(ctDepKinds); b++ {
			combos = append(combos, []depKind{ctDepKinds[a], ctDepKinds[b]})
			for c := b; c < len(ctDepKinds); c++ {
				combos = append(combos, []depKind{ctDepKinds[a], ctDepKinds[b], ctDepKinds[c]})
			}
		}
	}
	for tr := dag.AllSucceeded; tr <= dag.AnySucceeded; tr++ {
		for _, combo := range combos {
			var names []string
			var tasks []dag.Task
			for i, d := range combo {
				n := fmt.Sprintf("d%d-%s", i, d.name)
				names = append(names, n)
				tasks = append(tasks, d.tasks(n)...)
			}
			var seen []string
			tasks = append(tasks, dag.Task{Name: "t", DependsOn: names, Trigger: tr, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				for k := range in.All() {
					seen = append(seen, k)
				}
				return map[string]any{"t": 1}, nil
			}})
			res, _, _ := ctRun(t, tasks, dag.Options{KeepGoing: true})
			want := ctExpect(tr, combo)
			if got := res.Tasks["t"].State; got != want {
				t.Errorf("%v with %v: task ended %v; want %v", tr, names, got, want)
			}
			var wantSeen []string
			for i, d := range combo {
				if d.state == dag.Completed {
					wantSeen = append(wantSeen, names[i])
				}
			}
			if want != dag.Completed {
				wantSeen = nil
			}
			if !slices.Equal(seen, wantSeen) {
				t.Errorf("%v with %v: task saw %v; want %v", tr, names, seen, wantSeen)
			}
		}
	}
}

func TestTriggerDecide(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tr        dag.Trigger
		states    []dag.State
		tolerated []bool
		want      dag.State
	}{
		{dag.AllSucceeded, nil, nil, dag.Running},
		{dag.AnyFailed, nil, nil, dag.Running},
		{dag.AllSucceeded, []dag.State{dag.Completed, dag.Failed}, []bool{false, true}, dag.Running},
		{dag.AllSucceeded, []dag.State{dag.Completed, dag.Failed}, []bool{false, false}, dag.UpstreamFailed},
		{dag.AllSucceeded, []dag.State{dag.Completed, dag.Skipped}, nil, dag.Skipped},
		{dag.NoneFailed, []dag.State{dag.Skipped, dag.Skipped}, nil, dag.Running},
		{dag.AnySucceeded, []dag.State{dag.Skipped, dag.Failed}, []bool{false, true}, dag.Skipped},
		{dag.AnySucceeded, []dag.State{dag.Skipped, dag.UpstreamFailed}, nil, dag.UpstreamFailed},
		{dag.AnyFailed, []dag.State{dag.Completed, dag.Skipped}, nil, dag.Skipped},
		{dag.AllDone, []dag.State{dag.Failed, dag.Canceled}, nil, dag.Running},
	} {
		if got := tc.tr.Decide(tc.states, tc.tolerated); got != tc.want {
			t.Errorf("%v.Decide(%v, %v) = %v; want %v", tc.tr, tc.states, tc.tolerated, got, tc.want)
		}
	}
	if s := dag.NoneFailed.String(); s != "none_failed" {
		t.Errorf("NoneFailed.String() = %q", s)
	}
}

// TestTriggerNeverEarly checks that a task with AnySucceeded does not start
// when its first dependency completes, but only once all have ended.
func TestTriggerNeverEarly(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var slowDone atomic.Bool
	tasks := []dag.Task{
		{Name: "fast", Func: succeed(map[string]any{"fast": 1})},
		{Name: "slow", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			<-release
			slowDone.Store(true)
			return map[string]any{"slow": 1}, nil
		}},
		{Name: "any", DependsOn: []string{"fast", "slow"}, Trigger: dag.AnySucceeded, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if !slowDone.Load() {
				return nil, errors.New("started before every dependency ended")
			}
			if in.Len() != 2 {
				return nil, fmt.Errorf("saw %v", in)
			}
			return nil, nil
		}},
		{Name: "opener", DependsOn: []string{"fast"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			close(release)
			return nil, nil
		}},
	}
	res, err, _ := ctRun(t, tasks, dag.Options{MaxParallel: 4})
	if err != nil || res.Tasks["any"].State != dag.Completed {
		t.Fatalf("Wait() = %v, any %v", err, res.Tasks["any"])
	}
}

func TestWhen(t *testing.T) {
	t.Parallel()
	var ran atomic.Int32
	count := func(ctx context.Context, in dag.Values) (map[string]any, error) { ran.Add(1); return nil, nil }
	var sawX atomic.Int32
	tasks := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"x": 5})},
		{Name: "no", DependsOn: []string{"a"}, When: func(in dag.Values) bool {
			v, _ := dag.Lookup[int](in, "x")
			sawX.Store(int32(v))
			return false
		}, Func: count},
		{Name: "after-no", DependsOn: []string{"no"}, Func: count},
		{Name: "yes", DependsOn: []string{"a"}, When: func(in dag.Values) bool { return true }, Func: count},
		{Name: "unwanted", DependsOn: []string{"missing-upstream"}, When: func(dag.Values) bool { t.Error("When asked though the rule said no"); return true }, Func: count},
		{Name: "missing-upstream", Func: fail(errBoom), ContinueOnFailure: false},
	}
	res, err, events := ctRun(t, tasks, dag.Options{KeepGoing: true})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Wait() = %v", err)
	}
	if sawX.Load() != 5 {
		t.Errorf("When saw x=%d; want 5", sawX.Load())
	}
	checkStates(t, "", res, map[string]dag.State{"no": dag.Skipped, "after-no": dag.Skipped, "yes": dag.Completed, "unwanted": dag.UpstreamFailed})
	if ran.Load() != 1 {
		t.Errorf("%d Funcs ran; want 1", ran.Load())
	}
	for _, e := range events {
		if e.Task == "no" && e.From != dag.Pending {
			t.Errorf("skipped task has event %v; want only Pending -> Skipped", e)
		}
	}
}

func TestWhenPanics(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{{Name: "w", When: func(dag.Values) bool { panic("bad condition") }, Func: succeed(map[string]any{"w": 1})}}
	res, err, _ := ctRun(t, tasks, dag.Options{})
	var pe *dag.PanicError
	if !errors.As(err, &pe) || pe.Value != "bad condition" {
		t.Fatalf("Wait() = %v; want a *PanicError", err)
	}
	if tr := res.Tasks["w"]; tr.State != dag.Failed || tr.Attempts != 0 {
		t.Errorf("w = %+v; want Failed with no attempt", tr)
	}
}

func TestErrSkip(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tasks := []dag.Task{
		{Name: "s", MaxRetries: 5, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			calls.Add(1)
			return map[string]any{"s": 1}, fmt.Errorf("nothing to do: %w", dag.ErrSkip)
		}},
		{Name: "join", DependsOn: []string{"s"}, Trigger: dag.NoneFailed, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if _, ok := in.Get("s"); ok {
				return nil, errors.New("saw a skipped task's output")
			}
			return nil, nil
		}},
	}
	res, err, events := ctRun(t, tasks, dag.Options{})
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	tr := res.Tasks["s"]
	if tr.State != dag.Skipped || !errors.Is(tr.Err, dag.ErrSkip) || calls.Load() != 1 || tr.Output != nil {
		t.Errorf("s = %+v after %d calls; want Skipped, Err matching ErrSkip, one call, no output", tr, calls.Load())
	}
	if _, ok := res.Context["s"]; ok {
		t.Error("a skipped task's output is in Result.Context")
	}
	if res.Tasks["join"].State != dag.Completed {
		t.Errorf("join = %v", res.Tasks["join"].State)
	}
	if !slices.ContainsFunc(events, func(e dag.Event) bool { return e.Task == "s" && e.From == dag.Running && e.To == dag.Skipped }) {
		t.Error("no Running -> Skipped event")
	}
}

// TestKeepGoingTwoBranches fails two independent branches: every other
// branch runs to its end, and Wait joins one *TaskError per failure in
// declaration order.
func TestKeepGoingTwoBranches(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "b1", Func: fail(errBoom)},
		{Name: "b1-next", DependsOn: []string{"b1"}, Func: succeed(map[string]any{"x": 1})},
		{Name: "ok", Func: succeed(map[string]any{"ok": 1})},
		{Name: "ok-next", DependsOn: []string{"ok"}, Func: succeed(map[string]any{"ok2": 1})},
		{Name: "b2", Func: fail(errBoom)},
		{Name: "tolerated", Func: fail(errBoom), ContinueOnFailure: true},
	}
	for range 10 {
		res, err, _ := ctRun(t, tasks, dag.Options{KeepGoing: true, MaxParallel: 3})
		if res.State != dag.Failed {
			t.Fatalf("State = %v", res.State)
		}
		var names []string
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var te *dag.TaskError
			if !errors.As(e, &te) {
				t.Fatalf("joined error %v is not a *TaskError", e)
			}
			names = append(names, te.Task)
		}
		if !slices.Equal(names, []string{"b1", "b2"}) {
			t.Errorf("Wait's errors name %v; want [b1 b2]", names)
		}
		if res.Tasks["ok-next"].State != dag.Completed || res.Tasks["b1-next"].State != dag.UpstreamFailed {
			t.Errorf("ok-next %v, b1-next %v", res.Tasks["ok-next"].State, res.Tasks["b1-next"].State)
		}
		if got := res.Failed(); !slices.Equal(got, []string{"b1", "b2", "tolerated"}) {
			t.Errorf("Failed() = %v", got)
		}
	}
}

// TestFailFastCancelsDependents: without KeepGoing, the direct dependents
// of a failed task end Canceled, not UpstreamFailed.
func TestFailFastCancelsDependents(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "f", Func: fail(errBoom)},
		{Name: "d", DependsOn: []string{"f"}, Trigger: dag.AllDone, Func: succeed(map[string]any{"d": 1})},
	}
	res, err, _ := ctRun(t, tasks, dag.Options{})
	var te *dag.TaskError
	if !errors.As(err, &te) || te.Task != "f" {
		t.Fatalf("Wait() = %v", err)
	}
	if s := res.Tasks["d"].State; s != dag.Canceled {
		t.Errorf("d ended %v; want canceled", s)
	}
}

func TestSubDAG(t *testing.T) {
	t.Parallel()
	var seenByChild, seenByDependent []string
	keys := func(in dag.Values) []string {
		var ks []string
		for k := range in.All() {
			ks = append(ks, k)
		}
		return ks
	}
	tasks := []dag.Task{
		{Name: "before", Func: succeed(map[string]any{"before": 1})},
		{Name: "other", Func: succeed(map[string]any{"other": 1})},
		{Name: "g", DependsOn: []string{"before"}, Sub: []dag.Task{
			{Name: "a", Func: succeed(map[string]any{"a": 1})},
			{Name: "b", DependsOn: []string{"a"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				seenByChild = keys(in)
				return map[string]any{"b": 1}, nil
			}},
			{Name: "c", Func: succeed(map[string]any{"c": 1})},
		}},
		{Name: "after", DependsOn: []string{"g"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			seenByDependent = keys(in)
			return nil, nil
		}},
	}
	res, err, events := ctRun(t, tasks, dag.Options{MaxParallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "before"}; !slices.Equal(seenByChild, want) {
		t.Errorf("g/b saw %v; want %v", seenByChild, want)
	}
	if want := []string{"a", "b", "before", "c"}; !slices.Equal(seenByDependent, want) {
		t.Errorf("after saw %v; want %v", seenByDependent, want)
	}
	for _, name := range []string{"g", "g/a", "g/b", "g/c"} {
		if res.Tasks[name].State != dag.Completed {
			t.Errorf("%s = %v", name, res.Tasks[name].State)
		}
	}
	var group []string
	for _, e := range events {
		if e.Task == "g" {
			group = append(group, e.From.String()+">"+e.To.String())
		}
	}
	if want := []string{"pending>running", "running>completed"}; !slices.Equal(group, want) {
		t.Errorf("group events %v; want %v", group, want)
	}
	if res.Tasks["g"].Attempts != 0 {
		t.Errorf("group attempts %d", res.Tasks["g"].Attempts)
	}
}

func TestSubDAGNested(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "a", Sub: []dag.Task{
			{Name: "b", Sub: []dag.Task{
				{Name: "c", Func: succeed(map[string]any{"c": 1})},
			}},
			{Name: "d", DependsOn: []string{"b"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				if _, ok := in.Get("c"); !ok {
					return nil, errors.New("d does not see c")
				}
				return map[string]any{"d": 1}, nil
			}},
		}},
		{Name: "e", DependsOn: []string{"a/b/c"}, Func: succeed(map[string]any{"e": 1})},
	}
	res, err, _ := ctRun(t, tasks, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "a/b", "a/b/c", "a/d", "e"} {
		if res.Tasks[name].State != dag.Completed {
			t.Errorf("%s = %v", name, res.Tasks[name].State)
		}
	}
}

// TestSubDAGDependOnChildByPath: a task that depends on a child sees the
// outputs of the group's own dependencies (its ancestors) but not the
// child's siblings'.
func TestSubDAGDependOnChildByPath(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "root", Func: succeed(map[string]any{"root": 1})},
		{Name: "g", DependsOn: []string{"root"}, Sub: []dag.Task{
			{Name: "c", Func: succeed(map[string]any{"c": 1})},
			{Name: "sib", Func: succeed(map[string]any{"sib": 1})},
		}},
		{Name: "t", DependsOn: []string{"g/c"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			var ks []string
			for k := range in.All() {
				ks = append(ks, k)
			}
			return map[string]any{"seen": strings.Join(ks, ",")}, nil
		}},
	}
	res, err, _ := ctRun(t, tasks, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Context["seen"]; got != "c,root" {
		t.Errorf("t saw %v; want c,root", got)
	}
}

func TestSubDAGFailure(t *testing.T) {
	t.Parallel()
	block := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	t.Run("fail-fast", func(t *testing.T) {
		t.Parallel()
		started := make(chan struct{})
		tasks := []dag.Task{
			{Name: "g", ContinueOnFailure: true, Sub: []dag.Task{
				{Name: "slow", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
					close(started)
					return block(ctx, in)
				}},
				{Name: "bad", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) { <-started; return nil, errBoom }},
				{Name: "later", DependsOn: []string{"bad"}, Func: succeed(map[string]any{"later": 1})},
			}},
			{Name: "after", DependsOn: []string{"g"}, Func: succeed(map[string]any{"after": 1})},
		}
		res, err, _ := ctRun(t, tasks, dag.Options{MaxParallel: 4})
		if err != nil {
			t.Fatalf("Wait() = %v; the group has ContinueOnFailure", err)
		}
		checkStates(t, "", res, map[string]dag.State{"g": dag.Failed, "g/slow": dag.Canceled, "g/bad": dag.Failed, "g/later": dag.Canceled, "after": dag.Completed})
		var te *dag.TaskError
		if !errors.As(res.Tasks["g"].Err, &te) || te.Task != "g/bad" {
			t.Errorf("g's error = %v; want the *TaskError of g/bad", res.Tasks["g"].Err)
		}
	})
	t.Run("keep-going", func(t *testing.T) {
		t.Parallel()
		tasks := []dag.Task{
			{Name: "g", Sub: []dag.Task{
				{Name: "bad", Func: fail(errBoom)},
				{Name: "good", Func: succeed(map[string]any{"good": 1})},
				{Name: "good2", DependsOn: []string{"good"}, Func: succeed(map[string]any{"good2": 1})},
			}},
			{Name: "x", Func: fail(errBoom)},
			{Name: "after", DependsOn: []string{"g"}, Func: succeed(map[string]any{"after": 1})},
		}
		res, err, _ := ctRun(t, tasks, dag.Options{KeepGoing: true})
		var names []string
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var te *dag.TaskError
			errors.As(e, &te)
			names = append(names, te.Task)
		}
		if !slices.Equal(names, []string{"g/bad", "x"}) {
			t.Errorf("Wait names %v; want [g/bad x]", names)
		}
		if res.Tasks["g/good2"].State != dag.Completed || res.Tasks["g"].State != dag.Failed || res.Tasks["after"].State != dag.UpstreamFailed {
			t.Errorf("results %+v", res.Tasks)
		}
	})
	t.Run("fail-fast job", func(t *testing.T) {
		t.Parallel()
		tasks := []dag.Task{
			{Name: "g", Sub: []dag.Task{{Name: "bad", Func: fail(errBoom)}}},
			{Name: "after", DependsOn: []string{"g"}, Func: succeed(map[string]any{"after": 1})},
		}
		res, err, _ := ctRun(t, tasks, dag.Options{})
		var te *dag.TaskError
		if !errors.As(err, &te) || te.Task != "g/bad" || !errors.Is(err, errBoom) {
			t.Fatalf("Wait() = %v; want the *TaskError of g/bad", err)
		}
		if res.Tasks["after"].State != dag.Canceled || res.State != dag.Failed {
			t.Errorf("after %v, job %v", res.Tasks["after"].State, res.State)
		}
	})
}

func TestSubDAGNotRun(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "f", Func: fail(errBoom)},
		{Name: "g", DependsOn: []string{"f"}, Sub: []dag.Task{
			{Name: "a", Func: succeed(map[string]any{"a": 1})},
			{Name: "h", Sub: []dag.Task{{Name: "b", Func: succeed(map[string]any{"b": 1})}}},
		}},
		{Name: "s", When: func(dag.Values) bool { return false }, Sub: []dag.Task{{Name: "c", Func: succeed(map[string]any{"c": 1})}}},
		{Name: "all-skipped", Sub: []dag.Task{{Name: "d", When: func(dag.Values) bool { return false }, Func: succeed(map[string]any{"d": 1})}}},
	}
	res, _, _ := ctRun(t, tasks, dag.Options{KeepGoing: true})
	want := map[string]dag.State{
		"g": dag.UpstreamFailed, "g/a": dag.UpstreamFailed, "g/h": dag.UpstreamFailed, "g/h/b": dag.UpstreamFailed,
		"s": dag.Skipped, "s/c": dag.Skipped, "all-skipped": dag.Skipped, "all-skipped/d": dag.Skipped,
	}
	checkStates(t, "", res, want)
}

func TestSubDAGTimeout(t *testing.T) {
	t.Parallel()
	stubborn := make(chan struct{})
	defer close(stubborn)
	tasks := []dag.Task{
		{Name: "g", Timeout: 30 * time.Millisecond, ContinueOnFailure: true, Sub: []dag.Task{
			{Name: "ignores", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				select {
				case <-stubborn:
				case <-time.After(5 * time.Second):
				}
				return nil, nil
			}},
			{Name: "next", DependsOn: []string{"ignores"}, Func: succeed(map[string]any{"n": 1})},
		}},
		{Name: "after", DependsOn: []string{"g"}, Func: succeed(map[string]any{"after": 1})},
	}
	res, err, _ := ctRun(t, tasks, dag.Options{})
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	g := res.Tasks["g"]
	if g.State != dag.Failed || !errors.Is(g.Err, context.DeadlineExceeded) {
		t.Errorf("g = %+v; want Failed with DeadlineExceeded", g)
	}
	if res.Tasks["g/ignores"].State != dag.Canceled || res.Tasks["g/next"].State != dag.Canceled || res.Tasks["after"].State != dag.Completed {
		t.Errorf("results %+v", res.Tasks)
	}
}

func TestExpandCycle(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	tasks := []dag.Task{{Name: "e", MaxRetries: 3, Expand: func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
		calls.Add(1)
		return []dag.Task{
			{Name: "x", DependsOn: []string{"y"}, Func: succeed(map[string]any{"x": 1})},
			{Name: "y", DependsOn: []string{"x"}, Func: succeed(map[string]any{"y": 1})},
		}, nil
	}}}
	res, err, _ := ctRun(t, tasks, dag.Options{})
	if !errors.Is(err, dag.ErrCycle) || calls.Load() != 1 {
		t.Fatalf("Wait() = %v after %d calls; want ErrCycle, no retry", err, calls.Load())
	}
	if !strings.Contains(err.Error(), "e/x -> e/y -> e/x") {
		t.Errorf("error %q does not show the cycle by full names", err)
	}
	if res.Tasks["e"].State != dag.Failed {
		t.Errorf("e = %v", res.Tasks["e"].State)
	}
}

func TestMap(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 10000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			t.Parallel()
			items := make([]int, n)
			for i := range items {
				items[i] = i
			}
			var running, most atomic.Int32
			m := dag.Map("double", "in", "out", func(ctx context.Context, x int) (string, error) {
				r := running.Add(1)
				for {
					m := most.Load()
					if r <= m || most.CompareAndSwap(m, r) {
						break
					}
				}
				defer running.Add(-1)
				return strconv.Itoa(2 * x), nil
			})
			job, err := dag.Run(context.Background(), []dag.Task{m}, dag.Options{MaxParallel: 3, Context: map[string]any{"in": items}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := job.Wait()
			if err != nil {
				t.Fatal(err)
			}
			out := res.Context["out"].([]string)
			if len(out) != n {
				t.Fatalf("len(out) = %d", len(out))
			}
			for i, s := range out {
				if s != strconv.Itoa(2*i) {
					t.Fatalf("out[%d] = %q", i, s)
				}
			}
			if len(res.Tasks) != n+1 || most.Load() > 3 {
				t.Errorf("%d tasks, %d at once", len(res.Tasks), most.Load())
			}
			if n > 0 {
				if _, ok := res.Context["out/0"]; ok || len(res.Context) != 2 {
					t.Errorf("items leak into the context: %d keys", len(res.Context))
				}
			}
		})
	}
	t.Run("bad input", func(t *testing.T) {
		t.Parallel()
		m := dag.Map("m", "in", "out", func(ctx context.Context, x int) (int, error) { return x, nil })
		for _, ctx := range []map[string]any{nil, {"in": []string{"a"}}} {
			_, err, _ := ctRun(t, []dag.Task{m}, dag.Options{Context: ctx})
			if err == nil || !strings.Contains(err.Error(), `"in"`) {
				t.Errorf("Wait() = %v; want an error naming the key", err)
			}
		}
	})
	t.Run("item fails", func(t *testing.T) {
		t.Parallel()
		m := dag.Map("m", "in", "out", func(ctx context.Context, x int) (int, error) {
			if x == 2 {
				return 0, errBoom
			}
			return x, nil
		})
		res, err, _ := ctRun(t, []dag.Task{m}, dag.Options{Context: map[string]any{"in": []int{1, 2, 3}}})
		var te *dag.TaskError
		if !errors.As(err, &te) || te.Task != "m/1" || res.Tasks["m"].State != dag.Failed {
			t.Errorf("Wait() = %v, m %v", err, res.Tasks["m"].State)
		}
	})
}

// TestMaxParallelAcrossLevels counts attempts running at once across the
// job, its groups and an Expand's tasks.
func TestMaxParallelAcrossLevels(t *testing.T) {
	t.Parallel()
	var running, most atomic.Int32
	work := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		r := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if r <= m || most.CompareAndSwap(m, r) {
				break
			}
		}
		for range 1000 {
			if ctx.Err() != nil {
				break
			}
		}
		return nil, nil
	}
	var sub []dag.Task
	for i := range 20 {
		sub = append(sub, dag.Task{Name: strconv.Itoa(i), Func: work})
	}
	tasks := []dag.Task{
		{Name: "g", Sub: append(slices.Clone(sub), dag.Task{Name: "inner", Sub: sub})},
		{Name: "e", Expand: func(ctx context.Context, in dag.Values) ([]dag.Task, error) { return sub, nil }},
		{Name: "top", Func: work},
	}
	res, err, _ := ctRun(t, tasks, dag.Options{MaxParallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if most.Load() > 3 || len(res.Tasks) != 3+20+1+20+20 {
		t.Errorf("%d at once, %d tasks", most.Load(), len(res.Tasks))
	}
}

func TestCompositionValidation(t *testing.T) {
	t.Parallel()
	f := succeed(map[string]any{"x": 1})
	for _, tc := range []struct {
		name  string
		tasks []dag.Task
		is    error
		text  string
	}{
		{"slash", []dag.Task{{Name: "a/b", Func: f}}, dag.ErrInvalidTask, `"a/b"`},
		{"func and sub", []dag.Task{{Name: "a", Func: f, Sub: []dag.Task{{Name: "b", Func: f}}}}, dag.ErrInvalidTask, "more than one"},
		{"group retries", []dag.Task{{Name: "g", MaxRetries: 2, Sub: []dag.Task{{Name: "b", Func: f}}}}, dag.ErrInvalidTask, "MaxRetries"},
		{"inside a group", []dag.Task{{Name: "g", Sub: []dag.Task{{Name: "b", Func: f, DependsOn: []string{"zz"}}}}}, dag.ErrMissingDependency, `"g/b" depends on "g/zz"`},
		{"nested duplicate", []dag.Task{{Name: "g", Sub: []dag.Task{{Name: "h", Sub: []dag.Task{{Name: "x", Func: f}, {Name: "x", Func: f}}}}}}, dag.ErrDuplicateTask, `"g/h/x"`},
		{"cycle through a group", []dag.Task{
			{Name: "t", DependsOn: []string{"g/c"}, Func: f},
			{Name: "g", DependsOn: []string{"t"}, Sub: []dag.Task{{Name: "c", Func: f}}},
		}, dag.ErrCycle, "g/c"},
	} {
		err := dag.Validate(tc.tasks)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: Validate() = %v; want %v mentioning %s", tc.name, err, tc.is, tc.text)
		}
	}
}

// TestSnapshot reads a running job's Result.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	var once sync.Once
	tasks := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"a": 1})},
		{Name: "b", DependsOn: []string{"a"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			<-gate
			return nil, nil
		}},
	}
	job, err := dag.Run(context.Background(), tasks, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer once.Do(func() { close(gate) })
	for {
		snap := job.Snapshot()
		if snap.Tasks["b"].State == dag.Running {
			if snap.State != dag.Running || snap.Tasks["a"].State != dag.Completed || snap.Context["a"] != 1 {
				t.Errorf("snapshot %+v", snap)
			}
			break
		}
		runtime.Gosched()
	}
	once.Do(func() { close(gate) })
	res, _ := job.Wait()
	if snap := job.Snapshot(); snap.State != res.State || len(snap.Tasks) != len(res.Tasks) {
		t.Errorf("snapshot after the end differs from Wait's result")
	}
}
