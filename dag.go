// Package dag runs a directed acyclic graph of tasks inside one process.
//
// Where [golang.org/x/sync/errgroup] runs independent goroutines and reports
// the first error, dag runs tasks that depend on each other: a task starts
// once the tasks it depends on have ended, on a bounded pool of workers, with
// per-attempt timeouts, retries with backoff, a shared job context that
// carries each task's output to the tasks that depend on it, and an ordered
// stream of events for logging and metrics.
//
// dag is in-process: a job lives in memory and its workers are goroutines of
// the process. With a checkpoint store ([Options.Checkpoint], [FileStore]) a
// job that failed or whose process died resumes where it stopped. It is
// meant for gluing API calls, data fetches, build steps and batch jobs
// together, not for replacing a workflow server; the temporal module runs
// the same tasks on Temporal when one process is not enough.
//
// # Declaring tasks
//
// A [Task] is a name, a [TaskFunc] and the names of the tasks it depends on.
// [Run] validates the tasks, starts the job and returns a [*Job]; [Job.Wait]
// returns the [Result]:
//
//	job, err := dag.Run(ctx, []dag.Task{
//		{Name: "fetch", Func: fetch},
//		{Name: "parse", Func: parse, DependsOn: []string{"fetch"}},
//	}, dag.Options{})
//	if err != nil { ... } // the tasks are not a valid DAG; nothing ran
//	res, err := job.Wait()
//
// # Validation
//
// [Validate] and [Run] check every task before anything runs and report every
// problem at once, joined with [errors.Join]: empty or duplicate names, a nil
// Func, a negative Timeout, MaxRetries below [NoRetries], a dependency on an
// unknown task or on the task itself, and cycles, shown as a path such as
// "a -> b -> c -> a". Each problem names its task and matches one of
// [ErrInvalidTask], [ErrDuplicateTask], [ErrMissingDependency], [ErrCycle] or
// [ErrInvalidOptions] with [errors.Is]. Validation and scheduling use no
// recursion, so graphs of millions of tasks or a task with a hundred thousand
// dependencies are fine.
//
// # Scheduling
//
// Once every task it depends on has ended, a task's [Trigger] rule decides
// whether it runs: by default when every dependency Completed (or Failed with
// ContinueOnFailure). A task that does not run ends Skipped or UpstreamFailed
// without taking a worker. At most [Options.MaxParallel] attempts
// run at once; workers are started lazily, so a three-task job never starts
// more than three. Among ready tasks, the one with the longest chain of tasks
// still ahead of it (the critical path) starts first, and ties go to the task
// declared first. Only a task that can run holds a worker: a task waiting out
// a retry delay holds none. A task starts (Running) as soon as a slot is
// free; idle workers are woken one at a time, and a worker that has just
// ended an attempt takes up the next started one itself, so short tasks run
// on about as many goroutines as there are processors to run them, whatever
// MaxParallel is, while tasks that wait (on I/O, on a timer) still run
// MaxParallel at once.
//
// # Groups, fan-out, conditions and keep-going
//
// A task with Sub is a group: a small DAG that runs as one step, its tasks
// named "group/child". A task with Expand returns, when it runs, the tasks of
// its group; [Map] builds one that runs a function per item of a list. Groups
// nest, share the job's workers (MaxParallel bounds the whole job), and
// their tasks' events, errors and results carry their full names. A task's
// When skips it on a condition of what it sees, and a Func that returns
// [ErrSkip] ends its task Skipped. With [Options.KeepGoing], a failure stops
// only what depends on it, and [Job.Wait] joins one [*TaskError] per failed
// task; the default stops the job at the first failure.
//
// # Resume and checkpoints
//
// [Options.Resume] runs a job again after an earlier run of it: tasks that
// completed then, and whose dependencies are all restored too, are restored
// without running, their outputs put back so that every other task sees what
// it would have seen. [Options.Checkpoint] saves each completed task in a
// [Store] before its dependents start, so that a job whose process died
// resumes from the store; [FileStore] is the store on disk.
//
// # The job context
//
// Each task returns a map that is merged into the job context. A task sees,
// through [Values], exactly the initial context ([Options.Context]) plus the
// outputs of every task it depends on, directly or not, and nothing else, so
// what it reads never depends on timing. When a key is written by two tasks
// of which one depends on the other, the descendant's value wins. When two
// tasks that do not depend on each other both write a key, the job fails
// with [ErrConflict]: the result would otherwise depend on which finished
// last. Outputs of failed attempts are never seen. dag copies each output, so
// a task may reuse its map after returning, and a [Values] stays valid and
// unchanged after its task ends. Reading a key costs the same whatever the
// size of the job: nothing is copied per task.
//
// # Failures, retries and panics
//
// An attempt fails when its Func returns an error, panics, or runs past the
// task's Timeout. A panic is recovered and becomes a [*PanicError] carrying
// the value and the stack; the attempt's Failed or Retrying event is sent the
// moment it happens and the scheduler never waits on the panicked attempt. A
// failed attempt is retried after the [Options.Backoff] delay while retries
// remain; returning [backoff.Permanent] or a BackOff returning [backoff.Stop]
// ends the retries at once. A task that fails for good fails the job unless
// it has ContinueOnFailure (or KeepGoing is set): running attempts have their
// context canceled, nothing new starts, and [Job.Wait] returns a
// [*TaskError].
//
// errgroup chose to let panics crash the program, because a recovered panic
// loses its stack and keeps the group waiting. dag recovers them because a
// task is often someone else's code and one bad input should not take down a
// service; it keeps the full stack in the error, reports it at once, and does
// not wait for the panicked attempt.
//
// # Cancellation and timeouts
//
// [Job.Cancel], canceling the context given to [Run], and [Options.Timeout]
// end the job Canceled. Every running attempt's context is canceled, with a
// cause readable through [context.Cause]. Cancellation in Go is cooperative:
// a Func that ignores its context keeps running. dag does not wait for it
// past a short grace period: [Job.Wait] returns, and the attempt is counted
// in [TaskResult.Abandoned] and [Progress.Abandoned] so that such code can be
// found. Its late result is discarded.
//
// # Events
//
// Every state transition of the job and of each task is sent, in order and
// without loss, on [Options.Events] if it is set; see [State] for the legal
// transitions. [Options.Logger] logs them with [log/slog], every record
// written before [Job.Wait] returns. [Job.Progress] gives live counts and
// [Job.Snapshot] a live [Result] at any time, which [WriteDOT] and
// [WriteMermaid] draw with each task's state. Inside a task,
// [TaskInfoFromContext] tells the job, the task's full name and the attempt.
//
// # Testing a TaskFunc
//
// A TaskFunc is a plain function: call it with a context and [ValuesOf].
package dag

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxProblems caps how many validation problems one error lists, so that a
// list of a million bad tasks yields a readable error.
const maxProblems = 100

