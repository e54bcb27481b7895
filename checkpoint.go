package dag

import (
	"context"
	"errors"
)

// A Store keeps the checkpoint of jobs: the tasks of each job that
// completed, so that the next Run of the job resumes after them (see
// [Options.Checkpoint]). Its methods may be called concurrently. Package
// storetest checks that a Store keeps every promise below.
type Store interface {
	// Load returns the checkpoint of the job, or an error matching
	// ErrNoCheckpoint. The Result holds the saved tasks, by name.
	Load(ctx context.Context, job string) (*Result, error)
	// Save records that task ended with r, durably, before it returns.
	Save(ctx context.Context, job, task string, r TaskResult) error
	// Clear removes the job's checkpoint.
	Clear(ctx context.Context, job string) error
}

// A Locker is a Store that can make sure that one Run at a time runs a
// job, in this process or another. Run takes the lock before it loads the
// checkpoint, when Options.Checkpoint implements Locker, and releases it
// before Wait returns. A second Run of the job while the lock is held fails
// at once with an error matching ErrLocked.
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
