package dag

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// The scheduler has no goroutine of its own. Workers run attempts and, after
// each, take the job's lock once to record the outcome, release the tasks
// that were waiting on it and pick the next ready task; timers (retry delays,
// attempt timeouts, the grace period) and the context watch take the same
// lock for their transitions. One lock keeps every transition, and the
// events that record them, in one order, and it is held for a few hundred
// nanoseconds at a time.
//
// Workers are started lazily, up to MaxParallel, when a task becomes ready
// and no worker is free, and a worker ends when no task is ready. Only tasks
// that can run take a worker: a task waiting for its dependencies or for a
// retry delay holds none, so no configuration of MaxParallel can deadlock.

// worker is one goroutine running attempts. Its fields are guarded by j.mu.
type worker struct {
	t, att int32 // the task and attempt it runs
	// timedOut is set when the attempt passed its Timeout: the attempt has
	// failed already, and what Func returns is discarded.
	timedOut bool
	// detached is set when the job stops counting this worker: its attempt
	// outlived its context by the grace period. The goroutine ends as soon
	// as Func returns.
	detached bool
	idx      int // in j.running; -1 once dropped
	// out is where the worker copies each output, reused across attempts.
	// Only the worker's goroutine uses it.
	out []kv
}

// emit sends e to the event queue, if events are on. j.mu is held.
func (j *Job) emit(e Event) {
	if j.events == nil {
		return
	}
	e.Time = j.t0.Add(j.clock)
	e.Job = j.opts.Name
	j.events.push(e)
}

// transition moves task t to state to. j.mu is held.
func (j *Job) transition(t int32, to State, attempt int32, err error) {
	n := &j.nodes[t]
	from := n.state
	n.state = to
	j.counts[from]--
	j.counts[to]++
	if to.Final() {
		j.remaining--
	}
	if j.events != nil {
		j.emit(Event{Task: j.g.names[t], From: from, To: to, Attempt: int(attempt), Err: err})
	}
}

// makeReady queues task t for its next attempt. j.mu is held.
func (j *Job) makeReady(t int32) {
	j.transition(t, Ready, j.nodes[t].attempts+1, nil)
	j.push(t)
}

// spawn starts workers for ready tasks while fewer than MaxParallel run.
// j.mu is held.
func (j *Job) spawn() {
	for j.state == Running && len(j.running) < j.max && len(j.ready) > 0 {
		w := &worker{idx: len(j.running)}
		j.running = append(j.running, w)
		j.start(w, j.pop())
		go j.work(w)
	}
}

// start makes w run the next attempt of task t. j.mu is held.
func (j *Job) start(w *worker, t int32) {
	n := &j.nodes[t]
	n.attempts++
	if n.attempts == 1 {
		n.started = j.stamp()
	}
	w.t, w.att, w.timedOut = t, n.attempts, false
	j.transition(t, Running, n.attempts, nil)
}

// drop stops counting w as a running worker. j.mu is held.
func (j *Job) drop(w *worker) {
	last := j.running[len(j.running)-1]
	last.idx = w.idx
	j.running[w.idx] = last
	j.running[len(j.running)-1] = nil
	j.running = j.running[:len(j.running)-1]
	w.idx = -1
}

func (j *Job) work(w *worker) {
	for j.attempt(w) {
	}
}

// attempt runs w's attempt, records its outcome and reports whether w has
// another attempt to run.
func (j *Job) attempt(w *worker) bool {
	// Only this goroutine writes w.t and w.att (and spawn, before starting
	// it), and a task's fn and timeout never change: no lock needed.
	t, att := w.t, w.att
	fn, timeout := j.nodes[t].fn, j.nodes[t].timeout

	ctx := j.ctx
	var timeoutErr error
	if timeout > 0 {
		timeoutErr = &wrapError{
			msg: fmt.Sprintf("dag: task %s timed out after %v: %v", quote(j.g.names[t]), timeout, context.DeadlineExceeded),
			err: context.DeadlineExceeded,
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, timeoutErr)
		defer cancel()
		actx := ctx
		defer context.AfterFunc(ctx, func() { j.expire(w, t, att, actx, timeoutErr) })()
	}

	returned := false
	defer func() {
		if !returned {
			// Func called runtime.Goexit, which ends this goroutine once
			// the deferred calls have run: record the failure, and let
			// another worker take over.
			j.finish(w, nil, errGoexit, false, false)
		}
	}()
	out, err := call(ctx, fn, Values{s: j.store, t: t})
	returned = true
	if timeoutErr != nil && context.Cause(ctx) == timeoutErr {
		out, err = nil, timeoutErr // too late: the result is discarded
	}
	permanent := false
	if err != nil {
		// Outside the lock: this runs the error's own methods.
		err, permanent = classify(err)
	}
	return j.finish(w, out, err, permanent, true)
}

