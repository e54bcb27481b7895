package dag

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// worker runs attempts on one goroutine, started the first time the worker
// is woken. Its fields are guarded by s.mu, except those the comments say
// only the worker's goroutine uses.
type worker struct {
	id, att int32 // the node and attempt it runs
	// timedOut is set when the attempt passed its Timeout: the attempt has
	// failed already, and what Func returns is discarded.
	timedOut bool
	// detached is set when the job stops counting this worker: its attempt
	// outlived its context by the grace period. The goroutine ends as soon
	// as Func returns.
	detached bool
	idx      int // in s.running; -1 once dropped
	// exit is set, under s.mu, before an idle w is woken to end.
	exit bool
	// born is set when w's goroutine starts; an idle worker that was never
	// woken has none.
	born bool
	// handed is set while w holds an attempt that its goroutine has not
	// taken up yet (w is in s.running and in s.handed).
	handed bool
	// woken is set from when w is woken until its goroutine takes s.mu.
	woken bool
	// kept marks w while queueHanded compacts s.handed.
	kept bool
	// wake receives one token when w is woken: to take up the attempt
	// handed to it, or to end (exit). It never holds more than one.
	wake chan struct{}
	// What the attempt needs, set by start under the lock so that the
	// goroutine reads no node (the node table grows when an Expand adds
	// tasks).
	fn      TaskFunc
	expand  func(context.Context, Values) ([]Task, error)
	timeout time.Duration
	parent  context.Context // the context of the task's group
	sc      *scope
	local   int32
	started int64 // the attempt's start, as a node time
	first   int64 // the task's first attempt's start, as a node time
	// reusable says that the Expand it runs may have its tasks restored.
	reusable bool
	// out is where the worker copies each output, reused across attempts.
	// Only the worker's goroutine uses it, and the next two.
	out []kv
	// actxs is where the worker's attempt contexts come from
	// (newAttemptCtx).
	actxs slab[attemptCtx]
}

// spawn hands ready tasks to workers while fewer than MaxParallel run,
// then makes sure a handed worker is on its way (wakeNext). s.mu is held.
//
// A task is handed to a worker, and is Running, as soon as a slot of
// MaxParallel is free; but the workers are woken one at a time. A woken
// worker, once it runs, wakes the next. Meanwhile a worker that ends an
// attempt takes over the oldest handed attempt itself (record), even the
// one of the worker on its way, which then finds nothing to do and goes
// back to idle. So workers join at the pace at which they get a
// processor: when tasks are short, the running workers take the handed
// ones as fast as they are handed, and no more goroutines run than the
// machine can run, where waking one per ready task would have them each
// take the lock once and sleep again. When tasks wait (on I/O, on a
// timer), their workers leave the processor, and the next worker runs
// within microseconds, so MaxParallel attempts still run together.
//
// A worker that finds no task ready parks in s.idle rather than ending, so
// that a job whose ready tasks come in bursts (a layer of a wide graph)
// does not start and end a goroutine per task; an idle worker holds no
// task and no slot of MaxParallel. The idle workers end when the job stops
// or ends (dismiss), so no goroutine of the job outlives it.
func (s *scheduler) spawn() {
	for s.state == Running && len(s.running) < s.max {
		id, ok := s.pop()
		if !ok {
			break
		}
		var w *worker
		if k := len(s.idle); k > 0 {
			// The worker parked last: its stack is the likeliest to be
			// in the cache.
			w = s.idle[k-1]
			s.idle[k-1] = nil
			s.idle = s.idle[:k-1]
		} else {
			w = &worker{wake: make(chan struct{}, 1)}
		}
		w.idx = len(s.running)
		s.running = append(s.running, w)
		s.start(w, id)
		s.queueHanded(w)
		w.handed = true
	}
	s.wakeNext()
}

