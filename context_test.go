package dag_test

// The job context: what each task sees, who wins a key, conflicts between
// unordered writers, ownership of the maps, independence from timing.

import (
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

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// completions reads a job's events until Run closes the channel, and
// closes a channel per task when that task completes, so that a Func can
// wait until another task's output is in the job context.
type completions struct {
	ch   chan dag.Event
	done map[string]chan struct{}
	end  chan struct{}
}

func newCompletions(names ...string) *completions {
	c := &completions{ch: make(chan dag.Event), done: map[string]chan struct{}{}, end: make(chan struct{})}
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
func (c *completions) await(ctx context.Context, names ...string) error {
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
func (c *completions) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.end:
	case <-guard(t).Done():
		t.Fatal("the events channel was not closed before the test's deadline")
	}
}

// visibilityTasks is a diamond (root, l, r, sink) beside an unrelated
// chain (x, y). Each task writes its own name.
var visibilityTasks = []struct {
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
	t.Parallel()
	universe := []string{"init"}
	for _, vt := range visibilityTasks {
		universe = append(universe, vt.name)
	}
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			for range 20 {
				guard := guard(t)
				comp := newCompletions(universe...)
				var mu sync.Mutex
				got := map[string]view{}
				var tasks []dag.Task
				for _, vt := range visibilityTasks {
					tasks = append(tasks, dag.Task{Name: vt.name, DependsOn: vt.deps, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
						if mp > 1 {
							// Wait until unrelated outputs are in the context.
							if err := comp.await(guard, vt.gate...); err != nil {
								return nil, err
							}
						}
						view := see(in, universe)
						mu.Lock()
						got[vt.name] = view
						mu.Unlock()
						return map[string]any{vt.name: vt.name + "-out"}, nil
					}})
				}
				res, err := runTasks(t, tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"init": 0}, Events: comp.ch})
				comp.wait(t)
				if err != nil {
					t.Fatalf("Wait() = %v; want nil", err)
				}
				want := map[string]view{}
				final := map[string]any{"init": 0}
				for _, vt := range visibilityTasks {
					m := map[string]any{"init": 0}
					for _, k := range vt.sees {
						m[k] = k + "-out"
					}
					want[vt.name] = wantView(m)
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
	t.Parallel()
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			universe := []string{"init", "flaky", "junk", "broken", "shared", "after", "other"}
			var mu sync.Mutex
			got := map[string]view{}
			see := func(name string, in dag.Values) {
				mu.Lock()
				defer mu.Unlock()
				got[name] = see(in, universe)
			}
			var calls atomic.Int32
			tasks := []dag.Task{
				{Name: "flaky", MaxRetries: 1, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					if calls.Add(1) == 1 {
						return map[string]any{"flaky": "bad", "junk": 1, "shared": "flaky"}, errBoom
					}
					return map[string]any{"flaky": "good"}, nil
				}},
				{Name: "broken", ContinueOnFailure: true, MaxRetries: dag.NoRetries, Func: func(context.Context, dag.Values) (map[string]any, error) {
					return map[string]any{"broken": 1, "junk": 2, "shared": "broken"}, errBang
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
			res, err := runTasks(t, tasks, dag.Options{
				MaxParallel: mp,
				Context:     map[string]any{"init": 0},
				Backoff:     func() backoff.BackOff { return &backoff.ZeroBackOff{} },
			})
			if err != nil {
				t.Fatalf("Wait() = %v; want nil: broken has ContinueOnFailure and failed writes are no conflict", err)
			}
			want := map[string]view{
				"after": wantView(map[string]any{"init": 0, "flaky": "good"}),
				"other": wantView(map[string]any{"init": 0}),
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
					"broken": {State: dag.Failed, Attempts: 1, Err: errBang},
					"after":  {State: dag.Completed, Attempts: 1},
					"other":  {State: dag.Completed, Attempts: 1},
				},
			}
			if diff := cmp.Diff(wantRes, res, ignoreTimes); diff != "" {
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
	t.Parallel()
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
				guard := guard(t)
				comp := newCompletions(names...)
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
				res, err := runTasks(t, tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"k": "init", "m": "init", "n": "init"}, Events: comp.ch})
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
	t.Parallel()
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
				{Name: "p", Func: succeed(map[string]any{"key": "p", "p1": 1, "p2": 2, "p3": 3})},
				{Name: "q", Func: succeed(map[string]any{"key": "q", "q1": 1, "q2": 2, "q3": 3})},
			},
			pair:   []string{"p", "q"},
			reason: "which value wins would depend on which finished last",
		},
		{
			name: "same value",
			tasks: []dag.Task{
				{Name: "p", Func: succeed(map[string]any{"key": 1})},
				{Name: "q", Func: succeed(map[string]any{"key": 1})},
			},
			pair:   []string{"p", "q"},
			reason: "the rule is about the graph, not the values",
		},
		{
			name: "key of the initial context",
			tasks: []dag.Task{
				{Name: "p", Func: succeed(map[string]any{"init": "p"})},
				{Name: "q", Func: succeed(map[string]any{"init": "q"})},
			},
			pair:   []string{"p", "q"},
			reason: "overriding the initial context does not order the writers",
		},
		{
			name: "one with ContinueOnFailure",
			tasks: []dag.Task{
				{Name: "p", ContinueOnFailure: true, Func: succeed(map[string]any{"key": "p", "p1": 1})},
				{Name: "q", Func: succeed(map[string]any{"key": "q", "q1": 1})},
			},
			pair:   []string{"p", "q"},
			reason: "a conflict is a bug in the job, not a failure to tolerate",
		},
		{
			name: "one with ContinueOnFailure, declared second",
			tasks: []dag.Task{
				{Name: "q", Func: succeed(map[string]any{"key": "q", "q1": 1})},
				{Name: "p", ContinueOnFailure: true, Func: succeed(map[string]any{"key": "p", "p1": 1})},
			},
			pair:   []string{"p", "q"},
			reason: "a conflict is a bug in the job, not a failure to tolerate",
		},
		{
			name: "both with ContinueOnFailure",
			tasks: []dag.Task{
				{Name: "p", ContinueOnFailure: true, Func: succeed(map[string]any{"key": "p"})},
				{Name: "q", ContinueOnFailure: true, Func: succeed(map[string]any{"key": "q"})},
			},
			pair:   []string{"p", "q"},
			reason: "a conflict is a bug in the job, not a failure to tolerate",
		},
		{
			name: "siblings below a common writer",
			tasks: []dag.Task{
				{Name: "a", Func: succeed(map[string]any{"key": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: succeed(map[string]any{"key": "b", "b1": 1})},
				{Name: "c", DependsOn: []string{"a"}, Func: succeed(map[string]any{"key": "c", "c1": 1})},
			},
			pair:   []string{"b", "c"},
			absent: []string{"a"},
			reason: "b and c are each ordered with a but not with each other",
		},
		{
			name: "deep siblings",
			tasks: []dag.Task{
				{Name: "a", Func: succeed(map[string]any{"key": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: noop},
				{Name: "c", DependsOn: []string{"b"}, Func: succeed(map[string]any{"key": "c"})},
				{Name: "d", DependsOn: []string{"a"}, Func: succeed(map[string]any{"key": "d"})},
			},
			pair:   []string{"c", "d"},
			absent: []string{"a", "b"},
			reason: "c and d are ordered with a only",
		},
		{
			name: "ordered pair and an outsider",
			tasks: []dag.Task{
				{Name: "a", Func: succeed(map[string]any{"key": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: succeed(map[string]any{"key": "b"})},
				{Name: "x", Func: succeed(map[string]any{"key": "x"})},
			},
			blame:  []string{"a", "b"},
			pair:   []string{"x"},
			reason: "x is ordered with neither a nor b",
		},
	} {
		for _, mp := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				for range 20 {
					res, err := runTasks(t, tc.tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"init": 0}})
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
	t.Parallel()
	for _, tc := range []struct {
		name  string
		tasks []dag.Task
		want  map[string]any
	}{
		{"direct", []dag.Task{
			{Name: "b", DependsOn: []string{"a"}, Func: succeed(map[string]any{"key": "b"})},
			{Name: "a", Func: succeed(map[string]any{"key": "a"})},
		}, map[string]any{"key": "b"}},
		{"indirect", []dag.Task{
			{Name: "c", DependsOn: []string{"b"}, Func: succeed(map[string]any{"key": "c"})},
			{Name: "b", DependsOn: []string{"a"}, Func: noop},
			{Name: "a", Func: succeed(map[string]any{"key": "a"})},
		}, map[string]any{"key": "c"}},
		{"diamond, both branches above the last writer", []dag.Task{
			{Name: "a", Func: succeed(map[string]any{"key": "a"})},
			{Name: "b", DependsOn: []string{"a"}, Func: succeed(map[string]any{"key": "b"})},
			{Name: "c", DependsOn: []string{"a"}, Func: noop},
			{Name: "d", DependsOn: []string{"b", "c"}, Func: succeed(map[string]any{"key": "d"})},
		}, map[string]any{"key": "d"}},
		{"different keys", []dag.Task{
			{Name: "p", Func: succeed(map[string]any{"p": 1})},
			{Name: "q", Func: succeed(map[string]any{"q": 1})},
		}, map[string]any{"p": 1, "q": 1}},
	} {
		for _, mp := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				for range 20 {
					res, err := runTasks(t, tc.tasks, dag.Options{MaxParallel: mp})
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
	t.Parallel()
	var kept map[string]any // written by a, then changed by b and by the test
	var mu sync.Mutex
	var seen view
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
			seen = see(in, universe)
			return nil, nil
		}},
	}
	res, err := runTasks(t, tasks, dag.Options{Context: map[string]any{"init": 0}})
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	kept["k"] = 1000
	kept["after-wait"] = true
	want := map[string]any{"init": 0, "k": 1, "a-only": "a", "b": 1}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(wantView(want), seen); diff != "" {
		t.Errorf("what c saw mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, res.Context); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"k": 1, "a-only": "a"}, res.Tasks["a"].Output); diff != "" {
		t.Errorf("Result.Tasks[a].Output mismatch (-want +got):\n%s", diff)
	}
}

// TestContextSnapshotOutputIsACopy checks that the outputs in a Snapshot
// taken while the job runs are the Snapshot's own: changing them changes
// neither what later tasks see nor the job's final Result.
func TestContextSnapshotOutputIsACopy(t *testing.T) {
	t.Parallel()
	started, changed := make(chan struct{}), make(chan struct{})
	tasks := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"k": 1})},
		{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			close(started) // so a has completed
			<-changed
			if v, _ := in.Get("k"); v != 1 {
				return nil, fmt.Errorf("b sees k = %v after the Snapshot's output changed; want 1", v)
			}
			return nil, nil
		}},
	}
	job, err := dag.Run(t.Context(), tasks, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	snap := job.Snapshot()
	snap.Tasks["a"].Output["k"] = 2
	snap.Tasks["a"].Output["extra"] = true
	close(changed)
	res, err := waitJob(t, job)
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	if diff := cmp.Diff(map[string]any{"k": 1}, res.Tasks["a"].Output); diff != "" {
		t.Errorf("Result.Tasks[a].Output after a Snapshot's changed mismatch (-want +got):\n%s", diff)
	}
}

