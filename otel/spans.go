package dagotel

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/dagrun/dag"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of the spans, under the dag. prefix.
const (
	keyJob      = attribute.Key("dag.job")
	keyTask     = attribute.Key("dag.task")
	keyState    = attribute.Key("dag.state")
	keyAttempt  = attribute.Key("dag.attempt")
	keyAttempts = attribute.Key("dag.attempts")
	keyRestored = attribute.Key("dag.restored")
	keyReason   = attribute.Key("dag.reason")
)

// recorder turns the events of one job into spans. One goroutine, run,
// handles the events; the Funcs' goroutines only look up their attempt's
// span, waiting until run has started it.
//
// Spans are started and ended only by run, except the attempt span of a
// successful Expand, ended by the Expand's wrapper. Span calls are made
// under mu: a wrapper's look-up then waits for the span call in progress,
// which is cheap with a batching span processor.
type recorder struct {
	tracer trace.Tracer
	parent context.Context // Run's ctx: the job span's parent
	job    string          // Options.Name
	done   chan struct{}   // closed when every span has ended

	mu       sync.Mutex
	jobSpan  trace.Span                  // guarded by mu; nil until the job's first event
	jobCtx   context.Context             // guarded by mu; holds jobSpan
	jobEnded bool                        // guarded by mu
	tasks    map[string]*taskSpan        // guarded by mu; open task spans, by full name
	attempts map[attemptKey]*attemptSpan // guarded by mu; attempts not yet both ended and claimed
	groups   map[string]bool             // guarded by mu; full names of tasks with Sub or Expand
	over     bool                        // guarded by mu; no event comes any more
}

type taskSpan struct {
	span     trace.Span
	ctx      context.Context // holds span: the parent of attempts and children
	attempts int
}

type attemptKey struct {
	task    string
	attempt int
}

// attemptSpan is the span of one attempt. A wrapper that looks it up before
// run has started it creates it empty and waits on ready.
//
// A record is dropped once its span has ended and its wrapper has claimed
// it, so that a job holds the spans of its running attempts only. A wrapper
// that comes after its attempt ended and was dropped finds its ctx done
// (the attempt timed out or the job stopped), and does not wait.
type attemptSpan struct {
	key     attemptKey
	span    trace.Span    // nil until the attempt's Running event; then set once
	ready   chan struct{} // closed once span is set, or when no event comes any more
	ended   bool
	claimed bool // the attempt's wrapper has looked it up
}

// drop forgets a once it has ended and been claimed. r.mu is held.
func (r *recorder) drop(a *attemptSpan) {
	if a.ended && a.claimed {
		delete(r.attempts, a.key)
	}
}

func newRecorder(ctx context.Context, tracer trace.Tracer, job string) *recorder {
	return &recorder{
		tracer:   tracer,
		parent:   ctx,
		job:      job,
		done:     make(chan struct{}),
		tasks:    make(map[string]*taskSpan),
		attempts: make(map[attemptKey]*attemptSpan),
		groups:   make(map[string]bool),
	}
}

// run handles the events from in until it is closed, then forwards what
// is left to out, if not nil, and closes it. Events are forwarded from an
// unbounded buffer so that a slow reader of out never delays the spans,
// nor the attempts waiting for them.
func (r *recorder) run(in <-chan dag.Event, out chan<- dag.Event) {
	var queue []dag.Event
	for in != nil {
		var send chan<- dag.Event // nil, so never ready, while queue is empty
		var next dag.Event
		if len(queue) > 0 {
			send, next = out, queue[0]
		}
		select {
		case e, ok := <-in:
			if !ok {
				in = nil
				break
			}
			r.handle(e)
			if out != nil {
				queue = append(queue, e)
			}
		case send <- next:
			queue[0] = dag.Event{} // drop the reference to its error
			queue = queue[1:]
		}
	}
	r.finish()
	close(r.done)
	if out == nil {
		return
	}
	// Like dag's own delivery, this outlives the job while the reader is
	// behind, and ends when it has read everything.
	for _, e := range queue {
		out <- e
	}
	close(out)
}

// finish ends what no event will end: nothing, unless the job stopped
// without its final event, and releases the attempts still waiting.
func (r *recorder) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.attempts {
		if a.span == nil {
			close(a.ready)
		}
	}
	if r.jobSpan != nil && !r.jobEnded {
		r.endOpen(time.Now())
		r.jobSpan.End()
		r.jobEnded = true
	}
	r.over = true
	r.attempts, r.tasks = nil, nil
}

// attempt returns the attempt's record, creating it if needed. After the
// job's events ended it returns an empty record, ready at once.
func (r *recorder) attempt(k attemptKey) *attemptSpan {
	if r.over {
		a := &attemptSpan{key: k, ready: make(chan struct{})}
		close(a.ready)
		return a
	}
	a := r.attempts[k]
	if a == nil {
		a = &attemptSpan{key: k, ready: make(chan struct{})}
		r.attempts[k] = a
	}
	return a
}

