package dag

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// How a job ends: its tasks all ended, or it stopped (a failure in
// fail-fast mode, Cancel, its context, Options.Timeout).

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
	s.cancelUnended(func(visit func(int32)) {
		for i := range s.nodes {
			visit(int32(i))
		}
	}, err)
	s.clearReady()
	s.decide = s.decide[:0]
	s.wakeHanded()
	s.dismiss()
	if len(s.running) > 0 {
		s.grace = time.AfterFunc(abandonGrace, s.abandonAll)
	}
	s.maybeEnd()
}

// cancelUnended ends Canceled every node that each visits and that has not
// ended, and returns them in the order their events came: its retry timer
// stops, a group among them is marked stopped and its context closed with
// cause, and the tasks end first, in the order visited, then the groups,
// inner ones (visited after the groups they are in) first, so that a
// group's event comes after its tasks'. s.mu is held.
func (s *scheduler) cancelUnended(each func(visit func(id int32)), cause error) []int32 {
	var canceled, groups []int32
	each(func(id int32) {
		n := &s.nodes[id]
		if n.state.Final() {
			return
		}
		x := s.refs[id].extra
		if x != nil {
			if x.retry != nil {
				x.retry.Stop()
				x.retry = nil
			}
			if x.group != nil {
				x.group.stopped = true
				x.group.close(cause)
			}
		}
		if n.kind == kindOpen || (x != nil && x.group != nil) {
			groups = append(groups, id)
			return
		}
		n.finished = s.stamp()
		s.transition(id, Canceled, n.attempts, nil)
		canceled = append(canceled, id)
	})
	for _, id := range slices.Backward(groups) {
		n := &s.nodes[id]
		n.finished = s.stamp()
		s.transition(id, Canceled, n.attempts, nil)
		canceled = append(canceled, id)
	}
	return canceled
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
	s.doneResult, s.doneErr = s.result(true), s.err
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
