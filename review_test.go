package dag_test

// Tests written in review: each shows a suspected bug. A test that fails on
// the current code is skipped with "BUG: …", its body intact, so that the
// fix can unskip it.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dagrun/dag"
)

// TestReviewRestoredAfterMapKeepsCheckpoint: a task restored from a
// checkpoint because its dependency (a Map, or any Expand) was restored
// must stay restorable in the next run. Run marks it stale in the store
// (staleRecords counts an Expand as never restorable) but the scheduler
// restores it anyway, and never saves it again: the third run runs it
// again although it completed in the first.
func TestReviewRestoredAfterMapKeepsCheckpoint(t *testing.T) {
	t.Parallel()
	fs, err := dag.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var tRuns atomic.Int32
	m := dag.Map("m", "items", "sq", func(_ context.Context, i int) (int, error) { return i * i, nil })
	tasks := []dag.Task{
		m,
		{Name: "t", DependsOn: []string{"m"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
			tRuns.Add(1)
			return map[string]any{"t": 1}, nil
		}},
		{Name: "f", DependsOn: []string{"t"}, MaxRetries: dag.NoRetries, Func: fail(errBoom)},
	}
	opts := dag.Options{Name: "review-map", Checkpoint: fs, Context: map[string]any{"items": []int{1, 2}}}
	for run := 1; run <= 3; run++ {
		job, err := dag.Run(t.Context(), tasks, opts)
		if err != nil {
			t.Fatal(err)
		}
		res, err := waitJob(t, job)
		if !errors.Is(err, errBoom) {
			t.Fatalf("run %d: Wait() error = %v; want errBoom", run, err)
		}
		if run > 1 && !res.Tasks["t"].Restored {
			t.Errorf("run %d: t was not restored (Tasks[t] = %+v)", run, res.Tasks["t"])
		}
	}
	if n := tRuns.Load(); n != 1 {
		t.Errorf("t ran %d times over three runs; want 1 (it completed in the first)", n)
	}
}

// memStore is an in-memory Store; onSave, if set, runs before each Save
// records.
type memStore struct {
	mu     sync.Mutex
	tasks  map[string]dag.TaskResult
	onSave func(task string)
}

func (m *memStore) Load(_ context.Context, job string) (*dag.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tasks) == 0 {
		return nil, dag.ErrNoCheckpoint
	}
	res := &dag.Result{Tasks: map[string]dag.TaskResult{}}
	for k, v := range m.tasks {
		res.Tasks[k] = v
	}
	return res, nil
}

func (m *memStore) Save(_ context.Context, job, task string, r dag.TaskResult) error {
	if m.onSave != nil {
		m.onSave(task)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tasks == nil {
		m.tasks = map[string]dag.TaskResult{}
	}
	m.tasks[task] = r
	return nil
}

func (m *memStore) Clear(context.Context, string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tasks = nil
	return nil
}

func (m *memStore) state(task string) (dag.State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tr, ok := m.tasks[task]
	return tr.State, ok
}

// TestReviewSlowSaveTimesOutCompletedTask: a Func that returns at once,
// whose Save outlasts the task's Timeout. The attempt's timeout watch is
// still armed while Save runs, so the task fails with DeadlineExceeded
// although Save recorded it Completed: Wait reports the job failed at "a",
// and the next Run restores "a" as Completed.
func TestReviewSlowSaveTimesOutCompletedTask(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// The Save takes far longer than the task's Timeout, in the
		// bubble's fake time: the Func returned in time, so the attempt
		// succeeded and the deadline must no longer apply.
		var saves atomic.Int32
		st := &memStore{onSave: func(task string) { saves.Add(1); time.Sleep(time.Second) }}
		tasks := []dag.Task{{Name: "a", Timeout: time.Millisecond, MaxRetries: dag.NoRetries,
			Func: succeed(map[string]any{"a": 1})}}
		job, err := dag.Run(t.Context(), tasks, dag.Options{Name: "review-slow", Checkpoint: st})
		if err != nil {
			t.Fatal(err)
		}
		res, err := job.Wait()
		if res.Tasks["a"].State != dag.Completed || err != nil || saves.Load() != 1 {
			t.Errorf("a ended %v (Wait: %v) after %d saves; want completed after one save", res.Tasks["a"].State, err, saves.Load())
		}
	})
}

// TestReviewCanceledGroupEventsAfterChildren: docs/composition.md says a
// group that does not run ends its children in the same state, "their
// events come first, then the group's". When the job stops (fail-fast), a
// Pending group's Canceled event comes before its children's.
func TestReviewCanceledGroupEventsAfterChildren(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "bad", MaxRetries: dag.NoRetries, Func: fail(errBoom)},
		{Name: "g", DependsOn: []string{"bad"}, Sub: []dag.Task{{Name: "c", Func: noop}}},
	}
	job, rec := startJob(t, t.Context(), tasks, dag.Options{})
	if _, err := waitJob(t, job); !errors.Is(err, errBoom) {
		t.Fatalf("Wait() error = %v; want errBoom", err)
	}
	g, c := -1, -1
	for i, e := range rec.events(t) {
		switch {
		case e.Task == "g" && e.To == dag.Canceled:
			g = i
		case e.Task == "g/c" && e.To == dag.Canceled:
			c = i
		}
	}
	if g < 0 || c < 0 || c > g {
		t.Errorf("event of g/c Canceled at %d, of g at %d; want g/c's first", c, g)
	}
}