// TestContextTaskReusesItsMap checks that a task may reuse the map it
// returned: one Func returns the same map on every attempt, changing it in
// between, and a goroutine the task started changes it after the job
// ended.
func TestContextTaskReusesItsMap(t *testing.T) {
	t.Parallel()
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
				return buf, errBoom
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
			if diff := cmp.Diff(map[string]any{"k": "attempt 2"}, valuesMap(in)); diff != "" {
				return nil, fmt.Errorf("reader saw (-want +got):\n%s", diff)
			}
			return nil, nil
		}},
	}
	res, err := runTasks(t, tasks, dag.Options{Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
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
	t.Parallel()
	universe := []string{"init", "k", "x", "late", "other"}
	for _, mp := range []int{1, 4} {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			var mu sync.Mutex
			var during view
			var read, unread dag.Values
			handed := make(chan dag.Values, 1)
			tasks := []dag.Task{
				{Name: "a", Func: succeed(map[string]any{"k": 1, "x": "a"})},
				{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					mu.Lock()
					defer mu.Unlock()
					read, during = in, see(in, universe)
					handed <- in
					return nil, nil
				}},
				{Name: "b2", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
					mu.Lock()
					defer mu.Unlock()
					unread = in // not read until the job ended
					return nil, nil
				}},
				{Name: "c", DependsOn: []string{"b", "b2"}, Func: succeed(map[string]any{"k": 2, "late": true})},
				{Name: "d", DependsOn: []string{"c"}, Func: succeed(map[string]any{"x": "d"})},
				{Name: "other", Func: succeed(map[string]any{"other": 1})},
			}
			job, err := dag.Run(context.Background(), tasks, dag.Options{MaxParallel: mp, Context: map[string]any{"init": 0}})
			if err != nil {
				t.Fatalf("Run(…) = %v; want no error", err)
			}
			want := wantView(map[string]any{"init": 0, "k": 1, "x": "a"})
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
					if diff := cmp.Diff(want, see(v, universe)); diff != "" {
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
			_, err = waitJob(t, job)
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
			if diff := cmp.Diff(want, see(read, universe)); diff != "" {
				t.Errorf("b's Values read after Wait mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, see(unread, universe)); diff != "" {
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
	t.Parallel()
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
			got[name] = valuesMap(in)
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
	res, err := waitJob(t, job)
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

// modelTask is one task of TestContextTimingIndependent's job.
type modelTask struct {
	deps  []int
	spine bool // writes "spine"; spine writers form a chain
}

// modelJob is a fixed pseudo-random DAG of n tasks: task i depends on
// some earlier tasks, and every fourth task writes "spine" and depends on
// the previous spine writer, so that no two writers of a key are
// unordered.
func modelJob(n int, seed uint64) []modelTask {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	job := make([]modelTask, n)
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

// digest condenses everything a task sees into its output value.
func digest(in dag.Values) string {
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
	t.Parallel()
	const n = 24
	model := modelJob(n, 7)
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
		outputs[i] = map[string]any{name(i): digest(dag.ValuesOf(seen))}
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
			out := map[string]any{name(i): digest(in)}
			if mt.spine {
				out["spine"] = i
			}
			return out, nil
		}}
	}
	for mp := 1; mp <= 4; mp++ {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			for run := range 50 {
				res, err := runTasks(t, tasks, dag.Options{MaxParallel: mp, Context: initial})
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
