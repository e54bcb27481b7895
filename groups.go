package dag

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Groups: a task with Sub, and an Expand task once its Expand has returned,
// run their tasks as a sub-DAG. The group's node is Running while they run
// and holds no worker; its members' attempts run under the group's context,
// so that stopping the group (a failure in fail-fast mode, or its Timeout)
// cancels exactly them. The group ends when its close node's count of
// members reaches zero.

// errGroupEnded is the cause of a group's context once the group ended.
var errGroupEnded = errors.New("dag: the task's group ended")

// newGroupRun makes the running state of group node id, a member of
// parent, bounded by timeout if it is not 0. s.mu is held.
func (s *scheduler) newGroupRun(id int32, parent *groupRun, timeout time.Duration) *groupRun {
	ctx, cancel := context.WithCancelCause(parent.ctx)
	grp := &groupRun{node: id, parent: parent, ctx: ctx, cancel: cancel, scope: -1}
	if timeout > 0 {
		grp.timeout = &wrapError{
			msg: fmt.Sprintf("dag: group %s timed out after %v: %v", quote(s.name(id)), timeout, context.DeadlineExceeded),
			err: context.DeadlineExceeded,
		}
		tctx, stop := context.WithTimeoutCause(ctx, timeout, grp.timeout)
		grp.ctx, grp.stopTimer = tctx, stop
		grp.unwatch = context.AfterFunc(tctx, func() { s.groupExpired(grp) })
	}
	return grp
}

// close releases the group's context and timer, with cause.
func (g *groupRun) close(cause error) {
	if g.unwatch != nil {
		g.unwatch()
	}
	if g.stopTimer != nil {
		g.stopTimer()
	}
	g.cancel(cause)
}

// startGroup starts group node id (a task with Sub): its members' count
// on it is released. s.mu is held.
func (s *scheduler) startGroup(id int32, restorable bool) {
	n := &s.nodes[id]
	grp := s.newGroupRun(id, s.groupOf(id), s.refs[id].timeout)
	grp.restorable = restorable
	s.extraOf(id).group = grp
	n.started = s.stamp()
	s.transition(id, Running, 0, nil)
	s.release(id)
}

// expanded starts the tasks that attempt att of Expand task id returned,
// whose graph g the worker built, as its group, or fails the task for good
// with err if they are not a valid DAG. s.mu is held.
func (s *scheduler) expanded(id, att int32, g *graph, err error) {
	sc, l := s.loc(id)
	name := sc.g.names[l]
	if err != nil {
		s.failed(id, att, &wrapError{
			msg: fmt.Sprintf("dag: the tasks that Expand of task %s returned are not a valid DAG: %s", quote(name), inner(err)),
			err: err,
		})
		return
	}
	k := int32(len(s.scopes))
	s.scopes = append(s.scopes, &scope{g: g, parent: sc, owner: l, depth: sc.depth + 1, rankBase: sc.g.rank[l] + sc.rankBase - 1})
	x := s.extraOf(id)
	grp := s.newGroupRun(id, s.groupOf(id), 0)
	grp.scope = k
	grp.restorable = x.reusable
	x.group = grp
	var inherit *Task
	if x.collect != nil {
		inherit = x.inherit
	}
	s.addNodes(k, inherit) // s.nodes may move: no node pointer is kept
	s.queueRoots(k)
}

// groupClosedBy returns the group that close node id ends.
func (s *scheduler) groupClosedBy(id int32) *groupRun {
	sc, l := s.loc(id)
	if open := sc.g.nodes[l].pair; open >= 0 {
		return s.refs[sc.base+open].extra.group
	}
	return s.refs[sc.parent.base+sc.owner].extra.group
}

// members calls visit for every member of grp that is a task, at any
// depth, in declaration order, and returns the close nodes too through
// visit. s.mu is held.
func (s *scheduler) members(grp *groupRun, visit func(id int32)) {
	type span struct{ lo, hi int32 }
	var stack []span
	push := func(g *groupRun) {
		if g.scope >= 0 {
			sc := s.scopes[g.scope]
			stack = append(stack, span{sc.base, sc.base + int32(len(sc.g.nodes))})
			return
		}
		sc, l := s.loc(g.node)
		stack = append(stack, span{sc.base + l + 1, sc.base + sc.g.nodes[l].pair + 1})
	}
	push(grp)
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.lo == top.hi {
			stack = stack[:len(stack)-1]
			continue
		}
		id := top.lo
		top.lo++
		visit(id)
		if x := s.refs[id].extra; s.nodes[id].kind == kindExpand && x.group != nil && x.group.scope >= 0 {
			push(x.group)
		}
	}
}

