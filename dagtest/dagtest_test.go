package dagtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dagrun/dag"
	"github.com/dagrun/dag/dagtest"
)

var errBoom = errors.New("boom")

// genuine is a Func that must not run once stubbed.
func genuine(name string) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) {
		return map[string]any{name: "real"}, nil
	}
}

// pipeline is a job with a plain task, a group with a nested group, and
// an Expand.
func pipeline() []dag.Task {
	return []dag.Task{
		{Name: "fetch", Func: genuine("fetch")},
		{Name: "etl", DependsOn: []string{"fetch"}, Sub: []dag.Task{
			{Name: "extract", Func: genuine("extract")},
			{Name: "load", DependsOn: []string{"extract"}, Sub: []dag.Task{
				{Name: "write", Func: genuine("write")},
			}},
		}},
		{Name: "fan", DependsOn: []string{"etl"}, Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
			return []dag.Task{{Name: "a", Func: genuine("fan-a")}, {Name: "b", Func: genuine("fan-b")}}, nil
		}},
	}
}

// run runs tasks to the end, inside the caller's synctest bubble.
func run(t *testing.T, tasks []dag.Task, opts dag.Options) (dag.Result, error) {
	t.Helper()
	job, err := dag.Run(t.Context(), tasks, opts)
	if err != nil {
		t.Fatalf("Run(…) = %v; want no error", err)
	}
	return job.Wait()
}

