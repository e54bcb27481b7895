package dag

import (
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Failures and retries of tasks.

// endWith ends task id in state to after attempt att, with err as the
// TaskResult's Err. The caller then lets the end take effect (taskEnded,
// or stop). s.mu is held.
func (s *scheduler) endWith(id int32, to State, att int32, err error) {
	s.extraOf(id).err = err
	s.nodes[id].finished = s.stamp()
	s.transition(id, to, att, err)
}

// failed fails task id for good after attempt att failed with err, and
// ends it. s.mu is held.
func (s *scheduler) failed(id, att int32, err error) {
	s.endWith(id, Failed, att, err)
	s.taskEnded(id, &TaskError{Job: s.opts.Name, Task: s.name(id), Attempts: int(att), Err: err})
}

// storeFailed fails task id, and the job with it, because the checkpoint
// store failed while attempt att saved its output (err wraps the store's
// error). s.mu is held.
func (s *scheduler) storeFailed(id, att int32, err error) {
	s.endWith(id, Failed, att, err)
	s.stop(Failed, &TaskError{Job: s.opts.Name, Task: s.name(id), Attempts: int(att), Err: err})
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
	s.endWith(id, Failed, att, err)
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
