package dag

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// abandonGrace is how long a stopping job waits for running attempts to
// return after their context is cancelled. Well-behaved Funcs return well
// within it, so Wait's Result is final and no goroutine of the job remains;
// a Func that ignores its context is abandoned when it passes, so that Wait
// returns within 50 ms of the stop whatever the tasks do.
const abandonGrace = 20 * time.Millisecond

// A Job is a running job, returned by [Run]. Its methods are safe for
// concurrent use.
type Job struct {
	g     *graph
	store *store
	opts  Options
	max   int // workers at most

	ctx        context.Context // the job's context, parent of every attempt's
	cancel     context.CancelCauseFunc
	stopTimer  context.CancelFunc // releases Options.Timeout's timer
	timeoutErr error              // the cause when Options.Timeout passes
	stopWatch  func() bool        // unregisters the watch on ctx
	events     *eventQueue        // nil without Options.Events and Options.Logger
	done       chan struct{}
	logged     chan struct{} // closed after done once Options.Logger wrote every record; nil without it
	doneResult Result
	doneErr    error

	t0 time.Time // when Run started the job

	mu        sync.Mutex
	clock     time.Duration  // guarded by mu: when the transitions being made happen, since t0
	nodes     []node         // guarded by mu
	ready     []uint64       // guarded by mu: a heap of readyKey
	counts    [numStates]int // guarded by mu: tasks by state
	running   []*worker      // guarded by mu: workers counted against MaxParallel
	remaining int            // guarded by mu: tasks not in a final state
	abandoned int            // guarded by mu: abandoned attempts not returned yet
	state     State          // guarded by mu: the job's state
	ended     bool           // guarded by mu: the job has ended and done is closed
	err       error          // guarded by mu: why the job failed or was cancelled
	grace     *time.Timer    // guarded by mu: ends the abandon grace period
}

// node is the scheduler's record of one task.
type node struct {
	fn        TaskFunc
	timeout   time.Duration
	retries   int32 // retries allowed after the first attempt
	cont      bool  // ContinueOnFailure
	state     State
	waiting   int32 // dependencies not ended yet
	attempts  int32 // attempts started
	abandoned int32 // attempts abandoned and not returned yet
	// started and finished are offsets from Job.t0 plus one, 0 if unset:
	// 16 bytes rather than two time.Time's 48, for a million tasks.
	started, finished int64
	// x holds what only failing tasks need.
	x *nodeExtra
}

// nodeExtra is the part of a node that only tasks whose attempts fail use.
type nodeExtra struct {
	err     error           // the last attempt's error
	backoff backoff.BackOff // made at the first retry
	retry   *time.Timer     // the pending retry delay, if any
}

// extra returns n.x, making it if needed.
func (n *node) extra() *nodeExtra {
	if n.x == nil {
		n.x = new(nodeExtra)
	}
	return n.x
}

// tick reads the clock for the transitions about to be made. It reads
// only the monotonic clock, half the cost of time.Now. j.mu is held.
func (j *Job) tick() { j.clock = time.Since(j.t0) }

// stamp returns j.clock as a node time. j.mu is held.
func (j *Job) stamp() int64 { return int64(j.clock) + 1 }

// at turns a node time back into a time.Time.
func (j *Job) at(stamp int64) time.Time {
	if stamp == 0 {
		return time.Time{}
	}
	return j.t0.Add(time.Duration(stamp - 1))
}

// Result is what a job did. The zero Result is an empty, Pending one.
type Result struct {
	// State is Completed, Failed or Canceled.
	State State
	// Context is the final job context: the initial context plus the output
	// of every task that completed. It is partial when the job did not
	// complete. dag keeps no reference to it, but every call of Wait
	// returns this same map (and the same Tasks map): a program that calls
	// Wait from several goroutines and changes the maps must copy them
	// first.
	Context map[string]any
	// Tasks holds every task's result, by name.
	Tasks map[string]TaskResult
}

