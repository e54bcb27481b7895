package dag_test

// Scheduling: dependencies end before dependents start, readiness,
// MaxParallel, and the critical-path-first start order.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// shapes are DAG shapes for the scheduling tests.
var shapes = []struct {
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
	t.Parallel()
	for _, shape := range shapes {
		for _, mp := range parallels {
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
				out := runJob(t, tasks, dag.Options{Name: "shapes", MaxParallel: mp})
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
	t.Parallel()
	for _, mp := range parallels {
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
			out := runJob(t, tasks, opts)
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
	t.Parallel()
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
					{Name: "a", ContinueOnFailure: true, Func: script(c["a"], func(context.Context, dag.Values) (map[string]any, error) {
						return map[string]any{"a": 1}, errBoom // the output of a failed attempt is seen by no one
					})},
					{Name: "b", DependsOn: []string{"a"}, Func: script(c["b"], func(_ context.Context, in dag.Values) (map[string]any, error) {
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
					{Name: "a", Func: script(c["a"], fail(errBoom))},
					{Name: "b", DependsOn: []string{"a"}, Func: script(c["b"], succeed(nil))},
				}
			},
			wantState: dag.Failed,
			wantErr:   errBoom,
			want:      check{calls: map[string]int{"a": 1, "b": 0}, sees: map[string]bool{}},
			wantTasks: map[string]dag.State{"a": dag.Failed, "b": dag.Canceled},
		},
		{
			name:   "one completed and one failed-continue dependency",
			reason: "b waits for both, sees x's output but not a's",
			tasks: func(c map[string]*atomic.Int32, seen func(dag.Values)) []dag.Task {
				return []dag.Task{
					{Name: "a", ContinueOnFailure: true, Func: script(c["a"], fail(errBoom))},
					{Name: "x", Func: script(c["x"], succeed(map[string]any{"x": 1}))},
					{Name: "b", DependsOn: []string{"a", "x"}, Func: script(c["b"], func(_ context.Context, in dag.Values) (map[string]any, error) {
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
					{Name: "a", MaxRetries: 2, Func: script(c["a"], fail(errBoom), fail(errBoom), succeed(map[string]any{"a": 3}))},
					{Name: "b", DependsOn: []string{"a"}, Func: script(c["b"], func(_ context.Context, in dag.Values) (map[string]any, error) {
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
		for _, mp := range parallels {
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
				opts := dag.Options{Name: "ready", MaxParallel: mp, Backoff: zeroBackoff, Context: map[string]any{"init": 0}}
				out := runJob(t, tasks, opts)
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
				if diff := cmp.Diff(tc.wantTasks, statesOf(out.Res)); diff != "" {
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
	t.Parallel()
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
						raiseMax(&peak, running.Add(1))
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
				job, rec := startJob(t, t.Context(), tasks, opts)
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
				out := finishJob(t, job, rec, tasks, opts)
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
	t.Parallel()
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
			guard := guard(t)
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
			out := runJob(t, tasks, dag.Options{Name: "rendezvous", MaxParallel: tc.max})
			if out.Err != nil {
				t.Fatalf("Wait() = %v; want nil", out.Err)
			}
		})
	}
}

// modelOrder is the start order with MaxParallel 1, every task
// succeeding: among ready tasks, the one with the longest path of tasks
// ahead of it first, ties in declaration order.
func modelOrder(tasks []dag.Task) []string {
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
	t.Parallel()
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
			tasks = append(tasks, dag.Task{Name: s.name, DependsOn: s.deps, Func: succeed(nil)})
		}
		if got := modelOrder(tasks); !slices.Equal(got, tc.wantOrder) {
			t.Fatalf("%s: the test's model gives %v; the case says %v", tc.name, got, tc.wantOrder)
		}
		for _, mp := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				out := runJob(t, tasks, dag.Options{MaxParallel: mp})
				got := tasksOf(out.Events, dag.Running)
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

// TestSchedStartOrderMatchesModel compares the start order with MaxParallel
// 1 against modelOrder on random DAGs.
func TestSchedStartOrderMatchesModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 0x5eed))
		tasks := randomDAG(r, 1+r.IntN(15), 0.25)
		for i := range tasks {
			tasks[i].Func = succeed(nil)
		}
		out := runJob(t, tasks, dag.Options{MaxParallel: 1})
		if diff := cmp.Diff(modelOrder(tasks), tasksOf(out.Events, dag.Running)); diff != "" {
			t.Errorf("seed %d: start order mismatch (-want +got):\n%s", seed, diff)
		}
	}
}

// TestSchedMaxParallelOneSerializes checks that with MaxParallel 1 each
// attempt leaves Running before the next one enters it, and no two Funcs
// overlap, retries and failures included.
func TestSchedMaxParallelOneSerializes(t *testing.T) {
	t.Parallel()
	var running, peak atomic.Int32
	wrap := func(f dag.TaskFunc) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			raiseMax(&peak, running.Add(1))
			defer running.Add(-1)
			runtime.Gosched()
			return f(ctx, in)
		}
	}
	var flaky atomic.Int32
	tasks := []dag.Task{
		{Name: "a", Func: wrap(succeed(nil))},
		{Name: "b", Func: wrap(succeed(nil))},
		{Name: "flaky", MaxRetries: 2, Func: wrap(script(&flaky, fail(errBoom), succeed(nil)))},
		{Name: "c", DependsOn: []string{"a", "b"}, Func: wrap(succeed(nil))},
		{Name: "broken", ContinueOnFailure: true, Func: wrap(fail(errBang))},
		{Name: "d", DependsOn: []string{"broken", "flaky"}, Func: wrap(succeed(nil))},
	}
	opts := dag.Options{Name: "serial", MaxParallel: 1, Backoff: zeroBackoff}
	out := runJob(t, tasks, opts)
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
