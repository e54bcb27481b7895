// Package storetest checks that a [dag.Store] keeps the promises of its
// interface, as [testing/fstest] does for file systems. A store on Redis or
// a database runs the same checks as [dag.FileStore]:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) dag.Store {
//			return newStore(t) // an empty store, cleaned up by t.Cleanup
//		})
//	}
//
// Run saves outputs of type time.Time, map[string]int and a struct of this
// package, so importing storetest registers those types with
// [encoding/gob.Register], as a program saving them in a [dag.FileStore]
// must.
package storetest

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dagrun/dag"
)

// point is a struct saved in outputs, to check that a store keeps the
// types of values it knows nothing about.
type point struct {
	X, Y  int
	Label string
}

func init() {
	gob.Register(point{})
	gob.Register(time.Time{})
	gob.Register(map[string]int{})
}

// Run checks the store that open returns, in subtests that run in
// parallel: the promises of each method of [dag.Store], and that
// [dag.Run] with the store as Options.Checkpoint resumes a failed job and
// clears the checkpoint of a completed one. open is called once per subtest and must return a store that
// the subtest may use alone; stores may share their data (one database for
// all), since each subtest uses job names of its own and clears them
// first. If the store is a [dag.Locker], Run checks its locking too.
func Run(t *testing.T, open func(t *testing.T) dag.Store) {
	t.Helper()
	checks := []struct {
		name string
		f    func(t *testing.T, s dag.Store, job func(string) string)
	}{
		{"LoadUnknown", testLoadUnknown},
		{"RoundTrip", testRoundTrip},
		{"OutputNil", testOutputNil},
		{"LaterSaveReplaces", testLaterSaveReplaces},
		{"Clear", testClear},
		{"JobsSeparate", testJobsSeparate},
		{"ConcurrentSaves", testConcurrentSaves},
		{"NotSerializable", testNotSerializable},
		{"CanceledContext", testCanceledContext},
		{"Run", testRun},
		{"Locker/Exclusive", testLockExclusive},
		{"Locker/Race", testLockRace},
		{"Locker/StoreWhileLocked", testStoreWhileLocked},
		{"Locker/CanceledContext", testLockCanceled},
		{"Locker/Run", testLockRun},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if strings.HasPrefix(c.name, "Locker/") {
				if _, ok := s.(dag.Locker); !ok {
					t.Skip("the store is not a dag.Locker")
				}
			}
			// Job names of this subtest only, cleared first: a store whose
			// data outlives a run must not see the last run's.
			var mu sync.Mutex
			seen := make(map[string]bool)
			job := func(name string) string {
				j := "storetest/" + t.Name() + "/" + name
				mu.Lock()
				defer mu.Unlock()
				if !seen[j] {
					seen[j] = true
					if err := s.Clear(context.Background(), j); err != nil {
						t.Fatalf("Clear(%q) = %v; want nil", j, err)
					}
				}
				return j
			}
			c.f(t, s, job)
		})
	}
}

var ctx = context.Background()

func load(t *testing.T, s dag.Store, job string) map[string]dag.TaskResult {
	t.Helper()
	r, err := s.Load(ctx, job)
	if err != nil {
		t.Fatalf("Load(%q) = %v; want a checkpoint", job, err)
	}
	if r == nil {
		t.Fatalf("Load(%q) = nil, nil; want a *Result", job)
	}
	if r.Context != nil {
		t.Errorf("Load(%q): Result.Context = %v; want nil", job, r.Context)
	}
	return r.Tasks
}

func save(t *testing.T, s dag.Store, job, task string, r dag.TaskResult) {
	t.Helper()
	if err := s.Save(ctx, job, task, r); err != nil {
		t.Fatalf("Save(%q, %q) = %v; want nil", job, task, err)
	}
}

func wantNoCheckpoint(t *testing.T, s dag.Store, job string) {
	t.Helper()
	r, err := s.Load(ctx, job)
	if !errors.Is(err, dag.ErrNoCheckpoint) {
		t.Errorf("Load(%q) = %v, %v; want an error matching ErrNoCheckpoint", job, r, err)
	}
}

