package dag

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
)

// Validation errors. Each problem [Validate] or [Run] finds wraps one of
// these and names the task; match them with [errors.Is].
var (
	// ErrCycle reports tasks that depend on each other in a cycle, including a
	// task that depends on itself.
	ErrCycle = errors.New("dag: dependency cycle")
	// ErrMissingDependency reports a dependency on a task that is not declared.
	ErrMissingDependency = errors.New("dag: missing dependency")
	// ErrDuplicateTask reports two tasks with the same name.
	ErrDuplicateTask = errors.New("dag: duplicate task name")
	// ErrInvalidTask reports a task with an empty name, a nil Func, a negative
	// Timeout or a MaxRetries below NoRetries.
	ErrInvalidTask = errors.New("dag: invalid task")
	// ErrInvalidOptions reports a negative field of Options or a nil context.
	ErrInvalidOptions = errors.New("dag: invalid options")
)

// ErrMissingKey is returned by [Lookup] for a key that is not in the context.
var ErrMissingKey = errors.New("dag: key not in the job context")

// ErrConflict reports two tasks that do not depend on each other, directly
// or not, writing the same key. Their order is a race, so dag fails the job
// rather than pick a winner; the error names the key and both tasks. Make
// one task depend on the other, or use different keys.
var ErrConflict = errors.New("dag: conflicting writes to a job context key")

// ErrSkip, returned by a TaskFunc (or wrapped in its error), ends the task
// Skipped rather than Failed, as [io/fs.SkipDir] does for a walk: its output
// is discarded, it is not retried, and TaskResult.Err keeps the error so
// that the reason shows.
var ErrSkip = errors.New("dag: task skipped")

// Checkpoint errors; see [Store] and [FileStore].
var (
	// ErrNoCheckpoint is what Store.Load returns, or wraps, for a job that
	// has no checkpoint.
	ErrNoCheckpoint = errors.New("dag: no checkpoint")
	// ErrCorruptCheckpoint reports a checkpoint whose records cannot be
	// trusted: a damaged record that is not the last one.
	ErrCorruptCheckpoint = errors.New("dag: corrupt checkpoint")
	// ErrNotSerializable reports an output value (or a value of
	// Options.Context) that a checkpoint store cannot encode.
	ErrNotSerializable = errors.New("dag: value cannot be saved in a checkpoint")
	// ErrLocked reports a checkpointed job that another Run, in this process
	// or another, is running.
	ErrLocked = errors.New("dag: checkpointed job is running elsewhere")
)

// A TaskError reports the task that failed a job: [Job.Wait] returns one
// when a task fails for good without ContinueOnFailure, or writes a key
// another task wrote without either depending on the other ([ErrConflict]).
// It wraps the last attempt's error, so [errors.Is] and [errors.As] find the
// task's own errors through it.
type TaskError struct {
	// Job is Options.Name.
	Job string
	// Task is the name of the task that failed.
	Task string
	// Attempts is how many attempts the task made.
	Attempts int
	// Err is the last attempt's error.
	Err error
}

func (e *TaskError) Error() string {
	job := ""
	if e.Job != "" {
		job = fmt.Sprintf("job %s: ", quote(e.Job))
	}
	plural := "s"
	if e.Attempts == 1 {
		plural = ""
	}
	return fmt.Sprintf("dag: %stask %s failed after %d attempt%s: %v", job, quote(e.Task), e.Attempts, plural, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *TaskError) Unwrap() error { return e.Err }

// A PanicError is the error of an attempt whose Func panicked. The panic is
// recovered in the attempt's goroutine, so it fails the attempt (and is
// retried like any error) instead of crashing the program.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine, as debug.Stack formats
	// it, from the panic down.
	Stack []byte
}

func newPanicError(v any) *PanicError {
	stack := debug.Stack()
	// The first line, "goroutine N [running]:", names a goroutine that may
	// be gone by the time anyone reads the error.
	if i := bytes.IndexByte(stack, '\n'); i >= 0 {
		stack = stack[i+1:]
	}
	return &PanicError{Value: v, Stack: stack}
}

// Error returns "panic: " and the value, followed by the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error, so that errors.Is finds
// it; nil otherwise.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// errGoexit is the error of an attempt whose Func called runtime.Goexit,
// as testing.T.FailNow and log.Fatal-free exits do.
var errGoexit = errors.New("dag: task called runtime.Goexit (t.FailNow or t.Skip in a TaskFunc?); the attempt failed")
