package dag

import (
	"context"
	"time"
)

// NoRetries, as a Task's MaxRetries, means the task is tried once whatever
// [Options.MaxRetries] says.
const NoRetries = -1

// A Task is one node of a job: a name, the work, and the tasks it depends on.
//
// The zero Task is not valid; Task{Name: "x", Func: f} is a complete task
// with no dependencies, no timeout, the job's default retries, and failure
// failing the job.
type Task struct {
	// Name identifies the task in dependencies, events, errors and results.
	// It must be non-empty and unique within the job.
	Name string

	// Func does the work. It must not be nil.
	Func TaskFunc

	// DependsOn names the tasks that must end before this one starts.
	// Listing a task twice is the same as listing it once.
	DependsOn []string

	// Timeout bounds each attempt, not the task as a whole: 0 means none.
	// When it passes, the attempt's context is cancelled, the attempt fails
	// with an error matching context.DeadlineExceeded, and the task moves
	// on at once (to a retry, or to Failed) even if Func ignores its
	// context. Func's goroutine then runs on until Func returns, and its
	// result is discarded; it keeps its worker for a grace period of 20 ms,
	// and is then counted in TaskResult.Abandoned while it runs.
	Timeout time.Duration

	// MaxRetries is how many times a failed attempt is retried, after the
	// first attempt: 0 means Options.MaxRetries, NoRetries means none.
	MaxRetries int

	// ContinueOnFailure lets the job go on when this task fails for good:
	// the tasks that depend on it run without its output, and the job can
	// still complete.
	ContinueOnFailure bool
}

// A TaskFunc does the work of a task. It reads the job context through in
// and returns the keys it adds; dag copies the returned map, so Func may
// reuse it afterwards. A nil map adds nothing.
//
// ctx is cancelled when the attempt times out, when the job is cancelled,
// and when another task fails the job; [context.Cause] says which. Func
// should return promptly then: dag does not wait for it, but its goroutine
// runs on until it returns.
//
// Returning an error fails the attempt, and the task is retried while
// retries remain; wrap the error with [backoff.Permanent] to fail the task at
// once. The task's error is then the one inside, or, if Func wrapped the
// permanent error in another, Func's whole error. Funcs of different tasks
// run concurrently.
type TaskFunc func(ctx context.Context, in Values) (map[string]any, error)
