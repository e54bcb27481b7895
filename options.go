package dag

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Options configure one job. The zero Options is valid: an unnamed job with
// an empty initial context, GOMAXPROCS workers, no retries, exponential
// backoff, no timeout and no events.
type Options struct {
	// Name names the job in every event and error, to tell jobs apart.
	Name string

	// Context is the initial job context, seen by every task. Run copies
	// the map (not the values in it), so later changes to it do not reach
	// the job.
	Context map[string]any

	// MaxParallel bounds how many attempts run at once; 0 means
	// runtime.GOMAXPROCS(0). An attempt that timed out or was canceled
	// but whose Func has not returned keeps its slot for a grace period of
	// 20 ms, so that a Func ignoring its context does not free a slot at
	// once, and then no longer (it is counted in TaskResult.Abandoned
	// instead).
	MaxParallel int

	// MaxRetries is the number of retries of a task whose MaxRetries is 0;
	// 0 means none.
	MaxRetries int

	// Backoff makes the retry policy of one task; it is called once per
	// task, at its first retry, and the policy's NextBackOff gives the delay
	// before each retry. nil means exponential backoff with jitter: 100 ms,
	// doubling up to 10 s, each delay randomized by ±50%, with no limit on
	// the time elapsed (MaxRetries is the limit). A policy returning
	// backoff.Stop, a nil policy, or a Backoff that panics ends the task's
	// retries: its last error stands. Backoff and NextBackOff run while the
	// job records the failure, under its lock: they must be quick and must
	// not call the Job's methods.
	Backoff func() backoff.BackOff

	// Timeout bounds the whole job; 0 means none, though ctx's deadline
	// still applies. A job that runs past it ends Canceled, and Wait's error
	// matches context.DeadlineExceeded.
	Timeout time.Duration

	// Events, if not nil, receives every state transition of the job and
	// its tasks, in the order they happened, none dropped: the job's first
	// event first, its final event last. Run is the only sender and closes
	// the channel after the final event, so give each job its own channel
	// and do not send on it or close it. When Run returns an error it closes
	// the channel too, so that a reader such as [LogEvents] ends, unless the
	// error is that another job used this channel from LogEvents already.
	//
	// Events are buffered without bound in between, so a slow reader never
	// slows the tasks, and Wait does not wait for them to be read. Receive
	// until the channel is closed: a goroutine of the job stays blocked
	// while events remain unread. If the channel is closed by someone else,
	// the remaining events are dropped and the job is unaffected.
	Events chan<- Event

	// Logger, if not nil, logs every event of the job, as [LogEvent] does:
	// failures at error level, retries and cancellations at warning level,
	// completions and the job's own transitions at info level, and the rest
	// at debug level. A goroutine of the job writes the records in order,
	// so a slow Handler does not slow the tasks, and every record has been
	// written when [Job.Wait] returns and [Job.Done] is closed: a program
	// may exit as soon as Wait returns and lose none. A Handler that blocks
	// delays Wait by as much. Logger and Events may be set together; Wait
	// still does not wait for Events to be read.
	Logger *slog.Logger

	// KeepGoing, when true, lets a failure stop only what depends on it,
	// through the trigger rules, while every other branch runs to its end.
	// The job then ends Failed if any task Failed without ContinueOnFailure,
	// and Wait returns errors.Join of one *TaskError per such task, in
	// declaration order. When false (the zero value) the first such failure
	// stops the job. A conflict ([ErrConflict]) stops the job either way.
	KeepGoing bool

	// Resume, if not nil, is a Result of an earlier run of the same tasks.
	// A task that Completed there, and whose dependencies are all restored
	// too, is restored without running: its output goes back into the job
	// context, and it moves Pending -> Completed with Attempt 0. Every other
	// task runs, with a fresh retry budget. With a Checkpoint, a checkpoint
	// in the store wins over Resume; otherwise the tasks Resume restores are
	// saved into the store before anything runs.
	Resume *Result

	// Checkpoint, if not nil, records every task that completes, so that a
	// job that fails or whose process dies resumes where it stopped: Run
	// loads the job's checkpoint (by Name, which must then be set) and
	// resumes from it, saves each completed task before any task that
	// depends on it starts, and clears the checkpoint when the job
	// completes. The lock is released, and the checkpoint cleared, when Wait
	// returns (the job's final event may be read just before): start the
	// job's next Run after Wait. See [Store] and [FileStore].
	Checkpoint Store
}

func (o *Options) validate(p *problems) {
	if o.Checkpoint != nil && o.Name == "" {
		p.add(ErrInvalidOptions, "Options.Checkpoint needs Options.Name: the name is the job's identity in the store")
	}
	if o.MaxParallel < 0 {
		p.add(ErrInvalidOptions, "Options.MaxParallel is %d; use 0 for GOMAXPROCS or a positive limit", o.MaxParallel)
	}
	if o.MaxRetries < 0 {
		p.add(ErrInvalidOptions, "Options.MaxRetries is %d; use 0 for no retries or a positive count", o.MaxRetries)
	}
	if o.Timeout < 0 {
		p.add(ErrInvalidOptions, "Options.Timeout is %v; use 0 for no timeout", o.Timeout)
	}
	if o.Events != nil {
		if job, reused := logChans.claim(o.Events, o.Name); reused {
			who := "another job"
			if job != "" {
				who = "job " + quote(job)
			}
			p.add(ErrInvalidOptions, "Options.Events is a channel from LogEvents that %s used already, and closed when it ended: this job's events would be lost. Call LogEvents for each job, or set Options.Logger", who)
			// Run closes Events when it fails; this one belongs to the
			// other job, which may still be running.
			o.Events = nil
		}
	}
}

func (o *Options) maxParallel() int {
	if o.MaxParallel > 0 {
		return o.MaxParallel
	}
	return runtime.GOMAXPROCS(0)
}

// newBackOff returns the retry policy of one task: the task's own
// (Task.Backoff) if it has one, else the job's. It runs user code and never
// panics: a panic or a nil policy means no more retries.
func (o *Options) newBackOff(own func() backoff.BackOff) (b backoff.BackOff, err error) {
	make := o.Backoff
	if own != nil {
		make = own
	}
	if make == nil {
		e := &backoff.ExponentialBackOff{
			InitialInterval:     100 * time.Millisecond,
			RandomizationFactor: 0.5,
			Multiplier:          2,
			MaxInterval:         10 * time.Second,
			MaxElapsedTime:      0,
			Stop:                backoff.Stop,
			Clock:               backoff.SystemClock,
		}
		e.Reset()
		return e, nil
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("dag: Backoff panicked: %v", r)
		}
	}()
	return make(), nil
}

// nextDelay returns b's next delay, or backoff.Stop if b is nil or panics.
func nextDelay(b backoff.BackOff) (d time.Duration, err error) {
	if b == nil {
		return backoff.Stop, nil
	}
	defer func() {
		if r := recover(); r != nil {
			d, err = backoff.Stop, fmt.Errorf("dag: BackOff.NextBackOff panicked: %v", r)
		}
	}()
	return b.NextBackOff(), nil
}
