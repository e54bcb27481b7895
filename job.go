package dag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A Job is a running job, returned by [Run]. Its methods are safe for
// concurrent use.
//
// A Job is a handle: the scheduler behind it holds the job's state.
type Job struct {
	s *scheduler
}

// Result is what a job did. The zero Result is an empty, Pending one.
type Result struct {
	// State is Completed, Failed or Canceled (Running in a Snapshot).
	State State
	// Context is the final job context: the initial context plus the output
	// of every task that completed. It is partial when the job did not
	// complete. dag keeps no reference to it, but every call of Wait
	// returns this same map (and the same Tasks map): a program that calls
	// Wait from several goroutines and changes the maps must copy them
	// first.
	Context map[string]any
	// Tasks holds every task's result, by full name: the tasks of groups
	// and of Expands as "group/child".
	Tasks map[string]TaskResult
}

// Failed returns the names of the tasks that ended Failed, sorted. In a
// job that completed they are its tolerated failures (ContinueOnFailure);
// in a job that failed with KeepGoing, Wait's error lists those that
// failed it.
func (r Result) Failed() []string { return r.named(Failed, Failed) }

// Skipped returns the names of the tasks that did not run because of
// their trigger rule, their When, ErrSkip or a group that did not run:
// those that ended Skipped or UpstreamFailed, sorted.
func (r Result) Skipped() []string { return r.named(Skipped, UpstreamFailed) }

func (r Result) named(a, b State) []string {
	var names []string
	for name, tr := range r.Tasks {
		if tr.State == a || tr.State == b {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TaskResult is what one task did.
type TaskResult struct {
	// State is the task's final state (or its state now, in a Snapshot).
	State State
	// Restored reports a task that did not run because it Completed in the
	// run given as Options.Resume (or in a checkpoint); its Output,
	// Attempts, Started and Finished are that run's.
	Restored bool
	// Attempts is how many attempts started.
	Attempts int
	// Err is the last attempt's error, if it failed; the ErrSkip error of a
	// task that skipped itself; for a group, the *TaskError of the child
	// that failed it (joined, with KeepGoing) or its own timeout. A task
	// canceled while an attempt ran has the error of the attempt before,
	// if any.
	Err error
	// Started is when the first attempt started (when a group started),
	// and Finished when the task reached its final state; zero if it never
	// did.
	Started, Finished time.Time
	// Abandoned counts attempts whose context ended (timeout or stop) but
	// whose Func had not returned when the job ended: task code that
	// ignores its context. Their goroutines are still running.
	Abandoned int
	// Output is what a Completed task added to the job context, as dag
	// copied it; nil for other states and for groups. (The tasks of a Map
	// hold their item's result here, and Map's task holds the list.)
	Output map[string]any
}

// Run validates tasks, starts running them and returns the job. If the
// tasks or options are not valid it returns an error joining every problem
// and nothing runs (see [Validate]). Run does not block: use [Job.Wait].
//
// Run copies the tasks and Options.Context: later changes to them do not
// reach the job. The job runs until its tasks end, ctx is canceled,
// Options.Timeout passes or [Job.Cancel] is called.
//
// With Options.Checkpoint, Run first loads the job's checkpoint, which is
// I/O: it fails if the store does.
//
// Validating, scheduling and building the Result take about 0.4–0.8 µs of
// wall time per no-op task (10,000 tasks on a 2-core machine, any
// MaxParallel), linear in the number of tasks and dependencies; see
// docs/performance.md for figures.
func Run(ctx context.Context, tasks []Task, opts Options) (*Job, error) {
	var p problems
	if ctx == nil {
		p.add(ErrInvalidOptions, "Run needs a non-nil context; use context.Background()")
	}
	opts.validate(&p)
	g, err := build(tasks)
	if err := errors.Join(p.err(), err); err != nil {
		if opts.Events != nil {
			// End the reader's loop, as the job would have: a LogEvents
			// goroutine would otherwise wait for ever.
			closeEvents(opts.Events)
		}
		return nil, err
	}
	var ck *checkpoint
	if opts.Checkpoint != nil {
		ck, err = openCheckpoint(ctx, opts)
		if err != nil {
			if opts.Events != nil {
				closeEvents(opts.Events)
			}
			return nil, err
		}
		if ck.resume != nil {
			// A checkpoint in the store wins over Options.Resume.
			opts.Resume = ck.resume
		}
	}
	resume := completedRecords(opts.Resume)
	if ck != nil && resume != nil {
		stale, restored, _ := staleRecords(g, resume, true)
		if err := ck.prepare(stale, restored, resume); err != nil {
			ck.release()
			if opts.Events != nil {
				closeEvents(opts.Events)
			}
			return nil, err
		}
	}
	s := newScheduler(ctx, g, opts, ck, resume)
	return &Job{s: s}, nil
}

// completedRecords returns the Completed task records of res by name: what
// a run may restore. It is nil without res.
func completedRecords(res *Result) map[string]*TaskResult {
	if res == nil {
		return nil
	}
	m := make(map[string]*TaskResult, len(res.Tasks))
	for name, tr := range res.Tasks {
		if tr.State == Completed {
			m[name] = &tr
		}
	}
	return m
}

// Wait blocks until the job ends and returns its result, and nil or why
// the job did not complete: a [*TaskError] for the task that failed it
// (with Options.KeepGoing, errors.Join of one per failed task), or an error
// matching [context.Canceled] or [context.DeadlineExceeded] if it was
// canceled or timed out. Every call returns the same answer.
//
// Wait returns within a short grace period (20 ms) of the job stopping even
// if some Funcs ignore their context; see [TaskResult.Abandoned]. It waits
// for [Options.Logger] to write every record, but not for events to be
// read.
func (j *Job) Wait() (Result, error) {
	<-j.Done()
	return j.s.doneResult, j.s.doneErr
}

// Done returns a channel that is closed when the job has ended and
// [Options.Logger], if set, has written every record; after that, Wait
// returns at once.
func (j *Job) Done() <-chan struct{} {
	if j.s.logged != nil {
		return j.s.logged
	}
	return j.s.done
}

// Cancel stops the job: running attempts have their context canceled,
// nothing new starts, and the job ends Canceled with an error matching
// [context.Canceled]. It does not wait; use Wait. Cancel is idempotent and
// does nothing once the job is ending.
func (j *Job) Cancel() {
	s := j.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Running {
		return
	}
	s.tick()
	s.stop(Canceled, &wrapError{msg: fmt.Sprintf("dag: %s was canceled: %v", s.jobName(), context.Canceled), err: context.Canceled})
	s.settle()
}

// Snapshot returns the job's Result as it is now: every task so far (the
// children of an Expand once it has returned them) with its state, and the
// job context as far as it has been written. It is safe to call at any
// time; after the job ended it returns what Wait returns. It holds the
// job's lock while it copies, in time linear in the tasks and the keys: a
// few milliseconds for 100,000 tasks.
func (j *Job) Snapshot() Result {
	s := j.s
	select {
	case <-s.done:
		return s.doneResult
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return s.doneResult
	}
	return s.result(false)
}