// queueHanded appends w, about to be handed an attempt, to s.handed. When
// the list is full, it first drops the entries of workers that are no
// longer handed (they took up their attempts, or were taken over) and
// repeated entries, so that the list stays as long as the workers handed
// at once, however many tasks the job runs. s.mu is held.
func (s *scheduler) queueHanded(w *worker) {
	if n := len(s.handed); n > 0 && n == cap(s.handed) {
		kept := s.handed[:0]
		for _, h := range s.handed[s.handedAt:] {
			if h.handed && !h.kept {
				h.kept = true
				kept = append(kept, h)
			}
		}
		for _, h := range kept {
			h.kept = false
		}
		clear(s.handed[len(kept):n])
		s.handed, s.handedAt = kept, 0
		if len(kept) > n/2 {
			// Mostly still handed: grow, so that compacting stays rare.
			s.handed = slices.Grow(s.handed, n)
		}
	}
	s.handed = append(s.handed, w)
}

// wakeNext wakes the oldest handed worker, unless a worker woken so is on
// its way already. s.mu is held.
func (s *scheduler) wakeNext() {
	if s.comer != nil {
		return
	}
	if w := s.oldestHanded(); w != nil {
		s.comer = w
		s.wakeWorker(w)
	}
}

// wakeHanded wakes every handed worker: the job or a group stopped, and the
// attempts handed out run at once, to see their context canceled (every
// attempt counted calls its Func). s.mu is held.
func (s *scheduler) wakeHanded() {
	for _, w := range s.handed[s.handedAt:] {
		if w.handed {
			s.wakeWorker(w)
		}
	}
}

// oldestHanded returns the worker handed an attempt longest ago that has not
// taken it up, or nil. s.mu is held.
func (s *scheduler) oldestHanded() *worker {
	for s.handedAt < len(s.handed) {
		if w := s.handed[s.handedAt]; w.handed {
			return w
		}
		// It has taken its attempt up, or was taken over.
		s.handed[s.handedAt] = nil
		s.handedAt++
	}
	s.handed, s.handedAt = s.handed[:0], 0
	return nil
}

// wakeWorker wakes w, unless it is woken already, starting its goroutine
// the first time. s.mu is held.
func (s *scheduler) wakeWorker(w *worker) {
	if w.woken {
		return
	}
	w.woken = true
	if !w.born {
		w.born = true
		go s.work(w)
		return
	}
	w.wake <- struct{}{} // never blocks: one token per wait
}

// takeOver makes w, which has just ended an attempt, run the attempt of the
// oldest handed worker h instead of h: h goes back to idle (if h's
// goroutine is on its way, it will find nothing to do). It reports whether
// it did. s.mu is held.
func (s *scheduler) takeOver(w *worker) bool {
	h := s.oldestHanded()
	if h == nil || s.nodes[h.id].state != Running {
		// A task canceled while handed (its group stopped) is left to
		// its worker, which is woken and has its grace period armed.
		return false
	}
	h.handed = false
	// h's entry is the oldest: drop it, or a new hand-over to h (the idle
	// worker parked last) would count as the oldest.
	s.handed[s.handedAt] = nil
	s.handedAt++
	w.id, w.att, w.timedOut = h.id, h.att, false
	w.fn, w.timeout, w.expand, w.reusable = h.fn, h.timeout, h.expand, h.reusable
	w.parent, w.sc, w.local = h.parent, h.sc, h.local
	w.started, w.first = h.started, h.first
	h.fn, h.expand, h.parent, h.sc = nil, nil, nil, nil
	s.drop(h)
	s.idle = append(s.idle, h)
	return true
}

// park stops counting w as running and keeps it for the next ready task.
// s.mu is held.
func (s *scheduler) park(w *worker) {
	s.drop(w)
	s.idle = append(s.idle, w)
}

// dismiss ends the idle workers: the job has stopped or ended. s.mu is
// held.
func (s *scheduler) dismiss() {
	for i, w := range s.idle {
		w.exit = true
		if w.born && !w.woken {
			w.wake <- struct{}{}
		}
		s.idle[i] = nil
	}
	s.idle = s.idle[:0]
}

// start makes w run the next attempt of task id. s.mu is held.
func (s *scheduler) start(w *worker, id int32) {
	n, r := &s.nodes[id], &s.refs[id]
	n.attempts++
	if n.attempts == 1 {
		n.started = s.stamp()
	}
	w.id, w.att, w.timedOut = id, n.attempts, false
	w.fn, w.timeout, w.expand = r.fn, r.timeout, nil
	w.reusable = false
	if n.kind == kindExpand {
		w.expand, w.reusable = r.extra.expand, r.extra.reusable
	}
	w.parent = s.groupOf(id).ctx
	w.sc, w.local = s.loc(id)
	w.started, w.first = s.stamp(), n.started
	s.transition(id, Running, n.attempts, nil)
}