// call runs fn, turning a panic into a *PanicError.
func call(ctx context.Context, fn TaskFunc, in Values) (out map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, newPanicError(r)
		}
	}()
	return fn(ctx, in)
}

// classify reports whether err asks for no retry: it is, or wraps, a
// *backoff.PermanentError. An error that is one is replaced by the error it
// holds; a wrapped one is kept whole, so that nothing the task said is lost
// (a *PanicError and its stack, or a message around it). An error whose
// methods panic is kept as it is, and is not permanent.
func classify(err error) (out error, permanent bool) {
	defer func() {
		if recover() != nil {
			out, permanent = err, false
		}
	}()
	if p, ok := err.(*backoff.PermanentError); ok {
		if p.Err == nil {
			return err, true
		}
		return p.Err, true
	}
	var p *backoff.PermanentError
	return err, errors.As(err, &p)
}

// finish records the outcome of w's attempt and reports whether w has
// another attempt to run; cont is false when the goroutine is ending.
// permanent says that err asks for no retry.
func (j *Job) finish(w *worker, out map[string]any, err error, permanent, cont bool) bool {
	// Copy the output before taking the lock: dag keeps no reference to the
	// task's map.
	kvs := w.out[:0]
	if err == nil {
		for k, v := range out {
			kvs = append(kvs, kv{k, v})
		}
	}
	defer func() {
		clear(kvs) // keep no reference to the values
		w.out = kvs[:0]
	}()

	j.mu.Lock()
	defer j.mu.Unlock()
	// Read the clock under the lock, so that event times never go back.
	j.tick()
	if j.state == Running && j.ctx.Err() != nil {
		// The job's context ended and the watch has not run yet: stop
		// first, so that an attempt failing because of it is not taken for
		// a failure of the task.
		j.contextEnded()
	}
	n := &j.nodes[w.t]
	if w.detached {
		// The job gave up on this attempt and no longer counts w.
		n.abandoned--
		j.abandoned--
		return false
	}
	switch {
	case w.timedOut:
		// The attempt failed at its deadline; this is its late result.
	case n.state != Running || n.attempts != w.att:
		// The job stopped and cancelled the task.
	case err != nil:
		j.attemptFailed(w.t, w.att, err, permanent)
	default:
		if err := j.store.put(w.t, kvs); err != nil {
			// Two unordered writers of a key: a bug in the job's design
			// that a retry cannot fix, so it fails the job even with
			// ContinueOnFailure.
			j.failed(w.t, w.att, err, true)
			break
		}
		if n.x != nil {
			n.x.err = nil
		}
		n.finished = j.stamp()
		j.transition(w.t, Completed, w.att, nil)
		j.release(w.t)
	}
	if cont && j.state == Running && len(j.ready) > 0 {
		j.start(w, j.pop())
		j.spawn()
		return true
	}
	j.drop(w)
	j.spawn()
	j.maybeEnd()
	return false
}

// release lets the tasks waiting on task t go ahead. j.mu is held.
func (j *Job) release(t int32) {
	for _, o := range j.g.outsOf(t) {
		n := &j.nodes[o]
		if n.waiting--; n.waiting == 0 && n.state == Pending {
			j.makeReady(o)
		}
	}
}