// TestReviewKeepGoingErrorOrder: with KeepGoing, Wait joins one
// *TaskError per failed task in declaration order, an Expand's tasks in
// its place and a group's children in the group's.
func TestReviewKeepGoingErrorOrder(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "x", Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
			return []dag.Task{{Name: "c", MaxRetries: dag.NoRetries, Func: fail(errBoom)}}, nil
		}},
		{Name: "g", Sub: []dag.Task{{Name: "d", MaxRetries: dag.NoRetries, Func: fail(errBang)}}},
		{Name: "y", MaxRetries: dag.NoRetries, Func: fail(errBoom)},
	}
	job, err := dag.Run(t.Context(), tasks, dag.Options{KeepGoing: true, MaxParallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitJob(t, job)
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Wait() error = %v; want a join", err)
	}
	var got []string
	for _, e := range j.Unwrap() {
		var te *dag.TaskError
		if !errors.As(e, &te) {
			t.Fatalf("joined error %v is not a *TaskError", e)
		}
		got = append(got, te.Task)
	}
	want := []string{"x/c", "g/d", "y"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("KeepGoing error names %v; want %v", got, want)
	}
}

// TestReviewCheckpointLockFreeAfterDone: with Options.Logger and a
// FileStore, the lock is released by the time Done is closed (and Wait
// returns): a second Run of the job right after succeeds, on both paths.
func TestReviewCheckpointLockFreeAfterDone(t *testing.T) {
	t.Parallel()
	fs, err := dag.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tasks := []dag.Task{{Name: "a", Func: succeed(map[string]any{"a": 1})}}
	opts := dag.Options{Name: "review-lock", Checkpoint: fs, Logger: logger}
	for _, useDone := range []bool{true, false} {
		job, err := dag.Run(t.Context(), tasks, opts)
		if err != nil {
			t.Fatal(err)
		}
		if useDone {
			<-job.Done()
		} else if _, err := job.Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Load(t.Context(), opts.Name); !errors.Is(err, dag.ErrNoCheckpoint) {
			t.Errorf("useDone=%v: Load after the job completed = %v; want ErrNoCheckpoint", useDone, err)
		}
		job2, err := dag.Run(t.Context(), tasks, opts)
		if err != nil {
			t.Fatalf("useDone=%v: second Run = %v; want the lock free", useDone, err)
		}
		if _, err := waitJob(t, job2); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReviewResumeWithCheckpointSavesRestored: Options.Resume together
// with a Checkpoint. Tasks restored from Options.Resume are never saved
// in the checkpoint; when the job fails again, the next Run (same
// options) resumes from the checkpoint alone, which replaces
// Options.Resume, and runs them again although they completed in the
// first run. Same root cause as
// TestReviewRestoredAfterMapKeepsCheckpoint: a restored task is not
// (re)saved.
func TestReviewResumeWithCheckpointSavesRestored(t *testing.T) {
	t.Parallel()
	var aRuns, bRuns atomic.Int32
	tasks := []dag.Task{
		{Name: "a", Func: func(context.Context, dag.Values) (map[string]any, error) {
			aRuns.Add(1)
			return map[string]any{"a": 1}, nil
		}},
		{Name: "f", DependsOn: []string{"a"}, MaxRetries: dag.NoRetries, Func: fail(errBoom)},
		// b fails in the first run only: the second saves it, so the third
		// finds a checkpoint.
		{Name: "b", MaxRetries: dag.NoRetries, ContinueOnFailure: true, Func: func(context.Context, dag.Values) (map[string]any, error) {
			if bRuns.Add(1) == 1 {
				return nil, errBang
			}
			return map[string]any{"b": 1}, nil
		}},
	}
	job, err := dag.Run(t.Context(), tasks, dag.Options{KeepGoing: true})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := waitJob(t, job)
	st := &memStore{}
	opts := dag.Options{Name: "review-resume", Resume: &first, Checkpoint: st, KeepGoing: true}
	for run := 2; run <= 3; run++ {
		job, err := dag.Run(t.Context(), tasks, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := waitJob(t, job); !errors.Is(err, errBoom) {
			t.Fatalf("run %d: Wait() error = %v; want errBoom", run, err)
		}
	}
	if n := aRuns.Load(); n != 1 {
		t.Errorf("a ran %d times; want 1 (it completed in the first run, and was restored in the second)", n)
	}
}

// TestStorePanicFailsJob: a checkpoint store that panics fails the job
// with an error; it does not take the process down.
func TestStorePanicFailsJob(t *testing.T) {
	t.Parallel()
	st := &memStore{onSave: func(task string) { panic("store bug") }}
	job, err := dag.Run(t.Context(), []dag.Task{{Name: "a", Func: succeed(map[string]any{"a": 1})}}, dag.Options{Name: "panicky", Checkpoint: st})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Wait()
	var pe *dag.PanicError
	if res.State != dag.Failed || !errors.As(err, &pe) || !strings.Contains(err.Error(), "Save panicked") {
		t.Errorf("job %v, Wait() = %v; want Failed with the store's panic", res.State, err)
	}
}