// drop stops counting w as a running worker. s.mu is held.
func (s *scheduler) drop(w *worker) {
	last := s.running[len(s.running)-1]
	last.idx = w.idx
	s.running[w.idx] = last
	s.running[len(s.running)-1] = nil
	s.running = s.running[:len(s.running)-1]
	w.idx = -1
}

// work is w's goroutine. Each time it is woken, it takes up the attempt
// handed to it, if another worker has not taken it over, and wakes the
// next handed worker; it then runs attempts while tasks are ready, and
// parks when none is. It ends when the job no longer needs it.
func (s *scheduler) work(w *worker) {
	for {
		s.mu.Lock()
		w.woken = false
		if w.handed && s.comer == w && s.state == Running && s.nodes[w.id].state == Running && s.waiting.Load() > 0 {
			// A worker that has ended an attempt waits for the lock: it
			// will take over the oldest handed attempt, or wake a worker
			// for it (spawn), once w lets the lock go. So w, which runs
			// only because that worker sleeps at the lock, sleeps again,
			// still handed its attempt, rather than be one more worker
			// to meet the others at the lock.
			s.comer = nil
			s.mu.Unlock()
			<-w.wake
			continue
		}
		mine := w.handed // else taken over while w was on its way: w is idle
		w.handed = false
		if s.comer == w {
			s.comer = nil
			s.wakeNext() // pass it on, whether or not w has work
		}
		exit := w.exit
		s.mu.Unlock()
		if exit {
			return
		}
		if !mine {
			<-w.wake
			continue
		}
	attempts:
		for {
			switch s.attempt(w) {
			case workerNext:
			case workerParks:
				<-w.wake
				break attempts
			default:
				return
			}
		}
	}
}

// What a worker does after an attempt.
type afterAttempt uint8

const (
	workerEnds  afterAttempt = iota // end: the job no longer counts the worker
	workerNext                      // run the attempt that finish started on it, or took over
	workerParks                     // wait in s.idle to be handed a task, or to end
)

// attemptCtx is the context of one attempt: its group's context, and what
// TaskInfoFromContext makes the attempt's TaskInfo from, in one
// allocation. (A TaskInfo itself would take 24 bytes more per attempt, and
// a clock conversion that few tasks ask for.)
type attemptCtx struct {
	context.Context
	job     *jobIdent
	task    string
	att     int32
	started int64 // as a node time
}

// jobIdent is what every attempt context of a job shares: small, so that a
// context a Func keeps after the job ended keeps nothing else of the job.
type jobIdent struct {
	name string
	t0   time.Time // when Run started the job: node times count from it
}

// taskInfo returns the attempt's TaskInfo.
func (c *attemptCtx) taskInfo() TaskInfo {
	return TaskInfo{Job: c.job.name, Task: c.task, Attempt: int(c.att), Started: nodeTime(c.job.t0, c.started)}
}

// attemptCtxChunk is how many attempt contexts a worker allocates
// together, at most.
const attemptCtxChunk = 64

// newAttemptCtx returns a context for w's next attempt, to fill in.
// Contexts are allocated by the chunk, one allocation per 64 attempts
// rather than one per attempt; a context that a Func keeps after returning
// keeps its chunk (about 4 KB) alive. Only w's goroutine calls it.
func (w *worker) newAttemptCtx() *attemptCtx { return w.actxs.next(attemptCtxChunk) }