// attemptFailed retries task t after attempt att failed with err, or fails
// it; permanent forbids a retry. j.mu is held.
func (j *Job) attemptFailed(t, att int32, err error, permanent bool) {
	n := &j.nodes[t]
	if permanent || att > n.retries {
		j.failed(t, att, err, false)
		return
	}
	x := n.extra()
	var berr error
	if x.backoff == nil {
		x.backoff, berr = j.opts.newBackOff()
	}
	d := backoff.Stop
	if berr == nil {
		d, berr = nextDelay(x.backoff)
	}
	if d == backoff.Stop {
		if berr != nil {
			err = errors.Join(err, berr)
		}
		j.failed(t, att, err, false)
		return
	}
	x.err = err
	j.transition(t, Retrying, att, err)
	if d <= 0 {
		j.makeReady(t)
		return
	}
	// The delay runs on a timer, not on a worker: a task waiting to retry
	// holds no worker and blocks no other task.
	x.retry = time.AfterFunc(d, func() { j.retryNow(t) })
}

// retryNow ends task t's retry delay.
func (j *Job) retryNow(t int32) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := &j.nodes[t]
	if n.state != Retrying || j.state != Running {
		return
	}
	j.tick()
	n.x.retry = nil
	j.makeReady(t)
	j.spawn()
}

// failed fails task t for good, and the job with it unless the task has
// ContinueOnFailure and the error is not a conflict. j.mu is held.
func (j *Job) failed(t, att int32, err error, conflict bool) {
	n := &j.nodes[t]
	n.extra().err = err
	n.finished = j.stamp()
	j.transition(t, Failed, att, err)
	if n.cont && !conflict {
		j.release(t)
		return
	}
	j.stop(Failed, &TaskError{Job: j.opts.Name, Task: j.g.names[t], Attempts: int(att), Err: err})
}

// expire fails attempt att of task t, run by w, when its Timeout passes.
// The task moves on at once: to Retrying, or to Failed. The attempt's Func
// may go on running: w keeps its place among the MaxParallel workers for
// the grace period, so that a Func that ignores its context does not free
// a slot at once, and is then detached and counted as abandoned.
func (j *Job) expire(w *worker, t, att int32, ctx context.Context, timeoutErr error) {
	if context.Cause(ctx) != timeoutErr {
		return // the job's context ended: stop handles it
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	// The attempt may have returned before this ran: w may have moved on
	// to another attempt, or ended, and the task may run its next attempt
	// on another worker.
	n := &j.nodes[t]
	if w.idx < 0 || w.detached || w.t != t || w.att != att || w.timedOut || n.attempts != att || n.state != Running {
		return
	}
	j.tick()
	w.timedOut = true
	j.attemptFailed(w.t, att, timeoutErr, false)
	j.spawn()
	j.graceFor(w, att)
}

// graceFor detaches w after the grace period if it still runs attempt att.
// j.mu is held.
func (j *Job) graceFor(w *worker, att int32) {
	t := w.t
	time.AfterFunc(abandonGrace, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		// w may have returned within the grace period (and been dropped),
		// or be running a later attempt.
		if w.idx >= 0 && !w.detached && w.t == t && w.att == att && !j.ended {
			j.tick()
			j.detach(w)
			j.spawn()
			j.maybeEnd()
		}
	})
}

// detach abandons w's attempt: the job stops counting w. j.mu is held.
func (j *Job) detach(w *worker) {
	w.detached = true
	j.drop(w)
	j.nodes[w.t].abandoned++
	j.abandoned++
}

// The ready queue is a binary heap of keys that order tasks critical path
// first (the highest rank), then in declaration order, packed into one
// integer: comparing keys touches no other memory. A heap
// of integers rather than container/heap also avoids boxing each push.

func (j *Job) readyKey(t int32) uint64 {
	return uint64(1<<31-1-j.g.rank[t])<<32 | uint64(t)
}

func (j *Job) push(t int32) {
	h := append(j.ready, j.readyKey(t))
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	j.ready = h
}

func (j *Job) pop() int32 {
	h := j.ready
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r] < h[c] {
			c = r
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	j.ready = h
	return int32(uint32(top))
}