// maxCycles caps how many cycles one error shows.
const maxCycles = 10

// Validate reports whether tasks form a valid DAG, with the same checks as
// [Run], without running anything. It returns nil or an error joining every
// problem found (at most 100 are listed, and a last line counts the rest).
// Validate takes time linear in the number of tasks and dependencies.
func Validate(tasks []Task) error {
	_, err := build(tasks)
	return err
}

// problems collects validation errors up to maxProblems.
type problems struct {
	errs    []error
	dropped int
}

func (p *problems) add(sentinel error, format string, args ...any) {
	if len(p.errs) >= maxProblems {
		p.dropped++
		return
	}
	p.errs = append(p.errs, &wrapError{msg: "dag: " + fmt.Sprintf(format, args...), err: sentinel})
}

func (p *problems) err() error {
	if p.dropped > 0 {
		p.errs = append(p.errs, fmt.Errorf("dag: %d more problems not shown", p.dropped))
	}
	return errors.Join(p.errs...)
}

// wrapError is an error with its own message that matches a sentinel.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// quote quotes a task name for an error message, shortening huge ones.
func quote(name string) string {
	const max = 64
	if len(name) > max {
		return fmt.Sprintf("%q… (%d bytes)", name[:max], len(name))
	}
	return fmt.Sprintf("%q", name)
}

// pathName names a task in a cycle's path: as it is, so that the path
// reads a -> b -> a, unless the name could blur the path (it is long, has
// an arrow, quotes, control characters or invalid UTF-8): then quoted.
func pathName(name string) string {
	if len(name) <= 64 && utf8.ValidString(name) && !strings.Contains(name, "->") &&
		!strings.ContainsFunc(name, func(r rune) bool { return r == '"' || r == '…' || !unicode.IsPrint(r) }) {
		return name
	}
	return quote(name)
}

// taskID names task i for a message: its quoted name, or #i if it has none.
func taskID(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("#%d", i)
	}
	return quote(name)
}