// TestStub stubs a task of the job, a task of a group two levels down and
// a task an Expand returns, and checks that exactly those ran their stubs
// and the caller's tasks are unchanged.
func TestStub(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tasks := pipeline()
		stubbed, err := dagtest.Stub(tasks, map[string]dag.TaskFunc{
			"fetch":          dagtest.Return(map[string]any{"fetch": "stub"}),
			"etl/load/write": dagtest.Return(map[string]any{"write": "stub"}),
			"fan/b":          dagtest.Return(map[string]any{"fan-b": "stub"}),
		})
		if err != nil {
			t.Fatalf("Stub(…) = %v; want nil", err)
		}
		res, err := run(t, stubbed, dag.Options{})
		if err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		want := map[string]any{"fetch": "stub", "extract": "real", "write": "stub", "fan-a": "real", "fan-b": "stub"}
		if diff := cmp.Diff(want, res.Context); diff != "" {
			t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
		}
		// The caller's tasks still run their own Funcs.
		res, err = run(t, tasks, dag.Options{})
		if err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		want = map[string]any{"fetch": "real", "extract": "real", "write": "real", "fan-a": "real", "fan-b": "real"}
		if diff := cmp.Diff(want, res.Context); diff != "" {
			t.Errorf("Result.Context of the original tasks mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestStubErrors checks that every name Stub cannot apply is an error that
// names it, and that Stub then returns no tasks.
func TestStubErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		funcs []string
		want  []string // substrings of the error, one per problem
	}{
		{"unknown task", []string{"fecth"}, []string{`no task "fecth" to stub; the tasks are "fetch", "etl", "fan"`}},
		{"unknown child", []string{"etl/lod"}, []string{`no task "etl/lod" to stub; the tasks are "etl/extract", "etl/load"`}},
		{"unknown grandchild", []string{"etl/load/wirte"}, []string{`no task "etl/load/wirte" to stub; the tasks are "etl/load/write"`}},
		{"under an unknown group", []string{"elt/load"}, []string{`no task "elt/load" to stub`}},
		{"a group", []string{"etl"}, []string{`task "etl" is a group (Task.Sub) and has no Func of its own: stub its tasks, such as "etl/extract"`}},
		{"under a plain task", []string{"fetch/x"}, []string{`no task "fetch/x" to stub: task "fetch" has no tasks of its own`}},
		{"several", []string{"fetch", "zzz", "aaa", "etl/x"}, []string{`"aaa"`, `"zzz"`, `"etl/x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			funcs := map[string]dag.TaskFunc{}
			for _, n := range tc.funcs {
				funcs[n] = dagtest.Fail(errBoom)
			}
			got, err := dagtest.Stub(pipeline(), funcs)
			if err == nil {
				t.Fatalf("Stub(…) = nil error; want one naming %q", tc.funcs)
			}
			if got != nil {
				t.Errorf("Stub(…) returned %d tasks with its error; want none", len(got))
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Stub(…) = %q; want it to contain %q", err, s)
				}
			}
			if n := strings.Count(err.Error(), "dagtest: "); n != len(tc.want) {
				t.Errorf("Stub(…) = %q: %d problems; want %d", err, n, len(tc.want))
			}
		})
	}
}

// TestStubExpand checks the names under an Expand, applied when it runs:
// a missing one fails the Expand for good, and a stub for the Expand task
// (here a Map) makes it a plain task.
func TestStubExpand(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		stubbed, err := dagtest.Stub(pipeline(), map[string]dag.TaskFunc{"fan/c": dagtest.Return(nil)})
		if err != nil {
			t.Fatalf("Stub(…) = %v; want nil: fan's tasks are known only when it runs", err)
		}
		res, err := run(t, stubbed, dag.Options{MaxRetries: 3, Backoff: dagtest.NoDelay})
		if err == nil || !strings.Contains(err.Error(), `no task "fan/c" to stub; the tasks are "fan/a", "fan/b"`) {
			t.Errorf("Wait() = %v; want fan to fail naming fan/c and its tasks", err)
		}
		if tr := res.Tasks["fan"]; tr.State != dag.Failed || tr.Attempts != 1 {
			t.Errorf("Result.Tasks[fan] = %v after %d attempts; want failed after 1: a retry cannot help", tr.State, tr.Attempts)
		}

		double := func(_ context.Context, n int) (int, error) { return 2 * n, nil }
		tasks := []dag.Task{dag.Map("doubles", "xs", "ys", double)}
		stubbed, err = dagtest.Stub(tasks, map[string]dag.TaskFunc{"doubles": dagtest.Return(map[string]any{"ys": []int{42}})})
		if err != nil {
			t.Fatalf("Stub(…) = %v; want nil", err)
		}
		res, err = run(t, stubbed, dag.Options{}) // no xs: the real Map would fail
		if err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		if diff := cmp.Diff(map[string]any{"ys": []int{42}}, res.Context); diff != "" {
			t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestFakes runs each fake in a job inside a synctest bubble, with the
// default backoff (fake time) or NoDelay: what the task ends with, after
// how many attempts, and how much fake time passed.
func TestFakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		task      dag.Task
		opts      dag.Options
		wantState dag.State
		attempts  int
		elapsed   time.Duration // of fake time; -1: any
		check     func(t *testing.T, tr dag.TaskResult, ctx map[string]any)
	}{
		{
			name: "Return", task: dag.Task{Name: "t", Func: dagtest.Return(map[string]any{"k": 1})},
			wantState: dag.Completed, attempts: 1,
			check: func(t *testing.T, _ dag.TaskResult, ctx map[string]any) {
				if diff := cmp.Diff(map[string]any{"k": 1}, ctx); diff != "" {
					t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "Fail", task: dag.Task{Name: "t", MaxRetries: 2, Func: dagtest.Fail(errBoom)},
			opts: dag.Options{Backoff: dagtest.NoDelay}, wantState: dag.Failed, attempts: 3,
			check: func(t *testing.T, tr dag.TaskResult, _ map[string]any) {
				if !errors.Is(tr.Err, errBoom) {
					t.Errorf("Err = %v; want boom", tr.Err)
				}
			},
		},
		{
			name: "FailTimes with NoDelay", task: dag.Task{Name: "t", MaxRetries: 3, Func: dagtest.FailTimes(2, errBoom, map[string]any{"k": "third"})},
			opts: dag.Options{Backoff: dagtest.NoDelay}, wantState: dag.Completed, attempts: 3, elapsed: 0,
		},
		{
			name: "FailTimes with the default backoff", task: dag.Task{Name: "t", MaxRetries: 3, Func: dagtest.FailTimes(2, errBoom, nil)},
			wantState: dag.Completed, attempts: 3, elapsed: -1,
		},
		{
			name: "FailTimes with too few retries", task: dag.Task{Name: "t", MaxRetries: 1, Func: dagtest.FailTimes(2, errBoom, nil)},
			opts: dag.Options{Backoff: dagtest.NoDelay}, wantState: dag.Failed, attempts: 2,
		},
		{
			name: "Panic", task: dag.Task{Name: "t", Func: dagtest.Panic("oops")},
			wantState: dag.Failed, attempts: 1,
			check: func(t *testing.T, tr dag.TaskResult, _ map[string]any) {
				var pe *dag.PanicError
				if !errors.As(tr.Err, &pe) || pe.Value != "oops" {
					t.Errorf("Err = %v; want a *dag.PanicError of \"oops\"", tr.Err)
				}
			},
		},
		{
			name: "Block until the timeout", task: dag.Task{Name: "t", Timeout: time.Minute, MaxRetries: 1, Backoff: dagtest.NoDelay, Func: dagtest.Block},
			wantState: dag.Failed, attempts: 2, elapsed: 2 * time.Minute,
			check: func(t *testing.T, tr dag.TaskResult, _ map[string]any) {
				if !errors.Is(tr.Err, context.DeadlineExceeded) {
					t.Errorf("Err = %v; want context.DeadlineExceeded", tr.Err)
				}
			},
		},
		{
			name: "Block until the job's timeout", task: dag.Task{Name: "t", Func: dagtest.Block},
			opts: dag.Options{Timeout: time.Hour}, wantState: dag.Canceled, attempts: 1, elapsed: time.Hour,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				res, _ := run(t, []dag.Task{tc.task}, tc.opts)
				tr := res.Tasks["t"]
				if tr.State != tc.wantState || tr.Attempts != tc.attempts {
					t.Errorf("Result.Tasks[t] = %v after %d attempts (%v); want %v after %d", tr.State, tr.Attempts, tr.Err, tc.wantState, tc.attempts)
				}
				if d := time.Since(t0); tc.elapsed >= 0 && d != tc.elapsed {
					t.Errorf("the job took %v of fake time; want %v", d, tc.elapsed)
				}
				if tc.check != nil {
					tc.check(t, tr, res.Context)
				}
			})
		})
	}
}

// TestReturnCopies checks that Return and FailTimes hand out copies: a
// caller's later change, or a task's change to what it returned, reaches
// no later call.
func TestReturnCopies(t *testing.T) {
	t.Parallel()
	out := map[string]any{"k": 1}
	for name, f := range map[string]dag.TaskFunc{"Return": dagtest.Return(out), "FailTimes": dagtest.FailTimes(0, errBoom, out)} {
		out["k"] = 2
		got, err := f(context.Background(), dag.Values{})
		if err != nil || got["k"] != 1 {
			t.Errorf("%s: first call = %v, %v; want k 1", name, got, err)
		}
		got["k"] = 3
		if got, _ := f(context.Background(), dag.Values{}); got["k"] != 1 {
			t.Errorf("%s: second call = %v; want k 1", name, got)
		}
	}
}

// TestRecorder records a job with a retried task, a group and an Expand:
// each call's full name, attempt and what it saw.
func TestRecorder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var rec dagtest.Recorder
		tasks := []dag.Task{
			{Name: "flaky", MaxRetries: 2, Func: dagtest.FailTimes(1, errBoom, map[string]any{"a": 1})},
			{Name: "g", DependsOn: []string{"flaky"}, Sub: []dag.Task{
				{Name: "c", Func: dagtest.Return(map[string]any{"c": 2})},
			}},
			{Name: "fan", DependsOn: []string{"g"}, Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
				return []dag.Task{{Name: "x", Func: dagtest.Return(nil)}}, nil
			}},
		}
		_, err := run(t, rec.Wrap(tasks), dag.Options{Context: map[string]any{"init": 0}, Backoff: dagtest.NoDelay})
		if err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		want := []dagtest.Call{
			{Task: "flaky", Attempt: 1, Values: map[string]any{"init": 0}},
			{Task: "flaky", Attempt: 2, Values: map[string]any{"init": 0}},
			{Task: "g/c", Attempt: 1, Values: map[string]any{"init": 0, "a": 1}},
			{Task: "fan/x", Attempt: 1, Values: map[string]any{"init": 0, "a": 1, "c": 2}},
		}
		if diff := cmp.Diff(want, rec.Calls()); diff != "" {
			t.Errorf("Calls() mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want[:2], rec.CallsOf("flaky")); diff != "" {
			t.Errorf("CallsOf(flaky) mismatch (-want +got):\n%s", diff)
		}
		if calls := rec.CallsOf("c"); calls != nil {
			t.Errorf("CallsOf(c) = %v; want none: the task's name is g/c", calls)
		}
	})
}

// TestRecorderOutsideAJob calls a wrapped Func directly, as a unit test
// does: the call is recorded under the task's name, each call the next
// attempt.
func TestRecorderOutsideAJob(t *testing.T) {
	t.Parallel()
	var rec dagtest.Recorder
	wrapped := rec.Wrap([]dag.Task{{Name: "g", Sub: []dag.Task{{Name: "double", Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
		n, err := dag.Lookup[int](in, "n")
		return map[string]any{"d": 2 * n}, err
	}}}}})
	f := wrapped[0].Sub[0].Func
	for n := range 2 {
		if out, err := f(context.Background(), dag.ValuesOf(map[string]any{"n": n})); err != nil || out["d"] != 2*n {
			t.Errorf("call %d = %v, %v; want d %d", n, out, err, 2*n)
		}
	}
	want := []dagtest.Call{
		{Task: "g/double", Attempt: 1, Values: map[string]any{"n": 0}},
		{Task: "g/double", Attempt: 2, Values: map[string]any{"n": 1}},
	}
	if diff := cmp.Diff(want, rec.Calls(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Calls() mismatch (-want +got):\n%s", diff)
	}
}

// TestReportTimesOut is the test the README's "Testing your jobs" shows:
// in a synctest bubble, a fetch that hangs times out after its 10 s on
// each of its 4 attempts, with the default backoff between them, and all
// of it takes no wall time.
func TestReportTimesOut(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tasks, err := dagtest.Stub(report(), map[string]dag.TaskFunc{"fetch": dagtest.Block})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		job, err := dag.Run(t.Context(), tasks, dag.Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := job.Wait()
		if !errors.Is(err, context.DeadlineExceeded) || res.Tasks["fetch"].Attempts != 4 {
			t.Errorf("Wait() = %v after %d attempts; want a timeout after 4", err, res.Tasks["fetch"].Attempts)
		}
		// 4 timeouts of 10 s, and 3 delays of the default backoff: 100 ms,
		// 200 ms and 400 ms, each ±50%.
		if d := time.Since(start); d < 40*time.Second+350*time.Millisecond || d > 40*time.Second+1050*time.Millisecond {
			t.Errorf("the job took %v of fake time; want 40s plus the backoff delays", d)
		}
		if res.Tasks["render"].State != dag.Canceled {
			t.Errorf("render is %v; want canceled", res.Tasks["render"].State)
		}
	})
}