func (c *attemptCtx) Value(key any) any {
	if key == (taskInfoKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// outcome is what an attempt produced, handed from the worker's goroutine
// to finish.
type outcome struct {
	out       map[string]any
	copied    map[string]any // a copy of out, made by finish
	graph     *graph         // the graph of the tasks an Expand returned, or why they are not a valid DAG (graphErr)
	graphErr  error
	err       error
	permanent bool  // err asks for no retry
	skip      bool  // err is, or wraps, ErrSkip
	store     bool  // err is the checkpoint store's: it fails the job
	finished  int64 // when a checkpointed task's result was saved, as a node time
	save      bool  // the attempt succeeded and its output goes to the checkpoint
}

// attempt runs w's attempt, records its outcome and says what w does next.
func (s *scheduler) attempt(w *worker) afterAttempt {
	// Only this goroutine writes w's attempt fields outside the lock (start
	// sets them under it, before the goroutine reads them).
	id, att, timeout := w.id, w.att, w.timeout
	name := w.sc.g.names[w.local]
	ac := w.newAttemptCtx()
	*ac = attemptCtx{Context: w.parent, job: s.ident, task: name, att: att, started: w.started}
	var ctx context.Context = ac
	var timeoutErr error
	disarm := func() {}
	if timeout > 0 {
		timeoutErr = &wrapError{
			msg: fmt.Sprintf("dag: task %s timed out after %v: %v", quote(name), timeout, context.DeadlineExceeded),
			err: context.DeadlineExceeded,
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, timeoutErr)
		defer cancel()
		actx := ctx
		stopExpire := context.AfterFunc(ctx, func() { s.expire(w, id, att, actx, timeoutErr) })
		defer stopExpire()
		// Once Func has returned in time, the deadline no longer applies:
		// a slow checkpoint Save must not fail an attempt that succeeded.
		disarm = func() {
			if stopExpire() {
				cancel()
			}
		}
	}

	returned := false
	defer func() {
		if !returned {
			// Func called runtime.Goexit, which ends this goroutine once
			// the deferred calls have run: record the failure, and let
			// another worker take over.
			s.finish(w, outcome{err: errGoexit}, false)
		}
	}()
	var o outcome
	var children []Task // an Expand's
	in := Values{s: s.store, sc: w.sc, t: w.local}
	if w.expand != nil {
		children, o.err = callExpand(ctx, w.expand, in)
	} else {
		o.out, o.err = call(ctx, w.fn, in)
	}
	returned = true
	disarm()
	if timeoutErr != nil && context.Cause(ctx) == timeoutErr {
		o.out, children, o.err = nil, nil, timeoutErr // too late: the result is discarded
	}
	if o.err == nil && w.expand != nil {
		// The tasks an Expand returned are validated here, outside the
		// lock; expanded adds them, or fails the Expand with the error.
		o.graph, o.graphErr = buildScope(children, name+"/", true)
	}
	if o.graph != nil && s.ck != nil && s.resume != nil {
		// The tasks this Expand returned that the checkpoint holds but this
		// run will not restore are marked before any of them runs.
		stale, restored, all := staleRecords(o.graph, s.resume, w.reusable)
		if !all {
			// Some of its tasks run again: what comes after the Expand
			// will not be restored either.
			stale = append(stale, downstream(w.sc, w.local, s.resume)...)
		}
		if err := s.ck.prepare(stale, restored, s.resume); err != nil {
			o.graph, o.err, o.permanent, o.store = nil, err, true, true
		}
	}
	if o.err != nil && !o.store {
		// Outside the lock: this runs the error's own methods.
		o.err, o.permanent, o.skip = classify(o.err)
	} else if s.ck != nil && w.expand == nil && w.parent.Err() == nil {
		// (An attempt whose job or group stopped while it ran ends
		// Canceled: it is not saved.)
		o.save = true
	}
	return s.finish(w, o, true)
}

// deferSave starts saving the output of task id's attempt att, which
// succeeded, in the checkpoint. The task stays Running, holding no worker,
// until the Save returns: its dependents cannot start before then, so no
// task ever consumes an output that a crash could lose, while the worker
// goes on to the next ready task (and Saves that overlap share the store's
// syncs). The job does not end while a Save runs. s.mu is held.
func (s *scheduler) deferSave(id, att int32, kvs []kv, copied map[string]any) {
	out := append([]kv(nil), kvs...)
	finished := s.stamp()
	tr := TaskResult{
		State:    Completed,
		Attempts: int(att),
		Started:  s.timeOf(s.nodes[id].started),
		Finished: s.timeOf(finished),
		Output:   copyMap(copied), // the store's own, which it may keep
	}
	name := s.name(id)
	s.saving++
	go s.saveThenComplete(id, att, name, out, copied, tr, finished)
}

// saveThenComplete saves a completed attempt (see deferSave), then records
// it. A value the store cannot encode fails the task for good; any other
// error of the store fails the job, with the store's error wrapped.
func (s *scheduler) saveThenComplete(id, att int32, name string, out []kv, copied map[string]any, tr TaskResult, finished int64) {
	err := s.ck.save(name, tr)
	storeFailed := false
	if err != nil && !errors.Is(err, ErrNotSerializable) {
		err = wrap(err, "dag: saving task %s in the checkpoint of %s failed", quote(name), s.jobName())
		storeFailed = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saving--
	s.tick()
	n := &s.nodes[id]
	if n.state == Running && n.attempts == att && s.state == Running {
		switch {
		case storeFailed:
			s.storeFailed(id, att, err)
		case err != nil:
			s.failed(id, att, err)
		default:
			s.completed(id, att, out, copied, finished)
		}
		s.settle()
		s.spawn()
	}
	s.maybeEnd()
}

// copyMap copies m, nil for an empty map.
func copyMap(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
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

// callExpand runs an Expand, turning a panic into a *PanicError.
func callExpand(ctx context.Context, fn func(context.Context, Values) ([]Task, error), in Values) (tasks []Task, err error) {
	defer func() {
		if r := recover(); r != nil {
			tasks, err = nil, newPanicError(r)
		}
	}()
	return fn(ctx, in)
}

// classify reports whether err asks for no retry (it is, or wraps, a
// *backoff.PermanentError, or an error of Lookup: a mistake in the job's
// design) and whether it skips the task (it is, or wraps, ErrSkip). An
// error that is a PermanentError is replaced by the error it holds; a
// wrapped one is kept whole, so that nothing the task said is lost (a
// *PanicError and its stack, or a message around it). An error whose
// methods panic is kept as it is, and is neither. It runs the error's
// methods: call it outside the lock.
func classify(err error) (out error, permanent, skip bool) {
	defer func() {
		if recover() != nil {
			out, permanent, skip = err, false, false
		}
	}()
	if p, ok := err.(*backoff.PermanentError); ok {
		if p.Err == nil {
			return err, true, false
		}
		return p.Err, true, errors.Is(p.Err, ErrSkip)
	}
	var p *backoff.PermanentError
	var l *lookupError
	skip = errors.Is(err, ErrSkip)
	return err, skip || errors.As(err, &p) || errors.As(err, &l), skip
}

// finish records the outcome of w's attempt and says what w does next;
// alive is false when the goroutine is ending.
func (s *scheduler) finish(w *worker, o outcome, alive bool) afterAttempt {
	// Copy the output before taking the lock: dag keeps no reference to the
	// task's map. The copy is the task's TaskResult.Output; kvs, a list of
	// the same entries in a buffer the worker reuses, is what the job
	// context takes them from.
	kvs := w.out[:0]
	if o.err == nil && len(o.out) > 0 {
		o.copied = maps.Clone(o.out)
		kvs = appendKVs(kvs, o.copied)
	}
	// Read the clock, and whether the job's context has ended, before
	// taking the lock: the less done under it, the less the workers of a
	// wide job wait for each other.
	now := time.Since(s.t0)
	ctxEnded := s.ctx.Err() != nil
	// No defer on this path, which every attempt takes: the user code that
	// runs under the lock recovers its own panics, and any other panic here
	// ends the program, with or without the lock held.
	if !s.mu.TryLock() {
		s.waiting.Add(1)
		s.mu.Lock()
		s.waiting.Add(-1)
	}
	next := s.record(w, o, kvs, alive, now, ctxEnded)
	s.mu.Unlock()
	if len(kvs) > 0 {
		clear(kvs) // keep no reference to the values
		w.out = kvs[:0]
	}
	return next
}

// record records the outcome of w's attempt, whose output was copied to
// kvs, and says what w does next. now is the clock after the attempt, and
// ctxEnded whether the job's context had ended then. s.mu is held.
func (s *scheduler) record(w *worker, o outcome, kvs []kv, alive bool, now time.Duration, ctxEnded bool) afterAttempt {
	// Another worker may have read a later clock and taken the lock first:
	// event times never go back.
	s.clock = max(s.clock, now)
	if ctxEnded && s.state == Running {
		// The job's context ended and the watch has not run yet: stop
		// first, so that an attempt failing because of it is not taken for
		// a failure of the task. (A context that ends after the attempt
		// returned cannot have failed it.)
		s.contextEnded()
	}
	s.checkGroups(w.id)
	n := &s.nodes[w.id]
	if w.detached {
		// The job gave up on this attempt and no longer counts w.
		n.abandoned--
		s.abandoned--
		s.spawn() // a woken worker that saw this one wait for the lock counts on it (see work)
		return workerEnds
	}
	switch {
	case w.timedOut:
		// The attempt failed at its deadline; this is its late result.
	case n.state != Running || n.attempts != w.att:
		// The job or the task's group stopped and canceled the task.
	case o.err != nil:
		switch {
		case o.store:
			s.storeFailed(w.id, w.att, o.err)
		case o.skip:
			s.endWith(w.id, Skipped, w.att, o.err)
			s.taskEnded(w.id, nil)
		default:
			s.attemptFailed(w.id, w.att, o.err, o.permanent)
		}
	case n.kind == kindExpand:
		s.expanded(w.id, w.att, o.graph, o.graphErr)
	case o.save:
		s.deferSave(w.id, w.att, kvs, o.copied)
	default:
		s.completed(w.id, w.att, kvs, o.copied, o.finished)
	}
	s.settle()
	if alive && s.state == Running {
		if s.takeOver(w) {
			s.spawn()
			return workerNext
		}
		if id, ok := s.pop(); ok {
			s.start(w, id)
			s.spawn()
			return workerNext
		}
		s.park(w)
		s.maybeEnd() // dismisses w too if the job ended
		return workerParks
	}
	s.drop(w)
	s.spawn()
	s.maybeEnd()
	return workerEnds
}

// completed records that attempt att of task id succeeded with output out,
// of which copied is a map that the task's result keeps. finished, if not
// 0, is the time its checkpoint recorded. s.mu is held.
func (s *scheduler) completed(id, att int32, out []kv, copied map[string]any, finished int64) {
	n := &s.nodes[id]
	if !n.private {
		sc, l := s.loc(id)
		if err := s.store.put(sc, l, out); err != nil {
			s.conflicted(id, att, err)
			return
		}
	}
	r := &s.refs[id]
	if len(out) > 0 {
		r.out = copied
	}
	if r.extra != nil {
		r.extra.err = nil
	}
	n.finished = s.stamp()
	if finished != 0 {
		n.finished = finished
	}
	s.transition(id, Completed, att, nil)
	s.taskEnded(id, nil)
}

// expire fails attempt att of task id, run by w, when its Timeout passes.
// The task moves on at once: to Retrying, or to Failed. The attempt's Func
// may go on running: w keeps its place among the MaxParallel workers for
// the grace period, so that a Func that ignores its context does not free
// a slot at once, and is then detached and counted as abandoned.
func (s *scheduler) expire(w *worker, id, att int32, ctx context.Context, timeoutErr error) {
	if context.Cause(ctx) != timeoutErr {
		return // the job's or the group's context ended: their stop handles it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The attempt may have returned before this ran: w may have moved on
	// to another attempt, or ended, and the task may run its next attempt
	// on another worker.
	n := &s.nodes[id]
	if w.idx < 0 || w.detached || w.id != id || w.att != att || w.timedOut || n.attempts != att || n.state != Running {
		return
	}
	s.tick()
	w.timedOut = true
	s.attemptFailed(w.id, att, timeoutErr, false)
	s.settle()
	s.spawn()
	s.graceFor(w, att)
	s.maybeEnd()
}

// graceFor detaches w after the grace period if it still runs attempt att.
// s.mu is held.
func (s *scheduler) graceFor(w *worker, att int32) {
	id := w.id
	time.AfterFunc(abandonGrace, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		// w may have returned within the grace period (and been dropped),
		// or be running a later attempt.
		if w.idx >= 0 && !w.detached && w.id == id && w.att == att && !s.ended {
			if w.handed {
				// Woken (wakeHanded) but not yet running: the grace
				// period counts from when the attempt starts.
				s.graceFor(w, att)
				return
			}
			s.tick()
			s.detach(w)
			s.spawn()
			s.maybeEnd()
		}
	})
}

// detach abandons w's attempt: the job stops counting w. s.mu is held.
func (s *scheduler) detach(w *worker) {
	w.detached = true
	s.drop(w)
	s.nodes[w.id].abandoned++
	s.abandoned++
}