// diff describes how got differs from want, field by field: "" if it does
// not. Times compare with time.Equal, errors by message, and output values
// by type and value.
func diff(want, got dag.TaskResult) string {
	var d []string
	add := func(field string, w, g any) {
		d = append(d, fmt.Sprintf("%s = %#v; want %#v", field, g, w))
	}
	if got.State != want.State {
		add("State", want.State, got.State)
	}
	if got.Attempts != want.Attempts {
		add("Attempts", want.Attempts, got.Attempts)
	}
	if got.Abandoned != want.Abandoned {
		add("Abandoned", want.Abandoned, got.Abandoned)
	}
	if got.Restored != want.Restored {
		add("Restored", want.Restored, got.Restored)
	}
	if !got.Started.Equal(want.Started) {
		add("Started", want.Started, got.Started)
	}
	if !got.Finished.Equal(want.Finished) {
		add("Finished", want.Finished, got.Finished)
	}
	switch {
	case (got.Err == nil) != (want.Err == nil):
		add("Err", want.Err, got.Err)
	case got.Err != nil && got.Err.Error() != want.Err.Error():
		add("Err.Error()", want.Err.Error(), got.Err.Error())
	}
	if (got.Output == nil) != (want.Output == nil) {
		add("Output", want.Output, got.Output)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range []map[string]any{want.Output, got.Output} {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	})
	for _, k := range keys {
		w, wok := want.Output[k]
		g, gok := got.Output[k]
		field := fmt.Sprintf("Output[%q]", k)
		switch {
		case !wok:
			add(field, "nothing", g)
		case !gok:
			add(field, w, "nothing")
		case reflect.TypeOf(g) != reflect.TypeOf(w):
			d = append(d, fmt.Sprintf("%s has type %T; want %T", field, g, w))
		case !sameValue(w, g):
			add(field, w, g)
		}
	}
	return strings.Join(d, "\n")
}

func sameValue(w, g any) bool {
	if wt, ok := w.(time.Time); ok {
		return wt.Equal(g.(time.Time))
	}
	return reflect.DeepEqual(w, g)
}

func wantTasks(t *testing.T, job string, got, want map[string]dag.TaskResult) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("Load(%q): task %q missing", job, name)
			continue
		}
		if d := diff(w, g); d != "" {
			t.Errorf("Load(%q): task %q:\n%s", job, name, d)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("Load(%q): task %q was not saved (or was cleared)", job, name)
		}
	}
}

func testLoadUnknown(t *testing.T, s dag.Store, job func(string) string) {
	wantNoCheckpoint(t, s, job("never-saved"))
}

func testRoundTrip(t *testing.T, s dag.Store, job func(string) string) {
	j := job("round-trip")
	now := time.Now() // with a monotonic reading, in time.Local
	zone := time.FixedZone("UTC+05:30", 5*3600+1800)
	want := map[string]dag.TaskResult{
		"completed": {
			State: dag.Completed, Attempts: 2, Abandoned: 1,
			Started: now, Finished: now.Add(1500 * time.Millisecond),
			Output: map[string]any{
				"int":     42,
				"int64":   int64(-7),
				"uint8":   uint8(200),
				"float64": 2.5,
				"string":  "héllo",
				"bool":    true,
				"bytes":   []byte{0, 1, 2},
				"ints":    []int{3, 1, 2},
				"strings": []string{"a", "b"},
				"time":    time.Date(2024, 2, 29, 23, 59, 59, 123456789, zone),
				"map":     map[string]int{"x": 1, "y": 2},
				"struct":  point{X: 1, Y: -2, Label: "p"},
				"nil":     nil,
			},
		},
		"failed": {
			State: dag.Failed, Attempts: 3, Err: errors.New("boom: it broke"),
			Started: now.In(zone), Finished: now.Add(time.Hour).UTC(),
		},
		"restored": {
			State: dag.Completed, Attempts: 1, Restored: true,
			Started: time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC), Finished: time.Date(2000, 1, 1, 1, 0, 0, 0, zone),
			Output: map[string]any{"v": "kept"},
		},
		"skipped": {State: dag.Skipped, Err: errors.New("no data today")}, // zero times
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	}) {
		save(t, s, j, name, want[name])
	}
	wantTasks(t, j, load(t, s, j), want)
}

func testOutputNil(t *testing.T, s dag.Store, job func(string) string) {
	j := job("output-nil")
	save(t, s, j, "nil", dag.TaskResult{State: dag.Failed, Attempts: 1})
	save(t, s, j, "empty", dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{}})
	got := load(t, s, j)
	if o := got["nil"].Output; o != nil {
		t.Errorf("Load(%q): task %q: Output = %#v; want nil, as saved", j, "nil", o)
	}
	if o := got["empty"].Output; len(o) != 0 {
		t.Errorf("Load(%q): task %q: Output = %#v; want it empty, as saved", j, "empty", o)
	}
}

