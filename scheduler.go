package dag

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// The scheduler has no goroutine of its own. Workers run attempts and, after
// each, take the job's lock once to record the outcome, release the tasks
// that were waiting on it and pick the next ready task; timers (retry delays,
// attempt and group timeouts, the grace period) and the context watch take
// the same lock for their transitions. One lock keeps every transition, and
// the events that record them, in one order, and it is held for a few
// hundred nanoseconds at a time.
//
// A node's dependencies ending (in any final state) counts it down; at zero
// its trigger rule is decided, never before, so that what it sees never
// depends on timing. Decisions that end a task without running it (Skipped,
// UpstreamFailed, a restored task) end more tasks in turn: they go through a
// work list, not recursion, so that a skip running down a chain of a million
// tasks needs no stack.
//
// Workers are started lazily, up to MaxParallel, when a task becomes ready
// and no worker is free; a worker that finds no task ready parks until one
// is, and ends when the job stops or ends. Only tasks that can run take a
// worker: a task waiting for its dependencies or for a retry delay, a
// skipped task and a group hold none, so no configuration of MaxParallel
// can deadlock.

// abandonGrace is how long a stopping job waits for running attempts to
// return after their context is canceled. Well-behaved Funcs return well
// within it, so Wait's Result is final and no goroutine of the job remains;
// a Func that ignores its context is abandoned when it passes, so that Wait
// returns within 50 ms of the stop whatever the tasks do.
const abandonGrace = 20 * time.Millisecond

// scheduler is the state of one job.
type scheduler struct {
	opts  Options
	max   int // workers at most
	store *store
	ck    *checkpoint // nil without Options.Checkpoint

	ctx        context.Context // the job's context, parent of every group's and attempt's
	cancel     context.CancelCauseFunc
	stopTimer  context.CancelFunc // releases Options.Timeout's timer
	timeoutErr error              // the cause when Options.Timeout passes
	stopWatch  func() bool        // unregisters the watch on ctx
	events     *eventQueue        // nil without Options.Events and Options.Logger
	done       chan struct{}
	logged     chan struct{} // closed after done once Options.Logger wrote every record; nil without it
	doneResult Result
	doneErr    error
	root       *groupRun              // the job as a group
	resume     map[string]*TaskResult // Options.Resume's tasks; nil without it
	// nested is set when the job has a group or an Expand: without, every
	// task is a member of the job itself.
	nested bool

	t0    time.Time // when Run started the job
	ident *jobIdent // the job's name and t0, for attempt contexts

	mu        sync.Mutex
	waiting   atomic.Int32   // workers that ended an attempt and wait for mu (see work)
	clock     time.Duration  // guarded by mu: when the transitions being made happen, since t0
	scopes    []*scope       // guarded by mu: the job's scope first, then one per Expand that ran
	nodes     []node         // guarded by mu: every node of every scope, by job-wide number
	refs      []nodeRefs     // guarded by mu: the part of each node with pointers, by number
	ready     []uint64       // guarded by mu: a heap of readyKey
	run       []uint64       // guarded by mu: readyKeys in order, beside the heap; run[runAt:] are queued
	runAt     int            // guarded by mu
	counts    [numStates]int // guarded by mu: tasks by state
	running   []*worker      // guarded by mu: workers counted against MaxParallel
	idle      []*worker      // guarded by mu: parked workers, waiting for a ready task
	handed    []*worker      // guarded by mu: workers handed an attempt not taken up yet, oldest first from handedAt
	handedAt  int            // guarded by mu
	comer     *worker        // guarded by mu: the worker wakeNext woke, until it runs
	remaining int            // guarded by mu: tasks (not close nodes) not in a final state
	abandoned int            // guarded by mu: abandoned attempts not returned yet
	state     State          // guarded by mu: the job's state
	ended     bool           // guarded by mu: the job has ended
	err       error          // guarded by mu: why the job failed or was canceled
	grace     *time.Timer    // guarded by mu: ends the abandon grace period
	decide    []int32        // guarded by mu: nodes whose dependencies have all ended, to decide
	saving    int            // guarded by mu: checkpoint Saves running (see deferSave)
}

// node is the scheduler's record of one node: a task, a group's open node,
// or a close node (which only counts the members of its group down). It
// holds what the transitions read and write, in 48 bytes without
// pointers: the collector never scans the table, and a transition touches
// one cache line of it. The rest is in nodeRefs.
type node struct {
	// started and finished are offsets from t0 plus one, 0 if unset: 16
	// bytes rather than two time.Time's 48, for a million tasks.
	started, finished int64
	retries           int32 // retries allowed after the first attempt
	scope             int32 // index in scopes
	waiting           int32 // dependencies not ended yet
	attempts          int32 // attempts started
	// abandoned counts attempts abandoned and not returned yet.
	abandoned int32
	kind      uint8
	state     State
	trigger   Trigger
	tolerate  bool // ContinueOnFailure
	restored  bool // restored from Options.Resume, without running
	// reused says that the node's outputs are those of the earlier run:
	// a restored task, or a group that ran but restored all it holds.
	reused  bool
	private bool // a Map's task: its output is kept out of the job context
}

