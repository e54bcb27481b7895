package dag

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// A Store keeps the checkpoint of jobs: the tasks of each job that
// completed, so that the next Run of the job resumes after them (see
// [Options.Checkpoint]). Its methods may be called concurrently, for the
// same job or different ones. Package storetest checks that a Store keeps
// every promise below; [FileStore] is the one dag provides.
//
// A method called with a context that is already done may return an error
// matching the context's error without doing anything.
type Store interface {
	// Load returns the checkpoint of the job, or an error matching
	// ErrNoCheckpoint if nothing is saved for it. The Result holds, in
	// Tasks, every saved TaskResult by task name, as saved: the same
	// State, Attempts, Abandoned, Output and Restored; Started and
	// Finished equal under time.Equal; and, if an Err was saved, an error
	// with the same message (its type and wrapped errors are not kept).
	// Output values keep their Go types, so that [Lookup] finds them.
	// Result.Context is nil. When a task was saved more than once, the
	// last Save wins.
	Load(ctx context.Context, job string) (*Result, error)
	// Save records that task ended with r, durably, before it returns: a
	// crash after Save returns does not lose it. A value in r.Output that
	// the store cannot keep makes Save fail with an error matching
	// ErrNotSerializable, and nothing is saved.
	Save(ctx context.Context, job, task string, r TaskResult) error
	// Clear removes the job's checkpoint. Clearing a job with no
	// checkpoint is not an error.
	Clear(ctx context.Context, job string) error
}

// A Locker is a Store that can make one Run the only owner of a job. When
// Options.Checkpoint implements Locker, Run calls Lock before it loads the
// checkpoint, and unlock before Wait returns; a Run that cannot take the
// lock fails at once with the error, which matches ErrLocked when another
// owner holds it. Two Runs of one checkpointed job, in one process or two,
// would otherwise both save, and both resume from the same checkpoint.
//
// Lock does not wait for the lock: it takes it or returns an error. A lock
// ends when unlock is called or, for a lock held by another process, when
// that process ends, however it ends. Calling unlock more than once is
// harmless. Load, Save and Clear take no lock: a program that calls them
// directly must keep two owners apart itself.
type Locker interface {
	Lock(ctx context.Context, job string) (unlock func() error, err error)
}

// checkpoint is a job's use of its Options.Checkpoint.
type checkpoint struct {
	store  Store
	job    string
	ctx    context.Context // for the store's calls: Run's, without its cancellation
	unlock func() error    // nil if the store does not lock
	resume *Result         // the loaded checkpoint; nil if there was none
	// fromStore says that the run resumes from the store's checkpoint; else
	// from Options.Resume, whose restored tasks the store does not hold.
	fromStore bool
}

// openCheckpoint locks the job in the store, if it can, and loads its
// checkpoint.
func openCheckpoint(ctx context.Context, opts Options) (*checkpoint, error) {
	ck := &checkpoint{store: opts.Checkpoint, job: opts.Name, ctx: context.WithoutCancel(ctx)}
	if l, ok := opts.Checkpoint.(Locker); ok {
		var unlock func() error
		err := recovered("Lock", func() (err error) { unlock, err = l.Lock(ctx, opts.Name); return err })
		if err != nil {
			return nil, wrap(err, "dag: job %s: cannot lock its checkpoint", quote(opts.Name))
		}
		ck.unlock = unlock
	}
	var res *Result
	err := recovered("Load", func() (err error) { res, err = opts.Checkpoint.Load(ctx, opts.Name); return err })
	switch {
	case errors.Is(err, ErrNoCheckpoint):
	case err != nil:
		ck.release()
		return nil, wrap(err, "dag: job %s: cannot load its checkpoint", quote(opts.Name))
	default:
		ck.resume, ck.fromStore = res, true
	}
	if err := checkContext(opts.Context); err != nil {
		ck.release()
		return nil, err
	}
	return ck, nil
}

// save records a completed task in the store.
func (c *checkpoint) save(task string, r TaskResult) error {
	return recovered("Save", func() error { return c.store.Save(c.ctx, c.job, task, r) })
}

// release releases the job's lock, if it holds one.
func (c *checkpoint) release() {
	if c.unlock != nil {
		_ = c.unlock()
		c.unlock = nil
	}
}

// finish clears the checkpoint of a job that completed, releases the
// lock, then closes done: Wait returns after both. If the checkpoint cannot
// be cleared, *werr (Wait's error) says so: the job completed, but its next
// Run would restore every task instead of running them.
func (c *checkpoint) finish(completed bool, werr *error, done chan struct{}) {
	defer close(done)
	if completed {
		if err := recovered("Clear", func() error { return c.store.Clear(c.ctx, c.job) }); err != nil {
			*werr = wrap(err, "dag: job %s completed, but its checkpoint could not be cleared, and its next Run would restore every task; clear it", quote(c.job))
		}
	}
	c.release()
}

