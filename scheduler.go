package dag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

	t0 time.Time // when Run started the job

	mu        sync.Mutex
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
	remaining int            // guarded by mu: tasks (not close nodes) not in a final state
	abandoned int            // guarded by mu: abandoned attempts not returned yet
	state     State          // guarded by mu: the job's state
	ended     bool           // guarded by mu: the job has ended
	err       error          // guarded by mu: why the job failed or was canceled
	grace     *time.Timer    // guarded by mu: ends the abandon grace period
	decide    []int32        // guarded by mu: nodes whose dependencies have all ended, to decide
	saving    int            // guarded by mu: checkpoint Saves running (see deferSave)
	actxs     []attemptCtx   // guarded by mu: attempt contexts not handed out yet
	kvs       []kv           // guarded by mu: the chunk that keepOut copies outputs to
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
	out     []kv // a Completed task's output, as copied
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

func newScheduler(ctx context.Context, g *graph, opts Options, ck *checkpoint) *scheduler {
	s := &scheduler{
		t0:   time.Now(),
		opts: opts,
		max:  opts.maxParallel(),
		done: make(chan struct{}),
		ck:   ck,
	}
	s.store = newStore(len(g.nodes), opts.Context)
	s.opts.Context = nil // the store holds the copy
	if opts.Resume != nil {
		s.resume = make(map[string]*TaskResult, len(opts.Resume.Tasks))
		for name, tr := range opts.Resume.Tasks {
			if tr.State == Completed {
				s.resume[name] = &tr
			}
		}
	}
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
func (s *scheduler) timeOf(stamp int64) time.Time {
	if stamp == 0 {
		return time.Time{}
	}
	return s.t0.Add(time.Duration(stamp - 1))
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

// settle decides every queued node, and the nodes their ending lets
// through, until none is left. s.mu is held.
func (s *scheduler) settle() {
	// First in, first out: tasks let through together become ready in
	// declaration order, as their events show.
	for k := 0; k < len(s.decide); k++ {
		id := s.decide[k]
		if s.nodes[id].state == Pending && s.state == Running {
			s.decideNode(id)
		}
	}
	s.decide = s.decide[:0]
}

// release counts down the dependents of node id, which has ended (or, for
// a group's open node, started), and queues those it lets through. s.mu is
// held.
func (s *scheduler) release(id int32) {
	sc, l := s.loc(id)
	for _, o := range sc.g.outsOf(l) {
		n := &s.nodes[sc.base+o]
		if n.waiting--; n.waiting == 0 && n.state == Pending {
			s.decide = append(s.decide, sc.base+o)
		}
	}
}

// decideNode applies node id's trigger rule, then its When, now that every
// dependency has ended: it runs, or ends without running. s.mu is held.
func (s *scheduler) decideNode(id int32) {
	n := &s.nodes[id]
	sc, l := s.loc(id)
	gn := &sc.g.nodes[l]
	if n.kind == kindClose {
		s.closeGroup(s.groupClosedBy(id))
		return
	}
	var c tally
	reused := s.resume != nil && s.groupOf(id).restorable
	for _, d := range sc.g.depsOf(l) {
		if d == gn.group {
			continue // the group's open node: not a dependency the task declared
		}
		if sc.g.nodes[d].kind == kindClose {
			d = sc.g.nodes[d].pair // a group: its state is its open node's
		}
		dn := &s.nodes[sc.base+d]
		c.add(dn.state, dn.tolerate)
		reused = reused && dn.reused
	}
	if verdict := n.trigger.decide(c); verdict != Running {
		s.endUnrun(id, verdict, nil)
		return
	}
	if reused && n.kind == kindFunc {
		if tr, ok := s.resume[sc.g.names[l]]; ok {
			s.restore(id, tr)
			return
		}
	}
	if x := s.refs[id].extra; x != nil && x.when != nil {
		ok, err := s.askWhen(id, x.when)
		if err != nil {
			n.finished = s.stamp()
			x.err = err
			if n.kind == kindOpen {
				// The group's tasks do not run because it failed.
				s.endMembers(id, UpstreamFailed)
			}
			s.transition(id, Failed, 0, err)
			s.taskEnded(id, &TaskError{Job: s.opts.Name, Task: s.name(id), Err: err})
			return
		}
		if !ok {
			s.endUnrun(id, Skipped, nil)
			return
		}
	}
	if n.kind == kindOpen {
		s.startGroup(id, reused)
		return
	}
	if n.kind == kindExpand {
		s.extraOf(id).reusable = reused
	}
	s.makeReady(id)
}

// askWhen calls a task's When with what the task would see, turning a
// panic into a *PanicError. It runs under the job's lock, as the decision
// must. s.mu is held.
func (s *scheduler) askWhen(id int32, when func(Values) bool) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, newPanicError(r)
		}
	}()
	sc, l := s.loc(id)
	return when(Values{s: s.store, sc: sc, t: l}), nil
}