// directMembers calls visit for each member of grp at its own level (a
// nested group by its open node), in declaration order. s.mu is held.
func (s *scheduler) directMembers(grp *groupRun, visit func(id int32)) {
	if grp.scope >= 0 {
		sc := s.scopes[grp.scope]
		for l := range int32(len(sc.g.nodes)) {
			if gn := &sc.g.nodes[l]; gn.group < 0 && gn.kind != kindClose {
				visit(sc.base + l)
			}
		}
		return
	}
	sc, open := s.loc(grp.node)
	for l := open + 1; l < sc.g.nodes[open].pair; l++ {
		if gn := &sc.g.nodes[l]; gn.group == open && gn.kind != kindClose {
			visit(sc.base + l)
		}
	}
}

// closeGroup ends group grp, whose members have all ended: Failed if one
// failed it, Skipped if all were skipped, else Completed (a Map then
// gathers its tasks' results). s.mu is held.
func (s *scheduler) closeGroup(grp *groupRun) {
	id := grp.node
	var closeID int32
	if grp.scope >= 0 {
		sc := s.scopes[grp.scope]
		closeID = sc.base + int32(len(sc.g.nodes)) - 1
	} else {
		sc, l := s.loc(id)
		closeID = sc.base + sc.g.nodes[l].pair
	}
	s.transition(closeID, Completed, 0, nil)
	state := Completed
	var err error
	var cause *TaskError
	switch {
	case grp.failed > 0:
		state = Failed
		err, cause = s.groupFailure(grp)
	case grp.members > 0 && grp.ran == 0:
		state = Skipped
	}
	x := s.refs[id].extra
	if state == Completed && x.collect != nil {
		var outs []map[string]any
		s.directMembers(grp, func(m int32) {
			outs = append(outs, copyMap(s.refs[m].out))
		})
		out, cerr := collect(x.collect, outs)
		if cerr == nil {
			kvs := appendKVs(nil, out)
			sc, l := s.loc(id)
			if perr := s.store.put(sc, l, kvs); perr != nil {
				grp.close(errGroupEnded)
				s.conflicted(id, s.nodes[id].attempts, perr)
				return
			}
			s.refs[id].out = copyMap(out)
		} else {
			state, err = Failed, cerr
			cause = &TaskError{Job: s.opts.Name, Task: s.name(id), Attempts: int(s.nodes[id].attempts), Err: cerr}
		}
	}
	grp.close(errGroupEnded)
	n := &s.nodes[id]
	if state == Completed && grp.restorable {
		n.reused = true
		s.directMembers(grp, func(m int32) { n.reused = n.reused && s.nodes[m].reused })
	}
	s.endWith(id, state, n.attempts, err)
	s.taskEnded(id, cause)
}

// collect runs a Map's gathering, turning a panic into a *PanicError.
func collect(fn func([]map[string]any) (map[string]any, error), outs []map[string]any) (out map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, newPanicError(r)
		}
	}()
	return fn(outs)
}

// groupFailure returns the error of group grp, which members failed: one
// *TaskError per member that failed it, in declaration order (a nested
// group stands for its own), joined; and the first, to report. s.mu is
// held.
func (s *scheduler) groupFailure(grp *groupRun) (error, *TaskError) {
	var errs []error
	var first *TaskError
	s.directMembers(grp, func(m int32) {
		n := &s.nodes[m]
		if n.state != Failed || n.tolerate {
			return
		}
		var te *TaskError
		x := s.refs[m].extra
		if n.kind == kindOpen || (n.kind == kindExpand && x.group != nil) {
			if errors.As(x.err, &te) {
				errs = append(errs, x.err)
			} else {
				te = &TaskError{Job: s.opts.Name, Task: s.name(m), Attempts: int(n.attempts), Err: x.err}
				errs = append(errs, te)
			}
		} else {
			te = &TaskError{Job: s.opts.Name, Task: s.name(m), Attempts: int(n.attempts), Err: x.err}
			errs = append(errs, te)
		}
		if first == nil {
			first = te
		}
	})
	if len(errs) == 1 {
		return errs[0], first
	}
	return errors.Join(errs...), first
}

// stopGroup stops group grp early because a member failed it (fail-fast
// mode) or its Timeout passed: its members that have not ended are
// canceled, their running attempts' contexts too, and the group ends Failed
// with cause. s.mu is held.
func (s *scheduler) stopGroup(grp *groupRun, cause *TaskError) {
	grp.stopped = true
	grp.close(cause)
	canceled := s.cancelUnended(func(visit func(int32)) { s.members(grp, visit) }, cause)
	s.wakeHanded() // attempts handed out for canceled tasks see their context at once
	for _, w := range s.running {
		if !w.detached && !w.timedOut && s.nodes[w.id].state == Canceled {
			s.graceFor(w, w.att)
		}
	}
	// Tasks outside the group that depend on a canceled member by its
	// path decide now; those inside have ended.
	for _, id := range canceled {
		if s.nodes[id].kind != kindClose {
			s.release(s.releaseNode(id))
		}
	}
	id := grp.node
	var err error = cause
	if cause.Task == s.name(id) {
		err = cause.Err // the group's own timeout
	}
	s.endWith(id, Failed, s.nodes[id].attempts, err)
	s.taskEnded(id, cause)
}

