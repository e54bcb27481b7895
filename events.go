package dag

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// State is the state of a task or of a job.
//
// A task moves through these transitions, and no others:
//
//	Pending  -> Ready           its trigger rule lets it run (every dependency ended Completed, or Failed with ContinueOnFailure, for the default rule)
//	Pending  -> Running         a group (Task.Sub) starts: it holds no worker, so it is never Ready
//	Pending  -> Skipped         its trigger rule or its When said no, or its group did not run
//	Pending  -> UpstreamFailed  its trigger rule said no because a dependency failed, or its group did not run
//	Pending  -> Failed          its When panicked
//	Ready    -> Running         an attempt starts
//	Running  -> Completed       the attempt succeeded (for a group: every child ended, none failing it)
//	Running  -> Failed          the attempt failed and no retry remains
//	Running  -> Retrying        the attempt failed; a retry waits out its backoff delay
//	Running  -> Skipped         the attempt returned ErrSkip (for a group: every child was skipped)
//	Retrying -> Ready           the delay is over
//	any state not final -> Canceled   the job (or the task's group) stopped before the task ended
//
// A restored task (see [Options.Resume]) moves Pending -> Completed.
//
// A job moves Pending -> Running -> Completed, Failed or Canceled.
// Completed, Failed, Canceled, Skipped and UpstreamFailed are final; only
// tasks end Skipped or UpstreamFailed.
//
// The zero State is Pending.
type State uint8

// The states of tasks and jobs.
const (
	Pending        State = iota // not started: a task waits for its dependencies
	Ready                       // a task waits for a worker
	Running                     // a task's attempt runs; a job runs
	Retrying                    // a task waits out the delay before its next attempt
	Completed                   // final: succeeded
	Failed                      // final: failed
	Canceled                    // final: stopped before the end
	Skipped                     // final: a task did not run, and nothing failed
	UpstreamFailed              // final: a task did not run because a task it depends on failed
	numStates
)

var stateNames = [...]string{"pending", "ready", "running", "retrying", "completed", "failed", "canceled", "skipped", "upstream_failed"}

// String returns the state's name in lower case, such as "running".
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText returns the state's name, so that states read well in JSON
// and in logs.
func (s State) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// UnmarshalText parses a state's name, as returned by String.
func (s *State) UnmarshalText(b []byte) error {
	for i, name := range stateNames {
		if string(b) == name {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("dag: unknown state %q", b)
}

// Final reports whether s is Completed, Failed, Canceled, Skipped or
// UpstreamFailed.
func (s State) Final() bool { return s >= Completed && s < numStates }

// An Event is one state transition of a job or of one of its tasks.
// Events are plain values, passed by copy.
type Event struct {
	Time time.Time
	// Job is Options.Name.
	Job string
	// Task is the task's name, or "" for an event of the job itself.
	Task     string
	From, To State
	// Attempt is the number of the attempt the event belongs to: 1 for the
	// first. A Ready event carries the attempt about to run; a Canceled
	// event, the last attempt started (0 if none). It is 0 for job events.
	Attempt int
	// Err is why an attempt failed, on Failed and Retrying events; why the
	// job failed or was canceled, on the job's final event; nil otherwise.
	Err error
}

// String formats the event as one line, for logs and debugging:
//
//	job "nightly": task "fetch" running -> retrying (attempt 1): connection reset
//	job "nightly" running -> completed
//
// The job's name is left out when it is empty, and the error's "dag: "
// prefix is dropped, as in a [TaskError].
func (e Event) String() string {
	var b strings.Builder
	switch {
	case e.Job != "" && e.Task != "":
		fmt.Fprintf(&b, "job %s: task %s", quote(e.Job), quote(e.Task))
	case e.Task != "":
		fmt.Fprintf(&b, "task %s", quote(e.Task))
	case e.Job != "":
		fmt.Fprintf(&b, "job %s", quote(e.Job))
	default:
		b.WriteString("job")
	}
	fmt.Fprintf(&b, " %s -> %s", e.From, e.To)
	if e.Attempt > 0 {
		fmt.Fprintf(&b, " (attempt %d)", e.Attempt)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(inner(e.Err))
	}
	return b.String()
}

// eventQueue hands events from the scheduler to one delivery goroutine
// through an unbounded buffer, so that a slow reader never slows the tasks
// and no event is dropped. Events are pushed while the scheduler holds its
// lock, so the buffer's order is the order the transitions happened.
//
// The buffer is a list of fixed-size blocks drawn from a pool shared by all
// jobs, rather than a slice that grows: a job's events then cost no
// allocation and no copying once the pool is warm, however far behind the
// reader falls.
type eventQueue struct {
	mu      sync.Mutex
	blocks  []*eventBlock // guarded by mu: the events not yet taken, in order
	last    int           // guarded by mu: events in the last block
	closed  bool          // guarded by mu: no event comes after those buffered
	waiting bool          // guarded by mu: the deliverer waits on wake
	wake    chan struct{}
	out     chan<- Event
}

// eventBlock is a part of an event queue's buffer.
type eventBlock [128]Event

// eventBlocks holds the blocks no queue uses, for any job to take.
var eventBlocks = sync.Pool{New: func() any { return new(eventBlock) }}

func newEventQueue(out chan<- Event) *eventQueue {
	q := &eventQueue{out: out, wake: make(chan struct{}, 1)}
	// The deliverer outlives the job while the reader is behind: it ends
	// once it has sent the last event and closed out. A program that stops
	// reading leaves it blocked; Options.Events says so.
	go q.deliver()
	return q
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if len(q.blocks) == 0 || q.last == len(q.blocks[0]) {
		q.blocks = append(q.blocks, eventBlocks.Get().(*eventBlock))
		q.last = 0
	}
	q.blocks[len(q.blocks)-1][q.last] = e
	q.last++
	wake := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if wake {
		q.wake <- struct{}{} // never blocks: only one push sees waiting
	}
}

// close marks the end of the events: the deliverer closes out after sending
// those already pushed.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	wake := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if wake {
		q.wake <- struct{}{}
	}
}

func (q *eventQueue) deliver() {
	var spare []*eventBlock
	broken := false
	for {
		q.mu.Lock()
		for len(q.blocks) == 0 && !q.closed {
			q.waiting = true
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		batch, last, closed := q.blocks, q.last, q.closed
		q.blocks, q.last = spare[:0], 0
		q.mu.Unlock()
		for i, b := range batch {
			n := len(b)
			if i == len(batch)-1 {
				n = last
			}
			for _, e := range b[:n] {
				if !broken {
					broken = !q.send(e)
				}
			}
			clear(b[:n]) // drop references to errors for the collector
			eventBlocks.Put(b)
		}
		clear(batch)
		spare = batch
		if closed {
			if !broken {
				closeEvents(q.out)
			}
			return
		}
	}
}

// send sends e, and reports false if the channel was closed by someone
// else: the remaining events are then dropped and the job goes on.
func (q *eventQueue) send(e Event) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	q.out <- e
	return true
}

// closeEvents closes an Options.Events channel, unless someone else has
// closed it already.
func closeEvents(ch chan<- Event) {
	defer func() { _ = recover() }()
	close(ch)
}