// endUnrun ends node id, which did not run, in state to (Skipped,
// UpstreamFailed or Canceled); a group's members end the same way. s.mu is
// held.
func (s *scheduler) endUnrun(id int32, to State, err error) {
	n := &s.nodes[id]
	n.finished = s.stamp()
	if n.kind == kindOpen {
		s.endMembers(id, to)
		s.transition(id, to, n.attempts, err)
		sc, l := s.loc(id)
		s.release(sc.base + sc.g.nodes[l].pair)
		s.tallyIn(s.groupOf(id), id)
		return
	}
	s.transition(id, to, n.attempts, err)
	s.taskEnded(id, nil)
}

// endMembers ends every member of group node id that has not ended, nested
// groups' members included, and its close node, in state to, without
// running them. The tasks outside the group that depend on a member by its
// path are released; the group's own dependents are the caller's. s.mu is
// held.
func (s *scheduler) endMembers(id int32, to State) {
	sc, l := s.loc(id)
	first, end := sc.base+l+1, sc.base+sc.g.nodes[l].pair
	at := s.nodes[id].finished
	for m := first; m <= end; m++ {
		if mn := &s.nodes[m]; !mn.state.Final() {
			mn.finished = at
			s.transition(m, to, mn.attempts, nil)
		}
	}
	// Dependents inside the group have ended with it: only those outside
	// are let through.
	for m := first; m < end; m++ {
		s.release(m)
	}
}

// restore ends node id Completed from an earlier run's result, without
// running it. s.mu is held.
func (s *scheduler) restore(id int32, tr *TaskResult) {
	n := &s.nodes[id]
	out := make([]kv, 0, len(tr.Output))
	for k, v := range tr.Output {
		out = append(out, kv{k, v})
	}
	if !n.private {
		sc, l := s.loc(id)
		if err := s.store.put(sc, l, out); err != nil {
			s.conflicted(id, 0, err)
			return
		}
	}
	s.refs[id].out = out
	n.restored, n.reused = true, true
	n.attempts = int32(tr.Attempts)
	s.extraOf(id).from = tr
	s.transition(id, Completed, 0, nil)
	s.taskEnded(id, nil)
}

// taskEnded handles node id reaching a final state: its group counts it, its
// dependents count it down, and a failure that is not tolerated stops its
// group (fail-fast) or is left to the trigger rules (KeepGoing). cause is
// the *TaskError of a failure. s.mu is held.
func (s *scheduler) taskEnded(id int32, cause *TaskError) {
	n := &s.nodes[id]
	s.release(s.releaseNode(id))
	grp := s.groupOf(id)
	s.tallyIn(grp, id)
	if n.state != Failed || n.tolerate || s.opts.KeepGoing || grp.stopped {
		return
	}
	if grp == s.root {
		if s.state == Running {
			s.stop(Failed, cause)
		}
		return
	}
	s.stopGroup(grp, cause)
}

// tallyIn counts member id's end in its group grp. s.mu is held.
func (s *scheduler) tallyIn(grp *groupRun, id int32) {
	n := &s.nodes[id]
	grp.members++
	if n.state == Failed && !n.tolerate {
		grp.failed++
	}
	if n.state != Skipped {
		grp.ran++
	}
}

// makeReady queues task id for its next attempt. s.mu is held.
func (s *scheduler) makeReady(id int32) {
	s.transition(id, Ready, s.nodes[id].attempts+1, nil)
	s.push(id)
}

// failed fails task id for good after attempt att failed with err, and
// ends it. s.mu is held.
func (s *scheduler) failed(id, att int32, err error) {
	n := &s.nodes[id]
	s.extraOf(id).err = err
	n.finished = s.stamp()
	s.transition(id, Failed, att, err)
	s.taskEnded(id, &TaskError{Job: s.opts.Name, Task: s.name(id), Attempts: int(att), Err: err})
}

// conflicted fails the job for a conflict (err, from the store), whatever
// KeepGoing and ContinueOnFailure say: two unordered writers of a key are
// a bug in the job's design that no retry fixes. Task id (attempt att)
// made the write, which was not kept, and ends Failed; the job's
// *TaskError blames the writer declared later, which may be the other one,
// so that the error does not depend on which finished first. s.mu is held.
func (s *scheduler) conflicted(id, att int32, err error) {
	blamed := id
	if b, ok := err.(*blamedError); ok {
		blamed = b.blame.sc.base + b.blame.task
		err = b.err
	}
	n := &s.nodes[id]
	s.extraOf(id).err = err
	n.finished = s.stamp()
	s.transition(id, Failed, att, err)
	if s.state == Running {
		s.stop(Failed, &TaskError{Job: s.opts.Name, Task: s.name(blamed), Attempts: int(s.nodes[blamed].attempts), Err: err})
	}
}

