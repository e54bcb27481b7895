package dag

import "context"

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
