package dag

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
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

	// Func does the work. A task has exactly one of Func, Sub and Expand.
	Func TaskFunc

	// Sub makes the task a group: a DAG of its own that runs as one step of
	// the job. Its tasks are named "parent/child" outside the group, and a
	// child's DependsOn names its siblings by their short names. The group
	// starts when its own DependsOn, Trigger and When allow; its children
	// see what the group would see plus their own ancestors' outputs, and
	// the group's dependents wait for every child and see every child's
	// output. The group holds no worker; its Timeout bounds the whole group,
	// and its MaxRetries must be 0.
	Sub []Task

	// Expand makes the task a group whose tasks are known only at run time.
	// It runs on a worker like a Func, with the task's Timeout and retries,
	// and the tasks it returns then run as the task's Sub. If they are not a
	// valid DAG the task fails for good with the validation error. Expand
	// writes no output of its own; its children do. See also [Map].
	Expand func(ctx context.Context, in Values) ([]Task, error)

	// DependsOn names the tasks that must end before this one starts.
	// Listing a task twice is the same as listing it once.
	DependsOn []string

	// Timeout bounds each attempt, not the task as a whole: 0 means none.
	// When it passes, the attempt's context is canceled, the attempt fails
	// with an error matching context.DeadlineExceeded, and the task moves
	// on at once (to a retry, or to Failed) even if Func ignores its
	// context. Func's goroutine then runs on until Func returns, and its
	// result is discarded; it keeps its worker for a grace period of 20 ms,
	// and is then counted in TaskResult.Abandoned while it runs. Once Func
	// has returned in time the deadline no longer applies: saving the
	// output in Options.Checkpoint is not part of the attempt's time.
	Timeout time.Duration

	// MaxRetries is how many times a failed attempt is retried, after the
	// first attempt: 0 means Options.MaxRetries, NoRetries means none.
	MaxRetries int

	// ContinueOnFailure lets the job go on when this task fails for good:
	// the tasks that depend on it run without its output, and the job can
	// still complete.
	ContinueOnFailure bool

	// Trigger decides, once every dependency has ended and never before,
	// whether the task runs. The zero Trigger, AllSucceeded, runs it when
	// every dependency Completed (or Failed with ContinueOnFailure). A task
	// with no dependencies always runs, whatever its Trigger.
	Trigger Trigger

	// When, if not nil, is asked once, when the trigger rule lets the task
	// run, with the Values the task would see. If it returns false the task
	// ends Skipped without taking a worker. A panic in When fails the task.
	When func(in Values) bool

	// Backoff, if not nil, makes the retry policy of this task in place of
	// Options.Backoff, with the same rules.
	Backoff func() backoff.BackOff

	// collect, set by Map, turns the outputs of an Expand task's children,
	// in declaration order, into the task's own output. Children of such a
	// task keep their outputs out of the job context.
	collect func(outs []map[string]any) (map[string]any, error)
}

// A TaskFunc does the work of a task. It reads the job context through in
// and returns the keys it adds; dag copies the returned map, so Func may
// reuse it afterwards. A nil map adds nothing.
//
// ctx is canceled when the attempt times out, when the job is canceled,
// and when another task fails the job; [context.Cause] says which. Func
// should return promptly then: dag does not wait for it, but its goroutine
// runs on until it returns.
//
// Two attempts of one task can therefore run at once: when an attempt
// ignores its ctx past the task's Timeout, the task moves on to its next
// attempt while the late one still runs (its result is discarded). A Func
// with side effects should stop them when ctx is done, passing ctx to
// every call that takes one; and where an overlap would still do harm,
// make the side effect idempotent (a request ID derived from the task, an
// upsert rather than an insert) or guard it with a lock of its own, shared
// by the attempts. [TaskInfoFromContext] tells the attempts apart.
//
// Returning an error fails the attempt, and the task is retried while
// retries remain; wrap the error with [backoff.Permanent] to fail the task at
// once. The task's error is then the one inside, or, if Func wrapped the
// permanent error in another, Func's whole error. Funcs of different tasks
// run concurrently.
type TaskFunc func(ctx context.Context, in Values) (map[string]any, error)

// TaskInfo identifies the attempt that a [TaskFunc] (or an Expand) runs, for
// tracing and logging inside tasks. Read it with [TaskInfoFromContext].
type TaskInfo struct {
	// Job is Options.Name.
	Job string
	// Task is the task's full name: "group/child" inside a group.
	Task string
	// Attempt is the attempt's number: 1 for the first.
	Attempt int
	// Started is when the attempt started: the time of its Running event.
	Started time.Time
}

type taskInfoKey struct{}

// ContextWithTaskInfo returns a context, derived from ctx, for which
// TaskInfoFromContext reports info. Run sets it for every attempt itself;
// it is exported for executors other than Run, such as the temporal
// module, so that the same TaskFuncs find their identity there too.
func ContextWithTaskInfo(ctx context.Context, info TaskInfo) context.Context {
	return context.WithValue(ctx, taskInfoKey{}, &info)
}

// TaskInfoFromContext returns the identity of the attempt whose context ctx
// is, or derives from, and whether there is one.
func TaskInfoFromContext(ctx context.Context) (TaskInfo, bool) {
	switch v := ctx.Value(taskInfoKey{}).(type) {
	case *attemptCtx:
		return v.taskInfo(), true
	case *TaskInfo:
		return *v, true
	}
	return TaskInfo{}, false
}