// nodeRefs is the part of a node's record that holds pointers, read when
// an attempt starts and when a task ends.
type nodeRefs struct {
	fn      TaskFunc
	timeout time.Duration
	// out is a Completed task's output: a copy of what its Func returned,
	// that the final Result hands over as TaskResult.Output.
	out map[string]any
	// extra holds what only some nodes need.
	extra *nodeExtra
}

// nodeExtra is the part of a node that only tasks that fail, groups, and
// tasks with rarely used fields need.
type nodeExtra struct {
	err        error           // the last attempt's error; a group's failure
	backoff    backoff.BackOff // made at the first retry
	retry      *time.Timer     // the pending retry delay, if any
	group      *groupRun       // for a group (Sub, or an Expand that returned)
	when       func(Values) bool
	newBackoff func() backoff.BackOff
	expand     func(context.Context, Values) ([]Task, error)
	collect    func([]map[string]any) (map[string]any, error)
	inherit    *Task       // a Map's fields its tasks inherit
	from       *TaskResult // a restored task's earlier result
	reusable   bool        // an Expand whose tasks may be restored
}

// extraOf returns node id's extra, making it if needed. s.mu is held.
func (s *scheduler) extraOf(id int32) *nodeExtra {
	r := &s.refs[id]
	if r.extra == nil {
		r.extra = new(nodeExtra)
	}
	return r.extra
}

// groupRun is a running group: a task with Sub or an Expand that returned
// its tasks, or the job itself (root).
type groupRun struct {
	node   int32 // the group's node; -1 for the job
	scope  int32 // for an Expand (and the job), the scope of its tasks; -1 for a Sub
	parent *groupRun
	ctx    context.Context // parent of its members' attempts and groups
	cancel context.CancelCauseFunc
	// timeout is the cause when the group's Timeout passes; stopTimer and
	// unwatch release its timer and its watch.
	timeout   error
	stopTimer context.CancelFunc
	unwatch   func() bool
	// members counts the members that ended, failed those that Failed
	// without ContinueOnFailure, and ran those that did not end Skipped.
	members, failed, ran int32
	stopped              bool // the group stopped early: its members are canceled
	timedOut             bool // its Timeout stopped it
	// restorable says that the group's members may be restored from
	// Options.Resume: what the group sees is what it saw then.
	restorable bool
}

// newScheduler sets up the job of graph g and starts it. resume holds the
// records it may restore (completedRecords of Options.Resume, or of the
// checkpoint), nil without.
func newScheduler(ctx context.Context, g *graph, opts Options, ck *checkpoint, resume map[string]*TaskResult) *scheduler {
	s := &scheduler{
		t0:   time.Now(),
		opts: opts,
		max:  opts.maxParallel(),
		done: make(chan struct{}),
		ck:   ck,
	}
	s.ident = &jobIdent{name: opts.Name, t0: s.t0}
	s.store = newStore(len(g.nodes), opts.Context)
	s.opts.Context = nil // the store holds the copy
	s.resume = resume
	s.scopes = []*scope{{g: g, owner: -1}}
	s.nested = g.groups || slices.ContainsFunc(g.nodes, func(n gnode) bool { return n.kind == kindExpand })
	s.nodes = make([]node, 0, len(g.nodes))
	s.refs = make([]nodeRefs, 0, len(g.nodes))
	s.addNodes(0, nil)

	base, cancel := context.WithCancelCause(ctx)
	s.ctx, s.cancel = base, cancel
	if opts.Timeout > 0 {
		s.timeoutErr = &wrapError{
			msg: fmt.Sprintf("dag: %s exceeded its Timeout of %v: %v", s.jobName(), opts.Timeout, context.DeadlineExceeded),
			err: context.DeadlineExceeded,
		}
		s.ctx, s.stopTimer = context.WithTimeoutCause(base, opts.Timeout, s.timeoutErr)
	}
	s.root = &groupRun{node: -1, scope: 0, ctx: s.ctx, cancel: cancel, restorable: s.resume != nil}
	s.events, s.logged = newEventSink(opts.Events, opts.Logger, s.done)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = Running
	s.emit(Event{From: Pending, To: Running})
	// The watch runs in its own goroutine, so it may take mu; register it
	// with mu held so that it cannot act before the job is set up.
	s.stopWatch = context.AfterFunc(s.ctx, s.onContextDone)
	s.queueRoots(0)
	s.settle()
	s.spawn()
	s.maybeEnd()
	return s
}