func testLaterSaveReplaces(t *testing.T, s dag.Store, job func(string) string) {
	j := job("replace")
	t0 := time.Now()
	save(t, s, j, "t", dag.TaskResult{State: dag.Failed, Attempts: 1, Err: errors.New("first"), Started: t0, Finished: t0})
	save(t, s, j, "other", dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"o": 1}})
	second := dag.TaskResult{State: dag.Completed, Attempts: 2, Started: t0, Finished: t0.Add(time.Second), Output: map[string]any{"v": 2}}
	save(t, s, j, "t", second)
	wantTasks(t, j, load(t, s, j), map[string]dag.TaskResult{
		"t":     second,
		"other": {State: dag.Completed, Attempts: 1, Output: map[string]any{"o": 1}},
	})
}

func testClear(t *testing.T, s dag.Store, job func(string) string) {
	j := job("clear")
	r := dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"v": 1}}
	save(t, s, j, "a", r)
	save(t, s, j, "b", r)
	if err := s.Clear(ctx, j); err != nil {
		t.Fatalf("Clear(%q) = %v; want nil", j, err)
	}
	wantNoCheckpoint(t, s, j)
	if err := s.Clear(ctx, j); err != nil {
		t.Errorf("Clear(%q) of a cleared job = %v; want nil", j, err)
	}
	unknown := job("clear-unknown")
	if err := s.Clear(ctx, unknown); err != nil {
		t.Errorf("Clear(%q) of a job never saved = %v; want nil", unknown, err)
	}
	// Saves after Clear start a new checkpoint: the cleared tasks stay gone.
	save(t, s, j, "c", r)
	wantTasks(t, j, load(t, s, j), map[string]dag.TaskResult{"c": r})
}

func testJobsSeparate(t *testing.T, s dag.Store, job func(string) string) {
	names := []string{
		"etl/daily", "etl_daily", "ETL/daily", "etl/daily ", "../x", "x", "./x", "a/../b", "b",
		"with space", "tab\there", "日本語のジョブ", "emoji 🎉", "nul\x00byte", "C:\\jobs\\x", "CON",
		strings.Repeat("long", 1000), strings.Repeat("long", 1000) + "!",
	}
	jobs := make([]string, len(names))
	for i, n := range names {
		jobs[i] = job(n)
		save(t, s, jobs[i], "t", dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"job": jobs[i]}})
		save(t, s, jobs[i], "t"+fmt.Sprint(i), dag.TaskResult{State: dag.Completed, Attempts: 1})
	}
	check := func(skip int) {
		t.Helper()
		for i, j := range jobs {
			if i == skip {
				wantNoCheckpoint(t, s, j)
				continue
			}
			wantTasks(t, j, load(t, s, j), map[string]dag.TaskResult{
				"t":                 {State: dag.Completed, Attempts: 1, Output: map[string]any{"job": j}},
				"t" + fmt.Sprint(i): {State: dag.Completed, Attempts: 1},
			})
		}
	}
	check(-1)
	if err := s.Clear(ctx, jobs[0]); err != nil {
		t.Fatalf("Clear(%q) = %v; want nil", jobs[0], err)
	}
	check(0)
}

func testConcurrentSaves(t *testing.T, s dag.Store, job func(string) string) {
	a, b := job("concurrent-a"), job("concurrent-b")
	const savers, each = 16, 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*savers*each+savers)
	for g := range savers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				task := fmt.Sprintf("t%d-%d", g, i)
				r := dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"n": g*each + i}}
				for _, j := range []string{a, b} {
					if err := s.Save(ctx, j, task, r); err != nil {
						errs <- fmt.Errorf("Save(%q, %q) = %v; want nil", j, task, err)
					}
				}
			}
			// Loads while others save see a checkpoint or none, nothing else.
			if _, err := s.Load(ctx, a); err != nil && !errors.Is(err, dag.ErrNoCheckpoint) {
				errs <- fmt.Errorf("Load(%q) while saving = %v", a, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := make(map[string]dag.TaskResult)
	for g := range savers {
		for i := range each {
			want[fmt.Sprintf("t%d-%d", g, i)] = dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"n": g*each + i}}
		}
	}
	wantTasks(t, a, load(t, s, a), want)
	wantTasks(t, b, load(t, s, b), want)
}