func (r *recorder) handle(e dag.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jobSpan == nil {
		name := "job"
		if r.job != "" {
			name += " " + r.job
		}
		r.jobCtx, r.jobSpan = r.tracer.Start(r.parent, name,
			trace.WithTimestamp(e.Time),
			trace.WithAttributes(keyJob.String(r.job)))
	}
	if e.Task == "" {
		if e.To.Final() {
			r.endOpen(e.Time)
			r.jobSpan.SetAttributes(keyState.String(e.To.String()))
			switch {
			case e.Err == nil:
			case e.To == dag.Failed:
				// Err joins the tasks' errors: name its type, not theirs.
				recordError(r.jobSpan, e.Err, e.Time, semconv.ErrorType(e.Err))
			case e.To == dag.Canceled:
				recordError(r.jobSpan, e.Err, e.Time, errorType(e.Err))
			}
			r.jobSpan.End(trace.WithTimestamp(e.Time))
			r.jobEnded = true
		}
		return
	}

	t := r.taskSpan(e.Task, e.Time)
	if e.From == dag.Running && e.Attempt > 0 {
		r.endAttempt(e)
	}
	switch {
	case e.To == dag.Running && e.From == dag.Ready:
		r.startAttempt(t, e)
	case e.To.Final():
		t.span.SetAttributes(
			keyState.String(e.To.String()),
			keyAttempts.Int(t.attempts),
			keyRestored.Bool(e.From == dag.Pending && e.To == dag.Completed),
		)
		switch {
		case e.Err == nil:
		case e.To == dag.Failed:
			recordError(t.span, e.Err, e.Time, errorType(e.Err))
		case e.To == dag.Skipped:
			t.span.SetAttributes(keyReason.String(e.Err.Error()))
		}
		t.span.End(trace.WithTimestamp(e.Time))
		// No event of the task, nor of a child if it is a group, comes
		// after its final one.
		delete(r.tasks, e.Task)
	}
}

// taskSpan returns the span of task, starting it at if it has none yet,
// and its group's span too if need be: a group that does not run can end
// after its children.
func (r *recorder) taskSpan(task string, at time.Time) *taskSpan {
	if t := r.tasks[task]; t != nil {
		return t
	}
	parent := r.jobCtx
	for i := strings.LastIndexByte(task, '/'); i > 0; i = strings.LastIndexByte(task[:i], '/') {
		if r.groups[task[:i]] {
			parent = r.taskSpan(task[:i], at).ctx
			break
		}
	}
	t := &taskSpan{}
	t.ctx, t.span = r.tracer.Start(parent, "task "+task,
		trace.WithTimestamp(at),
		trace.WithAttributes(keyJob.String(r.job), keyTask.String(task)))
	r.tasks[task] = t
	return t
}

func (r *recorder) startAttempt(t *taskSpan, e dag.Event) {
	t.attempts = e.Attempt
	a := r.attempt(attemptKey{e.Task, e.Attempt})
	if a.span != nil {
		return
	}
	_, a.span = r.tracer.Start(t.ctx, "attempt "+e.Task,
		trace.WithTimestamp(e.Time),
		trace.WithAttributes(keyJob.String(r.job), keyTask.String(e.Task), keyAttempt.Int(e.Attempt)))
	close(a.ready)
}

// endAttempt ends the span of the attempt that e ends, if it has not ended.
func (r *recorder) endAttempt(e dag.Event) {
	a := r.attempts[attemptKey{e.Task, e.Attempt}]
	if a == nil || a.span == nil || a.ended {
		return
	}
	a.ended = true
	a.span.SetAttributes(keyState.String(e.To.String()))
	switch {
	case e.Err == nil:
	case e.To == dag.Failed || e.To == dag.Retrying:
		recordError(a.span, e.Err, e.Time, errorType(e.Err))
	case e.To == dag.Skipped:
		a.span.SetAttributes(keyReason.String(e.Err.Error()))
	}
	a.span.End(trace.WithTimestamp(e.Time))
	r.drop(a)
}

// expanded ends the span of an attempt whose Expand succeeded, now: no
// event marks it, and the task's own span goes on while its tasks run.
func (r *recorder) expanded(a *attemptSpan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.span == nil || a.ended {
		return
	}
	a.ended = true
	a.span.SetAttributes(keyState.String(dag.Completed.String()))
	a.span.End()
	r.drop(a)
}

// endOpen ends every task and attempt span still open at the job's end,
// which happens only if the job ends without a final event for them.
func (r *recorder) endOpen(at time.Time) {
	for _, a := range r.attempts {
		if a.span != nil && !a.ended {
			a.ended = true
			a.span.End(trace.WithTimestamp(at))
		}
	}
	for name, t := range r.tasks {
		t.span.End(trace.WithTimestamp(at))
		delete(r.tasks, name)
	}
}

// recordError gives span status Error, the attribute typ (error.type) and
// an exception event for err. When err is or wraps a panic, the message
// keeps the panic's value but not its stack, which goes to
// exception.stacktrace.
func recordError(span trace.Span, err error, at time.Time, typ attribute.KeyValue) {
	msg := err.Error()
	var pe *dag.PanicError
	if errors.As(err, &pe) {
		msg = strings.Replace(msg, pe.Error(), fmt.Sprintf("panic: %v", pe.Value), 1)
		span.AddEvent(semconv.ExceptionEventName, trace.WithTimestamp(at), trace.WithAttributes(
			semconv.ExceptionType(panicType),
			semconv.ExceptionMessage(msg),
			semconv.ExceptionStacktrace(string(pe.Stack)),
		))
	} else {
		span.RecordError(err, trace.WithTimestamp(at))
	}
	span.SetAttributes(typ)
	span.SetStatus(codes.Error, msg)
}

// errorType returns error.type for err: "timeout" or "canceled" for the
// errors of a context, err's type otherwise.
func errorType(err error) attribute.KeyValue {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return semconv.ErrorTypeKey.String("timeout")
	case errors.Is(err, context.Canceled):
		return semconv.ErrorTypeKey.String("canceled")
	}
	return semconv.ErrorType(err)
}

// panicType names dag.PanicError as the SDK's RecordError names types.
var panicType = reflect.TypeFor[dag.PanicError]().PkgPath() + "." + reflect.TypeFor[dag.PanicError]().Name()