// checkContext reports a value of the initial context that a checkpoint
// could not hold, before anything runs.
func checkContext(m map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := checkSerializable("", k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

// staleRecords returns the names of the tasks that the loaded checkpoint
// holds as Completed but that this run will not restore, among the tasks of
// graph g: g is the job's own graph (reusable true), or that of the tasks
// an Expand returned (reusable when the Expand's own dependencies were
// restored). Such a record was computed from inputs that are about to
// change: if it stayed, a crash after one of its dependencies saved a new
// result would let the next run restore it. It also returns the tasks that
// will be restored, and whether all of g will be. An Expand is counted as
// restorable when its dependencies are: whether its tasks are is known only
// when it runs, and checked then (see downstream).
func staleRecords(g *graph, saved map[string]*TaskResult, reusable bool) (stale, restored []string, all bool) {
	n := len(g.nodes)
	// Kahn's algorithm gives an order in which dependencies come first.
	pending := make([]int32, n)
	order := make([]int32, 0, n)
	for i := range int32(n) {
		if pending[i] = g.depOff[i+1] - g.depOff[i]; pending[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, o := range g.outsOf(order[k]) {
			if pending[o]--; pending[o] == 0 {
				order = append(order, o)
			}
		}
	}
	restorable := make([]bool, n)
	var lostScopes []string // Expands whose tasks cannot be restored
	all = reusable
	for _, i := range order {
		ok := reusable
		for _, d := range g.depsOf(i) {
			ok = ok && restorable[d]
		}
		name := g.names[i]
		switch g.nodes[i].kind {
		case kindFunc:
			tr, isSaved := saved[name]
			restorable[i] = ok && isSaved && tr.State == Completed
			switch {
			case restorable[i]:
				restored = append(restored, name)
			case isSaved && tr.State == Completed:
				stale = append(stale, name)
			}
			all = all && restorable[i]
		case kindExpand:
			restorable[i] = ok
			if !ok {
				lostScopes = append(lostScopes, name+"/")
			}
		default: // a group's open or close node passes its dependencies on
			restorable[i] = ok
		}
	}
	stale = append(stale, underScopes(saved, lostScopes)...)
	slices.Sort(stale)
	return stale, restored, all
}

// underScopes returns the Completed records of saved whose names start
// with one of prefixes: the tasks of Expands that will not be restored.
func underScopes(saved map[string]*TaskResult, prefixes []string) []string {
	if len(prefixes) == 0 {
		return nil
	}
	var names []string
	for name, tr := range saved {
		if tr.State != Completed {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				names = append(names, name)
				break
			}
		}
	}
	return names
}

// downstream returns the Completed records of saved for every task after
// node e of scope sc: its dependents, directly or not, in sc, then those
// of the Expand that made sc in its own scope, and so on up to the job's.
// They become stale when e's tasks are not all restored. The scopes' graphs
// never change once made, so this reads no state guarded by the job's lock.
func downstream(sc *scope, e int32, saved map[string]*TaskResult) []string {
	var names, prefixes []string
	for ; sc != nil; e, sc = sc.owner, sc.parent {
		seen := map[int32]bool{e: true}
		stack := []int32{e}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, o := range sc.g.outsOf(x) {
				if seen[o] {
					continue
				}
				seen[o] = true
				stack = append(stack, o)
				name := sc.g.names[o]
				switch sc.g.nodes[o].kind {
				case kindFunc:
					if tr, ok := saved[name]; ok && tr.State == Completed {
						names = append(names, name)
					}
				case kindExpand:
					prefixes = append(prefixes, name+"/")
				}
			}
		}
	}
	return append(names, underScopes(saved, prefixes)...)
}

// prepare brings the checkpoint in line with what this run restores,
// before anything runs (or before an Expand's tasks run): the stale tasks
// are marked as no longer completed (a later Save of a task wins over an
// earlier one), and the tasks restored from Options.Resume rather than from
// the store are saved, so that a crash does not lose them. The Saves run
// together, so that a store with group commit syncs them at once.
func (c *checkpoint) prepare(stale, restored []string, saved map[string]*TaskResult) error {
	slices.Sort(stale)
	stale = slices.Compact(stale)
	if c.fromStore {
		restored = nil
	}
	errs := make([]error, len(stale)+len(restored))
	var wg sync.WaitGroup
	for i, name := range stale {
		wg.Go(func() { errs[i] = c.save(name, TaskResult{State: Pending}) })
	}
	for i, name := range restored {
		wg.Go(func() { errs[len(stale)+i] = c.save(name, *saved[name]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return wrap(err, "dag: job %s: cannot record in its checkpoint which tasks this run restores", quote(c.job))
	}
	return nil
}

// recovered calls fn, a method of the store, turning a panic into an
// error: a store is user code, and a bug in it must not take the process
// down.
func recovered(method string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("dag: the checkpoint store's %s panicked: %w", method, newPanicError(r))
		}
	}()
	return fn()
}
