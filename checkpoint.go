package dag

import "context"

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