// addNodes appends the nodes of scope k, whose declarations are those of
// its graph. inherit, for the scope of a Map, holds the fields its tasks
// take from the Map's task. s.mu is held, or the job is not running yet.
func (s *scheduler) addNodes(k int32, inherit *Task) {
	sc := s.scopes[k]
	g := sc.g
	sc.base = int32(len(s.nodes))
	for i := range g.nodes {
		gn := &g.nodes[i]
		id := int32(len(s.nodes))
		s.nodes = append(s.nodes, node{scope: k, kind: gn.kind, waiting: g.depOff[i+1] - g.depOff[i]})
		s.refs = append(s.refs, nodeRefs{})
		n, r := &s.nodes[id], &s.refs[id]
		if gn.kind == kindClose {
			continue
		}
		t := g.decls[i]
		r.fn, r.timeout, n.tolerate, n.trigger = t.Func, t.Timeout, t.ContinueOnFailure, t.Trigger
		retries := t.MaxRetries
		bo := t.Backoff
		if inherit != nil && gn.group < 0 {
			n.private = true
			retries, bo = inherit.MaxRetries, inherit.Backoff
			if r.timeout == 0 {
				r.timeout = inherit.Timeout
			}
		}
		switch retries {
		case 0:
			n.retries = int32(min(s.opts.MaxRetries, 1<<31-1))
		case NoRetries:
			n.retries = 0
		default:
			n.retries = int32(min(retries, 1<<31-1))
		}
		if t.When != nil || bo != nil || t.Expand != nil || t.collect != nil {
			x := s.extraOf(id)
			x.when, x.newBackoff, x.expand, x.collect = t.When, bo, t.Expand, t.collect
			if t.collect != nil {
				x.inherit = &Task{MaxRetries: t.MaxRetries, Timeout: t.Timeout, Backoff: t.Backoff}
			}
		}
		s.counts[Pending]++
		s.remaining++
	}
	// The graph's declarations belong to the caller: keep no reference.
	g.decls = nil
}

// queueRoots queues for decision the nodes of scope k that depend on
// nothing. s.mu is held.
func (s *scheduler) queueRoots(k int32) {
	sc := s.scopes[k]
	for i := range int32(len(sc.g.nodes)) {
		if s.nodes[sc.base+i].waiting == 0 {
			s.decide = append(s.decide, sc.base+i)
		}
	}
}

// loc returns the scope of node id and its number there.
func (s *scheduler) loc(id int32) (*scope, int32) {
	sc := s.scopes[s.nodes[id].scope]
	return sc, id - sc.base
}

// name returns node id's full name.
func (s *scheduler) name(id int32) string {
	sc, l := s.loc(id)
	return sc.g.names[l]
}

// jobName names the job in messages: `job "name"`, or "job" if unnamed.
func (s *scheduler) jobName() string {
	if s.opts.Name == "" {
		return "job"
	}
	return "job " + quote(s.opts.Name)
}

// groupOf returns the running group node id is a member of.
func (s *scheduler) groupOf(id int32) *groupRun {
	if !s.nested {
		return s.root
	}
	sc, l := s.loc(id)
	if grp := sc.g.nodes[l].group; grp >= 0 {
		return s.refs[sc.base+grp].extra.group
	}
	if sc.parent == nil {
		return s.root
	}
	return s.refs[sc.parent.base+sc.owner].extra.group
}

// tick reads the clock for the transitions about to be made. It reads
// only the monotonic clock, half the cost of time.Now. s.mu is held.
func (s *scheduler) tick() { s.clock = max(s.clock, time.Since(s.t0)) }

// stamp returns s.clock as a node time. s.mu is held.
func (s *scheduler) stamp() int64 { return int64(s.clock) + 1 }

// timeOf turns a node time back into a time.Time.
func (s *scheduler) timeOf(stamp int64) time.Time { return nodeTime(s.t0, stamp) }

// nodeTime turns a node time of a job that started at t0 back into a
// time.Time: the zero Time for 0 (unset).
func nodeTime(t0 time.Time, stamp int64) time.Time {
	if stamp == 0 {
		return time.Time{}
	}
	return t0.Add(time.Duration(stamp - 1))
}

// emit sends e to the event queue, if events are on. s.mu is held.
func (s *scheduler) emit(e Event) {
	if s.events == nil {
		return
	}
	e.Time = s.t0.Add(s.clock)
	e.Job = s.opts.Name
	s.events.push(e)
}

// transition moves node id to state to. s.mu is held.
func (s *scheduler) transition(id int32, to State, attempt int32, err error) {
	n := &s.nodes[id]
	from := n.state
	n.state = to
	if n.kind == kindClose {
		return // not a task: no count, no event
	}
	s.counts[from]--
	s.counts[to]++
	if to.Final() {
		s.remaining--
	}
	if s.events != nil {
		s.emit(Event{Task: s.name(id), From: from, To: to, Attempt: int(attempt), Err: err})
	}
}
