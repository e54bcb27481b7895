package dag

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
)

// How dag's error messages read. Every error that dag makes, sentinels
// included, starts with "dag: ", so that an error printed alone says where
// it comes from. When one of dag's errors shows another error inside its
// own message, as a [TaskError] shows the failed task's error, it drops the
// "dag: " that starts the inner message (or any of its lines): a chain
// prints "dag: " once, at its start, however it was built. For example a
// task that timed out fails the job with
//
//	dag: job "nightly": task "fetch" failed after 2 attempts: task "fetch" timed out after 1s: context deadline exceeded
//
// whereas the attempt's own error, in TaskResult.Err and on its Failed
// event, reads "dag: task "fetch" timed out after 1s: context deadline
// exceeded". A message that task code builds around one of dag's errors,
// such as fmt.Errorf("load: %w", err), is the task's own text and is left
// as it is.

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

// Error says which task failed, after how many attempts, and why.
func (e *TaskError) Error() string {
	job := ""
	if e.Job != "" {
		job = fmt.Sprintf("job %s: ", quote(e.Job))
	}
	plural := "s"
	if e.Attempts == 1 {
		plural = ""
	}
	return fmt.Sprintf("dag: %stask %s failed after %d attempt%s: %s", job, quote(e.Task), e.Attempts, plural, inner(e.Err))
}

// Unwrap returns the last attempt's error.
func (e *TaskError) Unwrap() error { return e.Err }

// inner returns err's message for use inside another of dag's messages:
// without the "dag: " that starts it or any of its lines.
func inner(err error) string {
	if err == nil {
		return "<nil>"
	}
	msg := err.Error()
	if !strings.Contains(msg, prefix) {
		return msg
	}
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}

// wrap returns an error that wraps err, whose message is format's, ": ",
// and err's message as inner gives it.
func wrap(err error, format string, args ...any) error {
	return &wrapError{msg: fmt.Sprintf(format, args...) + ": " + inner(err), err: err}
}

// prefix starts every message of dag's errors.
const prefix = "dag: "

// A PanicError is the error of an attempt whose Func panicked. The panic is
// recovered in the attempt's goroutine, so it fails the attempt (and is
// retried like any error) instead of crashing the program.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine, as debug.Stack formats
	// it, starting at the function that panicked: the frames of the
	// recovery (debug.Stack, dag's deferred function and the runtime's
	// panic) and the "goroutine N" header are left out. The last frames are
	// dag's, which called the Func.
	Stack []byte
}

// newPanicError makes the error of a panic with value v. It must be called
// from the function deferred by the frame whose callee panicked, as call
// does: it cuts the stack at the runtime's first panic frame.
func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: panicStack(debug.Stack())}
}

// panicStack cuts a stack that debug.Stack took while recovering a panic
// so that it starts at the frame that panicked. The frames above it are
// the header "goroutine N [running]:", which names a goroutine that may be
// gone by the time anyone reads the error, debug.Stack, the recovery's own
// frames, and the runtime's "panic(…)" frame with its file line. The first
// panic frame is the one that reached the recovery: a Func that recovers a
// panic and panics again shows the second panic first, with the first one
// further down, as a crash would. A stack without a panic frame loses its
// header only.
func panicStack(stack []byte) []byte {
	if i := bytes.IndexByte(stack, '\n'); i >= 0 {
		stack = stack[i+1:]
	}
	for rest := stack; len(rest) > 0; {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		if bytes.HasPrefix(line, []byte("panic(")) {
			// Skip the frame's file line too.
			if _, after, ok := bytes.Cut(next, []byte("\n")); ok {
				return stack[len(stack)-len(after):]
			}
			return stack[len(stack):]
		}
		rest = next
	}
	return stack
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