func testNotSerializable(t *testing.T, s dag.Store, job func(string) string) {
	j := job("not-serializable")
	ok := dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"v": 1}}
	save(t, s, j, "ok", ok)
	for name, v := range map[string]any{"func": func() {}, "chan": make(chan int)} {
		err := s.Save(ctx, j, name, dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"fine": 1, "bad": v}})
		if !errors.Is(err, dag.ErrNotSerializable) {
			t.Errorf("Save of a %s value = %v; want an error matching ErrNotSerializable", name, err)
		}
	}
	wantTasks(t, j, load(t, s, j), map[string]dag.TaskResult{"ok": ok})
}

func testCanceledContext(t *testing.T, s dag.Store, job func(string) string) {
	j := job("canceled")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	r := dag.TaskResult{State: dag.Completed, Attempts: 1}
	err := s.Save(canceled, j, "t", r)
	switch {
	case err == nil:
		wantTasks(t, j, load(t, s, j), map[string]dag.TaskResult{"t": r})
	case errors.Is(err, context.Canceled):
		wantNoCheckpoint(t, s, j)
	default:
		t.Errorf("Save with a canceled context = %v; want nil or an error matching context.Canceled", err)
	}
	save(t, s, j, "u", r)
	if _, err := s.Load(canceled, j); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a canceled context = %v; want a checkpoint or an error matching context.Canceled", err)
	}
	if err := s.Clear(canceled, j); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Clear with a canceled context = %v; want nil or an error matching context.Canceled", err)
	}
}

func lock(t *testing.T, s dag.Store, job string) func() error {
	t.Helper()
	unlock, err := s.(dag.Locker).Lock(ctx, job)
	if err != nil {
		t.Fatalf("Lock(%q) = %v; want nil", job, err)
	}
	if unlock == nil {
		t.Fatalf("Lock(%q) returned a nil unlock", job)
	}
	return unlock
}

func unlockOK(t *testing.T, job string, unlock func() error) {
	t.Helper()
	if err := unlock(); err != nil {
		t.Errorf("unlock of %q = %v; want nil", job, err)
	}
}

func wantLocked(t *testing.T, s dag.Store, job string) {
	t.Helper()
	unlock, err := s.(dag.Locker).Lock(ctx, job)
	if !errors.Is(err, dag.ErrLocked) {
		t.Errorf("second Lock(%q) = %v; want an error matching ErrLocked", job, err)
		if err == nil {
			unlock()
		}
	}
}

func testLockExclusive(t *testing.T, s dag.Store, job func(string) string) {
	a, b := job("a"), job("b")
	unlockA := lock(t, s, a)
	wantLocked(t, s, a)
	unlockB := lock(t, s, b) // another job is not locked
	unlockOK(t, a, unlockA)
	unlockA2 := lock(t, s, a) // free again
	wantLocked(t, s, a)
	unlockA() // a second call must not release the lock taken since
	wantLocked(t, s, a)
	unlockOK(t, a, unlockA2)
	unlockOK(t, b, unlockB)
	unlockOK(t, b, lock(t, s, b))
}

func testLockRace(t *testing.T, s dag.Store, job func(string) string) {
	j := job("race")
	const lockers = 16
	var wg sync.WaitGroup
	unlocks := make(chan func() error, lockers)
	errs := make(chan error, lockers)
	for range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := s.(dag.Locker).Lock(ctx, j)
			if err != nil {
				errs <- err
				return
			}
			unlocks <- unlock
		}()
	}
	wg.Wait()
	close(unlocks)
	close(errs)
	if n := len(unlocks); n != 1 {
		t.Errorf("%d concurrent Locks of one job succeeded; want exactly 1", n)
	}
	for err := range errs {
		if !errors.Is(err, dag.ErrLocked) {
			t.Errorf("concurrent Lock = %v; want an error matching ErrLocked", err)
		}
	}
	for unlock := range unlocks {
		unlockOK(t, j, unlock)
	}
}