// TaskResult is what one task did.
type TaskResult struct {
	// State is Completed, Failed or Canceled.
	State State
	// Attempts is how many attempts started.
	Attempts int
	// Err is the last attempt's error, if it failed. A task cancelled while
	// an attempt ran has the error of the attempt before, if any.
	Err error
	// Started is when the first attempt started, and Finished when the task
	// reached its final state; zero if it never did.
	Started, Finished time.Time
	// Abandoned counts attempts whose context ended (timeout or stop) but
	// whose Func had not returned when the job ended: task code that
	// ignores its context. Their goroutines are still running.
	Abandoned int
	// Output is what a Completed task added to the job context, as dag
	// copied it; nil for other states and for groups.
	Output map[string]any
	// Restored reports a task that did not run because it Completed in the
	// run given as Options.Resume (or in a checkpoint); its Output, Attempts,
	// Started and Finished are that run's.
	Restored bool
}

// Run validates tasks, starts running them and returns the job. If the
// tasks or options are not valid it returns an error joining every problem
// and nothing runs (see [Validate]). Run does not block: use [Job.Wait].
//
// Run copies the tasks and Options.Context: later changes to them do not
// reach the job. The job runs until its tasks end, ctx is cancelled,
// Options.Timeout passes or [Job.Cancel] is called.
//
// The scheduler costs a few hundred nanoseconds per task, linear in the
// number of tasks and dependencies; see the README for figures.
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

	j := &Job{
		t0:    time.Now(),
		g:     g,
		store: newStore(g, opts.Context),
		opts:  opts,
		max:   opts.maxParallel(),
		done:  make(chan struct{}),
		nodes: make([]node, len(tasks)),
	}
	j.opts.Context = nil // the store holds the copy
	for i := range tasks {
		t, n := &tasks[i], &j.nodes[i]
		n.fn, n.timeout, n.cont = t.Func, t.Timeout, t.ContinueOnFailure
		switch t.MaxRetries {
		case 0:
			n.retries = int32(min(opts.MaxRetries, 1<<31-1))
		case NoRetries:
			n.retries = 0
		default:
			n.retries = int32(min(t.MaxRetries, 1<<31-1))
		}
		n.waiting = g.depOff[i+1] - g.depOff[i]
	}
	j.counts[Pending] = len(tasks)
	j.remaining = len(tasks)

	base, cancel := context.WithCancelCause(ctx)
	j.ctx, j.cancel = base, cancel
	if opts.Timeout > 0 {
		j.timeoutErr = &wrapError{
			msg: fmt.Sprintf("dag: %s exceeded its Timeout of %v: %v", j.who(), opts.Timeout, context.DeadlineExceeded),
			err: context.DeadlineExceeded,
		}
		j.ctx, j.stopTimer = context.WithTimeoutCause(base, opts.Timeout, j.timeoutErr)
	}
	j.events, j.logged = newEventSink(opts.Events, opts.Logger, j.done)

	j.mu.Lock()
	defer j.mu.Unlock()
	j.state = Running
	j.emit(Event{From: Pending, To: Running})
	// The watch runs in its own goroutine, so it may take mu; register it
	// with mu held so that it cannot act before the job is set up.
	j.stopWatch = context.AfterFunc(j.ctx, j.onContextDone)
	for i := range j.nodes {
		if j.nodes[i].waiting == 0 {
			j.makeReady(int32(i))
		}
	}
	j.spawn()
	j.maybeEnd()
	return j, nil
}

// who names the job in messages: `job "name"`, or "job" if unnamed.
func (j *Job) who() string {
	if j.opts.Name == "" {
		return "job"
	}
	return "job " + quote(j.opts.Name)
}

// Wait blocks until the job ends and returns its result, and nil or why
// the job did not complete: a [*TaskError] for the task that failed it, or
// an error matching [context.Canceled] or [context.DeadlineExceeded] if it
// was cancelled or timed out. Every call returns the same answer.
//
// Wait returns within a short grace period (20 ms) of the job stopping even
// if some Funcs ignore their context; see [TaskResult.Abandoned]. It waits
// for [Options.Logger] to write every record, but not for events to be
// read.
func (j *Job) Wait() (Result, error) {
	<-j.Done()
	return j.doneResult, j.doneErr
}