// attemptFailed retries task id after attempt att failed with err, or fails
// it; permanent forbids a retry. s.mu is held.
func (s *scheduler) attemptFailed(id, att int32, err error, permanent bool) {
	n := &s.nodes[id]
	if permanent || att > n.retries {
		s.failed(id, att, err)
		return
	}
	x := s.extraOf(id)
	var berr error
	if x.backoff == nil {
		x.backoff, berr = s.opts.newBackOff(x.newBackoff)
	}
	d := backoff.Stop
	if berr == nil {
		d, berr = nextDelay(x.backoff)
	}
	if d == backoff.Stop {
		if berr != nil {
			err = errors.Join(err, berr)
		}
		s.failed(id, att, err)
		return
	}
	x.err = err
	s.transition(id, Retrying, att, err)
	if d <= 0 {
		s.makeReady(id)
		return
	}
	// The delay runs on a timer, not on a worker: a task waiting to retry
	// holds no worker and blocks no other task.
	x.retry = time.AfterFunc(d, func() { s.retryNow(id) })
}

// retryNow ends task id's retry delay.
func (s *scheduler) retryNow(id int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.nodes[id]
	if n.state != Retrying || s.state != Running {
		return
	}
	s.tick()
	s.refs[id].extra.retry = nil
	s.makeReady(id)
	s.spawn()
}

// onContextDone stops the job when its context ends for a reason of its
// own: the caller's ctx, or Options.Timeout. Stops by Cancel or by a failed
// task cancel the context too, and are ignored here.
func (s *scheduler) onContextDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Running {
		return
	}
	s.tick()
	s.contextEnded()
}

// contextEnded stops the job because its context ended. s.mu is held.
func (s *scheduler) contextEnded() {
	err := context.Cause(s.ctx)
	if err != s.timeoutErr {
		// The caller's ctx ended: say so, matching its Err, with its cause.
		msg := fmt.Sprintf("dag: %s stopped because its context ended: %v", s.jobName(), s.ctx.Err())
		if err != nil && err != s.ctx.Err() {
			msg += fmt.Sprintf(" (cause: %v)", err)
		}
		err = &wrapError{msg: msg, err: s.ctx.Err()}
	}
	s.stop(Canceled, err)
}

// stop ends the job early with state and err: cancels every attempt's
// context, cancels every task not ended, and ends the job once the running
// attempts have returned or the grace period has passed. s.mu is held.
func (s *scheduler) stop(state State, err error) {
	s.state, s.err = state, err
	s.root.stopped = true
	s.cancel(err)
	// Tasks first, in declaration order, then the groups, inner ones
	// (numbered after the groups they are in) first: a group's event comes
	// after its tasks'.
	var groups []int32
	for i := range s.nodes {
		n := &s.nodes[i]
		if n.state.Final() {
			continue
		}
		if x := s.refs[i].extra; x != nil {
			if x.retry != nil {
				x.retry.Stop()
				x.retry = nil
			}
			if x.group != nil {
				x.group.close(err)
			}
		}
		if x := s.refs[i].extra; n.kind == kindOpen || (x != nil && x.group != nil) {
			groups = append(groups, int32(i))
			continue
		}
		n.finished = s.stamp()
		s.transition(int32(i), Canceled, n.attempts, nil)
	}
	for _, id := range slices.Backward(groups) {
		n := &s.nodes[id]
		n.finished = s.stamp()
		s.transition(id, Canceled, n.attempts, nil)
	}
	s.clearReady()
	s.decide = s.decide[:0]
	s.dismiss()
	if len(s.running) > 0 {
		s.grace = time.AfterFunc(abandonGrace, s.abandonAll)
	}
	s.maybeEnd()
}

// abandonAll ends the grace period of a stopping job: attempts still
// running are abandoned, and the job ends.
func (s *scheduler) abandonAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.tick()
	for len(s.running) > 0 {
		s.detach(s.running[len(s.running)-1])
	}
	s.maybeEnd()
}

// maybeEnd ends the job if every task has ended and no worker runs. s.mu
// is held.
func (s *scheduler) maybeEnd() {
	if s.remaining > 0 || len(s.running) > 0 || s.ended || len(s.decide) > 0 || s.saving > 0 {
		return
	}
	s.ended = true
	s.dismiss()
	if s.state == Running {
		s.state = Completed
		if s.root.failed > 0 {
			s.state = Failed
			s.err = s.keepGoingError()
		}
	}
	if s.grace != nil {
		s.grace.Stop()
	}
	s.stopWatch()
	if s.stopTimer != nil {
		s.stopTimer()
	}
	// Abandoned attempts learn from their context that the job is over.
	s.cancel(fmt.Errorf("dag: %s ended: %w", s.jobName(), context.Canceled))
	s.doneResult, s.doneErr = s.result(), s.err
	s.emit(Event{From: Running, To: s.state, Err: s.err})
	if s.events != nil {
		s.events.close()
	}
	if s.ck != nil {
		// Clearing the checkpoint and releasing its lock are I/O: they
		// run outside the lock, and Wait returns after them.
		go s.ck.finish(s.state == Completed, &s.doneErr, s.done)
		return
	}
	close(s.done)
}