// releaseNode returns the node whose end lets node id's dependents go: a
// group's close node, or the node itself.
func (s *scheduler) releaseNode(id int32) int32 {
	if s.nodes[id].kind == kindOpen {
		sc, l := s.loc(id)
		return sc.base + sc.g.nodes[l].pair
	}
	return id
}

// groupExpired stops group grp when its Timeout passes.
func (s *scheduler) groupExpired(grp *groupRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Running || grp.stopped || s.nodes[grp.node].state != Running || context.Cause(grp.ctx) != grp.timeout {
		return
	}
	s.tick()
	s.expireGroup(grp)
	s.settle()
	s.spawn()
	s.maybeEnd()
}

// expireGroup fails group grp for its Timeout. s.mu is held.
func (s *scheduler) expireGroup(grp *groupRun) {
	grp.timedOut = true
	s.stopGroup(grp, &TaskError{Job: s.opts.Name, Task: s.name(grp.node), Err: grp.timeout})
}

// checkGroups stops the groups around node id whose Timeout has passed but
// whose watch has not run yet, outermost first, so that an attempt
// failing because of it is not taken for a failure of the task. A group
// that has ended already (its last task ended between its Timeout passing
// and its watch running; id's attempt is then a late one) is left as it
// ended. s.mu is held.
func (s *scheduler) checkGroups(id int32) {
	var expired []*groupRun
	for g := s.groupOf(id); g != s.root; g = g.parent {
		if !g.stopped && g.timeout != nil && s.nodes[g.node].state == Running && context.Cause(g.ctx) == g.timeout {
			expired = append(expired, g)
		}
	}
	for i := len(expired) - 1; i >= 0; i-- {
		if g := expired[i]; !g.stopped && s.state == Running {
			s.expireGroup(g)
		}
	}
}

// tolerated reports whether a failure of node id is tolerated at the job
// level: the node or a group around it has ContinueOnFailure. s.mu is held.
func (s *scheduler) tolerated(id int32) bool {
	if s.nodes[id].tolerate {
		return true
	}
	for g := s.groupOf(id); g != s.root; g = g.parent {
		if s.nodes[g.node].tolerate {
			return true
		}
	}
	return false
}

// inOrder calls visit for every task of the job in declaration order, the
// tasks of an Expand in its place, groups before their members. s.mu is
// held.
func (s *scheduler) inOrder(visit func(id int32)) {
	s.members(s.root, func(id int32) {
		if s.nodes[id].kind != kindClose {
			visit(id)
		}
	})
}

// keepGoingError returns Wait's error for a job that ran to its end with
// KeepGoing and failed: one *TaskError per task that failed and is not
// tolerated at the job level (a group only when its own Timeout failed
// it), in declaration order. s.mu is held.
func (s *scheduler) keepGoingError() error {
	var errs []error
	s.inOrder(func(id int32) {
		n := &s.nodes[id]
		if n.state != Failed || s.tolerated(id) {
			return
		}
		x := s.refs[id].extra
		if x != nil && x.group != nil && !x.group.timedOut {
			return // a group that its members failed: they stand for it
		}
		errs = append(errs, &TaskError{Job: s.opts.Name, Task: s.name(id), Attempts: int(n.attempts), Err: x.err})
	})
	return errors.Join(errs...)
}

// result builds the job's Result as it is now: final says that the job
// has ended, so that the Result may take the tasks' outputs as they are,
// rather than copies. s.mu is held.
//
// It visits the nodes scope by scope, in the order they were added, rather
// than through the groups: the map's order does not matter, and a walk of
// the table reads each scope's names in sequence.
func (s *scheduler) result(final bool) Result {
	res := Result{
		State:   s.state,
		Context: s.store.final(),
		Tasks:   make(map[string]TaskResult, len(s.nodes)),
	}
	for _, sc := range s.scopes {
		for l, name := range sc.g.names {
			id := sc.base + int32(l)
			if s.nodes[id].kind != kindClose {
				res.Tasks[name] = s.taskResult(id, final)
			}
		}
	}
	return res
}

// taskResult returns node id's TaskResult as it is now, with its output
// itself if final, else a copy. s.mu is held.
func (s *scheduler) taskResult(id int32, final bool) TaskResult {
	n, r := &s.nodes[id], &s.refs[id]
	tr := TaskResult{
		State:     n.state,
		Attempts:  int(n.attempts),
		Started:   s.timeOf(n.started),
		Finished:  s.timeOf(n.finished),
		Abandoned: int(n.abandoned),
		Restored:  n.restored,
	}
	x := r.extra
	if x != nil {
		tr.Err = x.err
	}
	if n.state == Completed {
		tr.Output = r.out
		if !final {
			tr.Output = copyMap(r.out)
		}
	}
	if n.restored && x != nil && x.from != nil {
		tr.Attempts, tr.Started, tr.Finished = x.from.Attempts, x.from.Started, x.from.Finished
	}
	return tr
}
