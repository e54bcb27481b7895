package dag

// Decisions: once every dependency of a task has ended, its trigger rule,
// then its When, say whether it runs; a task that ends without running (or
// is restored) lets its dependents through in turn, by a work list.

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
	out := appendKVs(nil, tr.Output)
	if !n.private {
		sc, l := s.loc(id)
		if err := s.store.put(sc, l, out); err != nil {
			s.conflicted(id, 0, err)
			return
		}
	}
	s.refs[id].out = copyMap(tr.Output)
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
