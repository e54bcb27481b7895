package dag

import (
	"context"
	"errors"
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
}

// openCheckpoint locks the job in the store, if it can, and loads its
// checkpoint.
func openCheckpoint(ctx context.Context, opts Options) (*checkpoint, error) {
	ck := &checkpoint{store: opts.Checkpoint, job: opts.Name, ctx: context.WithoutCancel(ctx)}
	if l, ok := opts.Checkpoint.(Locker); ok {
		unlock, err := l.Lock(ctx, opts.Name)
		if err != nil {
			return nil, wrap(err, "dag: job %s: cannot lock its checkpoint", quote(opts.Name))
		}
		ck.unlock = unlock
	}
	res, err := opts.Checkpoint.Load(ctx, opts.Name)
	switch {
	case errors.Is(err, ErrNoCheckpoint):
	case err != nil:
		ck.release()
		return nil, wrap(err, "dag: job %s: cannot load its checkpoint", quote(opts.Name))
	default:
		ck.resume = res
	}
	if err := checkContext(opts.Context); err != nil {
		ck.release()
		return nil, err
	}
	return ck, nil
}

// save records a completed task in the store.
func (c *checkpoint) save(task string, r TaskResult) error {
	return c.store.Save(c.ctx, c.job, task, r)
}

// release releases the job's lock, if it holds one.
func (c *checkpoint) release() {
	if c.unlock != nil {
		_ = c.unlock()
		c.unlock = nil
	}
}

// finish clears the checkpoint of a job that completed, releases the
// lock, then closes done: Wait returns after both.
func (c *checkpoint) finish(completed bool, done chan struct{}) {
	defer close(done)
	if completed {
		_ = c.store.Clear(c.ctx, c.job)
	}
	c.release()
}

// checkContext reports a value of the initial context that a checkpoint
// could not hold, before anything runs.
func checkContext(m map[string]any) error {
	for k, v := range m {
		if err := checkSerializable("", k, v); err != nil {
			return err
		}
	}
	return nil
}
