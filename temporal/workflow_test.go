package dagtemporal_test

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	dagtemporal "github.com/dagrun/dag/temporal"
	smoothiejob "github.com/dagrun/dag/temporal/example/smoothie"
	"github.com/google/go-cmp/cmp"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
)

// smoothie is the core's smoothie job (example_test.go of package dag),
// as the example worker holds it.
func smoothie() []dag.Task { return smoothiejob.Tasks() }

var kitchen = map[string]any{
	"fruit":   []string{"banana", "mango"},
	"liquids": []string{"coconut-milk", "water"},
}

// env makes a test workflow environment with the tasks registered as name.
func env(t *testing.T, name string, tasks []dag.Task) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	e := s.NewTestWorkflowEnvironment()
	e.SetTestTimeout(time.Minute)
	// The race detector on a busy two-core machine can hold a workflow
	// task past the default deadlock detection (1 s) of the 200-task job.
	e.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: time.Minute})
	// A short HeartbeatTimeout: activities then learn of a cancellation
	// within a third of a second.
	w := &dagtemporal.Workflow{Name: name, Tasks: tasks, HeartbeatTimeout: time.Second}
	if err := w.Register(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// execute runs a job of the workflow registered in e.
func execute(t *testing.T, e *testsuite.TestWorkflowEnvironment, name string, opts dag.Options) (dag.Result, error) {
	t.Helper()
	in, err := dagtemporal.NewInput(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.ExecuteWorkflow(name, in)
	if !e.IsWorkflowCompleted() {
		t.Fatal("the workflow did not complete")
	}
	var raw converter.RawValue
	err = e.GetWorkflowError()
	if err == nil {
		if gerr := e.GetWorkflowResult(&raw); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return dagtemporal.Outcome(raw, err)
}

// runCore runs the tasks with dag.Run.
func runCore(t *testing.T, tasks []dag.Task, opts dag.Options) (dag.Result, error) {
	t.Helper()
	job, err := dag.Run(context.Background(), tasks, opts)
	if err != nil {
		t.Fatal(err)
	}
	return job.Wait()
}

func TestSmoothie(t *testing.T) {
	t.Parallel()
	opts := dag.Options{Name: "smoothie", Context: kitchen}
	want, err := runCore(t, smoothie(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := execute(t, env(t, "smoothie", smoothie()), "smoothie", opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Context, got.Context); diff != "" {
		t.Errorf("Result.Context (-dag.Run +temporal):\n%s", diff)
	}
	if got.State != dag.Completed {
		t.Errorf("State = %v; want completed", got.State)
	}
	for name, w := range want.Tasks {
		g := got.Tasks[name]
		if g.State != w.State || g.Attempts != w.Attempts || !cmp.Equal(g.Output, w.Output) {
			t.Errorf("task %q = %v, %d attempts, output %v; want %v, %d, %v", name, g.State, g.Attempts, g.Output, w.State, w.Attempts, w.Output)
		}
	}
	if len(got.Tasks) != len(want.Tasks) {
		t.Errorf("%d tasks; want %d", len(got.Tasks), len(want.Tasks))
	}
}

// randomDAG makes n tasks, each depending on up to four earlier ones. Each
// writes its own key, a value made from every value it sees (so a task
// that saw the wrong context writes a wrong value), of a type that JSON
// would not keep: ints, []int, a map and a struct. Tasks along one chain
// also write the shared key "chain", which the last of them must win.
func randomDAG(seed uint64, n int) []dag.Task {
	rng := rand.New(rand.NewPCG(seed, 1))
	tasks := make([]dag.Task, n)
	prevChain := -1
	for i := range n {
		var deps []string
		for range rng.IntN(5) {
			if i > 0 {
				deps = append(deps, fmt.Sprintf("t%03d", rng.IntN(i)))
			}
		}
		onChain := rng.IntN(10) == 0
		if onChain && prevChain >= 0 {
			deps = append(deps, fmt.Sprintf("t%03d", prevChain))
		}
		if onChain {
			prevChain = i
		}
		name := fmt.Sprintf("t%03d", i)
		tasks[i] = dag.Task{Name: name, DependsOn: deps, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			sum := i
			for k, v := range in.All() {
				sum += len(k)
				switch v := v.(type) {
				case int:
					sum += v % 1000
				case []int:
					sum += len(v)
				case point:
					sum += v.X
				}
			}
			out := map[string]any{name: sum}
			switch i % 4 {
			case 1:
				out[name+"-list"] = []int{sum, i}
			case 2:
				out[name+"-map"] = map[string]int{"sum": sum}
			case 3:
				out[name+"-point"] = point{X: sum, Y: "y"}
			}
			if onChain {
				out["chain"] = name
			}
			return out, nil
		}}
	}
	return tasks
}

type point struct {
	X int
	Y string
}

// Types of values that travel in interfaces must be registered with gob,
// in the workers and in the clients.
func init() {
	gob.Register(point{})
	gob.Register(map[string]int{})
}

func TestRandomDAG(t *testing.T) {
	t.Parallel()
	tasks := randomDAG(42, 200)
	opts := dag.Options{Name: "random", Context: map[string]any{"seed": 42}, MaxParallel: 8}
	want, err := runCore(t, tasks, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := execute(t, env(t, "random", tasks), "random", opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Context, got.Context); diff != "" {
		t.Errorf("Result.Context (-dag.Run +temporal):\n%s", diff)
	}
	for name, w := range want.Tasks {
		if diff := cmp.Diff(w.Output, got.Tasks[name].Output); diff != "" {
			t.Errorf("output of %q (-dag.Run +temporal):\n%s", name, diff)
		}
	}
}

func TestRetriesThenFailure(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	errFlaky := errors.New("flaky")
	tasks := []dag.Task{
		{Name: "flaky", MaxRetries: 2, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			calls.Add(1)
			return nil, errFlaky
		}},
		{Name: "after", DependsOn: []string{"flaky"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, nil
		}},
	}
	res, err := execute(t, env(t, "retries", tasks), "retries", dag.Options{Name: "retries"})
	var te *dag.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("Wait() = %v; want a *dag.TaskError", err)
	}
	if te.Task != "flaky" || te.Attempts != 3 || te.Job != "retries" {
		t.Errorf("TaskError = {Job %q, Task %q, Attempts %d}; want retries, flaky, 3", te.Job, te.Task, te.Attempts)
	}
	if !strings.Contains(err.Error(), `task "flaky"`) || !strings.Contains(err.Error(), "flaky") {
		t.Errorf("error %q does not name the task", err)
	}
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != dagtemporal.ErrorTypeTask {
		t.Errorf("the Temporal error is not an ApplicationError of type %q: %v", dagtemporal.ErrorTypeTask, err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("Func ran %d times; want 3", n)
	}
	if res.State != dag.Failed || res.Tasks["flaky"].State != dag.Failed || res.Tasks["after"].State != dag.Canceled {
		t.Errorf("states: job %v, flaky %v, after %v; want failed, failed, canceled", res.State, res.Tasks["flaky"].State, res.Tasks["after"].State)
	}
}

func TestRetriesThenSuccessAndPermanent(t *testing.T) {
	t.Parallel()
	var flaky, perm atomic.Int32
	tasks := []dag.Task{
		{Name: "flaky", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if flaky.Add(1) < 3 {
				return nil, errors.New("not yet")
			}
			return map[string]any{"flaky": true}, nil
		}},
		{Name: "permanent", ContinueOnFailure: true, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			perm.Add(1)
			return nil, backoff.Permanent(context.DeadlineExceeded)
		}},
	}
	res, err := execute(t, env(t, "perm", tasks), "perm", dag.Options{MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Tasks["flaky"]; got.State != dag.Completed || got.Attempts != 3 {
		t.Errorf("flaky: %v after %d attempts; want completed after 3", got.State, got.Attempts)
	}
	got := res.Tasks["permanent"]
	if got.State != dag.Failed || got.Attempts != 1 || perm.Load() != 1 {
		t.Errorf("permanent: %v after %d attempts (%d calls); want failed after 1", got.State, got.Attempts, perm.Load())
	}
	if !errors.Is(got.Err, context.DeadlineExceeded) {
		t.Errorf("permanent's Err = %v; want one matching context.DeadlineExceeded", got.Err)
	}
}

func TestContinueOnFailure(t *testing.T) {
	t.Parallel()
	tasks := smoothie()
	opts := dag.Options{Context: map[string]any{"fruit": []string{"banana", "mango"}}}
	// Without liquids blend still works; garnish is made to fail.
	tasks[3].Func = func(ctx context.Context, in dag.Values) (map[string]any, error) {
		return nil, errors.New("out of sugar")
	}
	tasks = append(tasks, dag.Task{Name: "serve", DependsOn: []string{"garnish"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
		s, _ := dag.Lookup[string](in, "smoothie")
		return map[string]any{"served": s}, nil
	}})
	want, err := runCore(t, tasks, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := execute(t, env(t, "cont", tasks), "cont", opts)
	if err != nil {
		t.Fatalf("Wait() = %v; want nil: garnish has ContinueOnFailure", err)
	}
	if diff := cmp.Diff(want.Context, got.Context); diff != "" {
		t.Errorf("Result.Context (-dag.Run +temporal):\n%s", diff)
	}
	g := got.Tasks["garnish"]
	if g.State != dag.Failed || g.Err == nil || g.Err.Error() != "out of sugar" {
		t.Errorf("garnish: %v, %v; want failed, out of sugar", g.State, g.Err)
	}
	if got.Tasks["serve"].State != dag.Completed {
		t.Errorf("serve: %v; want completed", got.Tasks["serve"].State)
	}
}

func TestConflict(t *testing.T) {
	t.Parallel()
	write := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		return map[string]any{"k": 1}, nil
	}
	tasks := []dag.Task{{Name: "a", Func: write}, {Name: "b", Func: write}}
	_, err := execute(t, env(t, "conflict", tasks), "conflict", dag.Options{Name: "conflict"})
	if !errors.Is(err, dag.ErrConflict) {
		t.Fatalf("Wait() = %v; want an error matching dag.ErrConflict", err)
	}
	for _, want := range []string{`"a"`, `"b"`, `key "k"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != dagtemporal.ErrorTypeConflict {
		t.Errorf("the Temporal error is not an ApplicationError of type %q: %v", dagtemporal.ErrorTypeConflict, err)
	}
	if !errors.Is(dagtemporal.ConvertError(app), dag.ErrConflict) {
		t.Errorf("ConvertError(%v) does not match dag.ErrConflict", app)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	var e *testsuite.TestWorkflowEnvironment
	var once sync.Once
	blockEnded := make(chan struct{})
	tasks := []dag.Task{
		{Name: "first", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"first": 1}, nil
		}},
		{Name: "block", DependsOn: []string{"first"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			defer close(blockEnded)
			once.Do(e.CancelWorkflow)
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		{Name: "after", DependsOn: []string{"block"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, nil
		}},
	}
	e = env(t, "cancel", tasks)
	res, err := execute(t, e, "cancel", dag.Options{})
	<-blockEnded // the Func saw its context cancelled
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait() = %v; want an error matching context.Canceled", err)
	}
	want := map[string]dag.State{"first": dag.Completed, "block": dag.Canceled, "after": dag.Canceled}
	got := map[string]dag.State{}
	for name, r := range res.Tasks {
		got[name] = r.State
	}
	if diff := cmp.Diff(want, got); diff != "" || res.State != dag.Canceled {
		t.Errorf("job %v; task states (-want +got):\n%s", res.State, diff)
	}
	if diff := cmp.Diff(map[string]any{"first": 1}, res.Context); diff != "" {
		t.Errorf("Context (-want +got):\n%s", diff)
	}
}

// TestMaxParallel holds every activity until the test releases it, one at a
// time, and only when as many run as the bound allows: a job that started
// more would show them running before any is released.
func TestMaxParallel(t *testing.T) {
	t.Parallel()
	const limit, total = 3, 14
	started := make(chan struct{}, total)
	release := make(chan struct{})
	var active, most atomic.Int32
	hold := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		started <- struct{}{}
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var tasks []dag.Task
	for i := range 9 {
		tasks = append(tasks, dag.Task{Name: fmt.Sprintf("t%d", i), Func: hold})
	}
	var sub []dag.Task
	for i := range 5 {
		sub = append(sub, dag.Task{Name: fmt.Sprintf("s%d", i), Func: hold})
	}
	tasks = append(tasks, dag.Task{Name: "group", Sub: sub})

	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	// The controller releases one activity whenever as many run as the
	// bound allows; the activities themselves count how many run at once.
	var running int
	var wg sync.WaitGroup
	wg.Go(func() {
		timeout := time.NewTimer(time.Until(deadline) - 5*time.Second)
		defer timeout.Stop()
		for left := total; left > 0; {
			if running == min(limit, left) {
				// Let activities that a wrong scheduler started too
				// many of run first, so that they show.
				for range 100 {
					runtime.Gosched()
				}
				release <- struct{}{}
				running--
				left--
				continue
			}
			select {
			case <-started:
				running++
			case <-timeout.C:
				t.Errorf("timed out waiting for activities: %d running, %d left", running, left)
				close(release)
				return
			}
		}
	})
	_, err := execute(t, env(t, "bounded", tasks), "bounded", dag.Options{MaxParallel: limit})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n := most.Load(); n != limit {
		t.Errorf("at most %d activities ran at once; want %d", n, limit)
	}
}

func TestProgressQuery(t *testing.T) {
	t.Parallel()
	var e *testsuite.TestWorkflowEnvironment
	var got dag.Progress
	var states map[string]dag.State
	var qerr error
	tasks := smoothie()
	tasks[2].Func = func(ctx context.Context, in dag.Values) (map[string]any, error) {
		return map[string]any{"smoothie": "x"}, nil
	}
	e = env(t, "progress", tasks)
	// Query when blend's activity starts: the dice tasks have completed.
	e.SetOnActivityStartedListener(func(info *activity.Info, ctx context.Context, args converter.EncodedValues) {
		if !strings.HasSuffix(info.ActivityType.Name, "/blend") {
			return
		}
		v, err := e.QueryWorkflow(dagtemporal.QueryProgress)
		if err == nil {
			err = v.Get(&got)
		}
		if err == nil {
			v, err = e.QueryWorkflow(dagtemporal.QueryStates)
		}
		if err == nil {
			err = v.Get(&states)
		}
		qerr = err
	})
	if _, err := execute(t, e, "progress", dag.Options{Name: "p", Context: kitchen}); err != nil {
		t.Fatal(err)
	}
	if qerr != nil {
		t.Fatal(qerr)
	}
	want := dag.Progress{Job: "p", State: dag.Running, Completed: 2, Running: 1, Pending: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	wantStates := map[string]dag.State{"dice-banana": dag.Completed, "dice-mango": dag.Completed, "blend": dag.Running, "garnish": dag.Pending}
	if diff := cmp.Diff(wantStates, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
}

var _ = maps.Keys[map[string]int]

// TestTaskInfo: a Func run by a worker finds its job, full name and
// attempt in its context, as under dag.Run.
func TestTaskInfo(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []dag.TaskInfo
	record := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		info, ok := dag.TaskInfoFromContext(ctx)
		if !ok {
			return nil, errors.New("no TaskInfo in the activity's context")
		}
		mu.Lock()
		seen = append(seen, info)
		mu.Unlock()
		if info.Attempt == 1 {
			return nil, errors.New("first attempt fails")
		}
		return nil, nil
	}
	tasks := []dag.Task{{Name: "g", Sub: []dag.Task{{Name: "c", MaxRetries: 1, Func: record}}}}
	if _, err := execute(t, env(t, "info", tasks), "info", dag.Options{Name: "info"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[1].Job != "info" || seen[1].Task != "g/c" || seen[1].Attempt != 2 || seen[1].Started.IsZero() {
		t.Errorf("TaskInfo seen: %+v; want job info, task g/c, attempts 1 then 2", seen)
	}
}