// Done returns a channel that is closed when the job has ended and
// [Options.Logger], if set, has written every record; after that, Wait
// returns at once.
func (j *Job) Done() <-chan struct{} {
	if j.logged != nil {
		return j.logged
	}
	return j.done
}

// Cancel stops the job: running attempts have their context cancelled,
// nothing new starts, and the job ends Canceled with an error matching
// [context.Canceled]. It does not wait; use Wait. Cancel is idempotent and
// does nothing once the job is ending.
func (j *Job) Cancel() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state != Running {
		return
	}
	j.tick()
	j.stop(Canceled, &wrapError{msg: fmt.Sprintf("dag: %s was cancelled: %v", j.who(), context.Canceled), err: context.Canceled})
}

// onContextDone stops the job when its context ends for a reason of its
// own: the caller's ctx, or Options.Timeout. Stops by Cancel or by a failed
// task cancel the context too, and are ignored here.
func (j *Job) onContextDone() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state != Running {
		return
	}
	j.tick()
	j.contextEnded()
}

// contextEnded stops the job because its context ended. j.mu is held.
func (j *Job) contextEnded() {
	err := context.Cause(j.ctx)
	if err != j.timeoutErr {
		// The caller's ctx ended: say so, matching its Err, with its cause.
		msg := fmt.Sprintf("dag: %s stopped because its context ended: %v", j.who(), j.ctx.Err())
		if err != nil && err != j.ctx.Err() {
			msg += fmt.Sprintf(" (cause: %v)", err)
		}
		err = &wrapError{msg: msg, err: j.ctx.Err()}
	}
	j.stop(Canceled, err)
}

// stop ends the job early with state and err: cancels every attempt's
// context, cancels every task not ended, and ends the job once the running
// attempts have returned or the grace period has passed. j.mu is held.
func (j *Job) stop(state State, err error) {
	j.state, j.err = state, err
	j.cancel(err)
	for i := range j.nodes {
		n := &j.nodes[i]
		if n.state.Final() {
			continue
		}
		if n.x != nil && n.x.retry != nil {
			n.x.retry.Stop()
			n.x.retry = nil
		}
		n.finished = j.stamp()
		j.transition(int32(i), Canceled, n.attempts, nil)
	}
	j.ready = j.ready[:0]
	if len(j.running) > 0 {
		j.grace = time.AfterFunc(abandonGrace, j.abandonAll)
	}
	j.maybeEnd()
}

// abandonAll ends the grace period of a stopping job: attempts still
// running are abandoned, and the job ends.
func (j *Job) abandonAll() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ended {
		return
	}
	j.tick()
	for len(j.running) > 0 {
		j.detach(j.running[len(j.running)-1])
	}
	j.maybeEnd()
}

// maybeEnd ends the job if every task has ended and no worker runs. j.mu
// is held.
func (j *Job) maybeEnd() {
	if j.remaining > 0 || len(j.running) > 0 || j.ended {
		return
	}
	j.ended = true
	if j.state == Running {
		j.state = Completed
	}
	if j.grace != nil {
		j.grace.Stop()
	}
	j.stopWatch()
	if j.stopTimer != nil {
		j.stopTimer()
	}
	// Abandoned attempts learn from their context that the job is over.
	j.cancel(fmt.Errorf("dag: %s ended: %w", j.who(), context.Canceled))

	res := Result{
		State:   j.state,
		Context: j.store.final(),
		Tasks:   make(map[string]TaskResult, len(j.nodes)),
	}
	for i := range j.nodes {
		n := &j.nodes[i]
		var err error
		if n.x != nil {
			err = n.x.err
		}
		res.Tasks[j.g.names[i]] = TaskResult{
			State:     n.state,
			Attempts:  int(n.attempts),
			Err:       err,
			Started:   j.at(n.started),
			Finished:  j.at(n.finished),
			Abandoned: int(n.abandoned),
		}
	}
	j.doneResult, j.doneErr = res, j.err
	j.emit(Event{From: Running, To: j.state, Err: j.err})
	if j.events != nil {
		j.events.close()
	}
	close(j.done)
}