func testStoreWhileLocked(t *testing.T, s dag.Store, job func(string) string) {
	j := job("locked")
	r := dag.TaskResult{State: dag.Completed, Attempts: 1, Output: map[string]any{"v": 1}}
	save(t, s, j, "before", r)
	unlock := lock(t, s, j)
	// The owner saves, loads and clears while it holds the lock; Load
	// takes no lock, so anyone may call it.
	save(t, s, j, "during", r)
	wantTasks(t, j, load(t, s, j), map[string]dag.TaskResult{"before": r, "during": r})
	if err := s.Clear(ctx, j); err != nil {
		t.Errorf("Clear(%q) while locked = %v; want nil", j, err)
	}
	wantNoCheckpoint(t, s, j)
	unlockOK(t, j, unlock)
}

func testLockCanceled(t *testing.T, s dag.Store, job func(string) string) {
	j := job("canceled")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	unlock, err := s.(dag.Locker).Lock(canceled, j)
	switch {
	case err == nil:
		unlockOK(t, j, unlock)
	case !errors.Is(err, context.Canceled):
		t.Errorf("Lock with a canceled context = %v; want nil or an error matching context.Canceled", err)
	}
	unlockOK(t, j, lock(t, s, j)) // a failed Lock left nothing held
}

// testRun runs a job whose last step fails, then runs it again: the
// second Run restores the steps that completed, with their outputs, runs
// only the last one, and leaves no checkpoint.
func testRun(t *testing.T, s dag.Store, job func(string) string) {
	j := job("run")
	var ran []string
	var mu sync.Mutex
	fail := true
	step := func(name string, deps ...string) dag.Task {
		return dag.Task{Name: name, DependsOn: deps, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			mu.Lock()
			ran = append(ran, name)
			mu.Unlock()
			if name == "c" && fail {
				return nil, errors.New("c fails the first time")
			}
			n := 1
			for _, d := range deps {
				v, err := dag.Lookup[int](in, d)
				if err != nil {
					return nil, err
				}
				n += v
			}
			return map[string]any{name: n, name + "-at": time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}, nil
		}}
	}
	tasks := []dag.Task{step("a"), step("b", "a"), step("c", "b")}
	run := func() (dag.Result, error) {
		t.Helper()
		jb, err := dag.Run(ctx, tasks, dag.Options{Name: j, Checkpoint: s, MaxParallel: 1})
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		return jb.Wait()
	}
	if _, err := run(); err == nil {
		t.Fatal("first Run completed; want it to fail at c")
	}
	saved := load(t, s, j)
	for _, name := range []string{"a", "b"} {
		if r, ok := saved[name]; !ok || r.State != dag.Completed {
			t.Errorf("checkpoint after the failed Run: task %q = %+v, %v; want it Completed", name, r, ok)
		}
	}
	fail = false
	ran = nil
	res, err := run()
	if err != nil {
		t.Fatalf("second Run: Wait = %v; want nil", err)
	}
	if !slices.Equal(ran, []string{"c"}) {
		t.Errorf("second Run ran %q; want only %q", ran, "c")
	}
	for name, restored := range map[string]bool{"a": true, "b": true, "c": false} {
		if res.Tasks[name].Restored != restored {
			t.Errorf("second Run: task %q Restored = %v; want %v", name, res.Tasks[name].Restored, restored)
		}
	}
	if got := res.Context["c"]; got != 3 {
		t.Errorf("second Run: c = %v; want 3, from the restored output of b", got)
	}
	wantNoCheckpoint(t, s, j)
}

// testLockRun checks that Run fails with ErrLocked while the job is
// locked, and runs once it is unlocked.
func testLockRun(t *testing.T, s dag.Store, job func(string) string) {
	j := job("run-locked")
	tasks := []dag.Task{{Name: "t", Func: func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }}}
	unlock := lock(t, s, j)
	jb, err := dag.Run(ctx, tasks, dag.Options{Name: j, Checkpoint: s})
	if err == nil {
		_, err = jb.Wait()
	}
	if !errors.Is(err, dag.ErrLocked) {
		t.Errorf("Run while the job is locked = %v; want an error matching ErrLocked", err)
	}
	unlockOK(t, j, unlock)
	jb, err = dag.Run(ctx, tasks, dag.Options{Name: j, Checkpoint: s})
	if err != nil {
		t.Fatalf("Run after unlock = %v", err)
	}
	if _, err := jb.Wait(); err != nil {
		t.Fatalf("Run after unlock: Wait = %v", err)
	}
	// Wait returned: the lock is released.
	unlockOK(t, j, lock(t, s, j))
}
