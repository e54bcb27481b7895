// Package dagotel records the jobs of [github.com/dagrun/dag] as
// OpenTelemetry traces.
//
// [Run] runs a job as [dag.Run] does and records it as spans:
//
//	job, err := dagotel.Run(ctx, tasks, opts, tp)
//	if err != nil { ... } // the tasks are not a valid DAG; nothing ran
//	res, err := job.Wait() // every span of the job has ended
//
// # Spans
//
// The job is one span, "job NAME", a child of the span in Run's ctx (a root
// span if there is none). Each task is a span, "task NAME", a child of the
// job's span, or of its group's span for a task of a group ([dag.Task.Sub]
// or [dag.Task.Expand]), named by its full name "group/child". Each attempt
// of a task is a span, "attempt NAME", a child of its task's span; the spans
// that a TaskFunc (or an Expand) starts from its ctx are children of its
// attempt's span. The tasks an Expand returns are children of the Expand
// task's span, not of its attempt's.
//
// Span times are the events' times. A task span starts at the task's first
// event (Ready, or Running for a group) and ends at its final one; a group's
// span starts at its first child's event if that comes first, as it does
// for a group that does not run. A task that never ran (Skipped,
// UpstreamFailed, Canceled before it started, or restored from
// [dag.Options.Resume]) still has a span, which starts and ends at its final
// event. An attempt span starts at the attempt's Running event and ends at
// the event that ends the attempt, with one exception: no event marks the
// return of a successful Expand, so its attempt span ends when Expand
// returns.
//
// # Attributes and status
//
// Every span has dag.job, the job's name. Task and attempt spans have
// dag.task (the full name) and dag.state (the state the task ended in, or,
// for an attempt, the state it moved the task to: completed, failed,
// retrying, skipped or canceled). Attempt spans have dag.attempt, the
// attempt's number; task spans have dag.attempts, how many attempts started,
// and dag.restored, true for a task restored from an earlier run (whose
// attempts are not counted again). A task skipped by [dag.ErrSkip] has
// dag.reason, the error that wrapped it, on its task and attempt spans.
//
// Following OpenTelemetry's conventions, a span whose work succeeded keeps
// status Unset. A failed attempt (dag.state failed or retrying), a Failed
// task and a job that did not complete (Failed or Canceled) get status Error
// with the error's message, the error recorded as an exception event, and
// error.type: "timeout" for an error matching [context.DeadlineExceeded],
// "canceled" for one matching [context.Canceled], and the error's type
// otherwise (for a Failed job, the type of the error that joins its tasks'
// errors). A panic's message is "panic: " and its value, and its exception
// event holds the panicking goroutine's stack as exception.stacktrace.
// Tasks that did not run because of others (Skipped, UpstreamFailed,
// Canceled) are not errors: their dag.state says why.
//
// # Cost
//
// Recording costs one goroutine per job, which reads the job's events and
// starts and ends the spans, and holds the spans of the tasks and attempts
// still open. Each wrapped Func and Expand waits, before it is called, until
// that goroutine has handled its attempt's Running event, which dag sends
// before the attempt starts, so that the attempt's span exists. On a 2-core
// machine a job of no-op tasks takes 10 to 17 µs more per task than
// without recording, with 31 more allocations (3.8 KB), of which the SDK's
// two spans take about 6 µs and 24 allocations: see BenchmarkRun. The
// span processor's time comes on top, in that goroutine: prefer a batching
// processor, as sdktrace.WithBatcher makes, to a synchronous one.
package dagotel

import (
	"context"

	"github.com/dagrun/dag"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// scope is the instrumentation scope of every span: this module's path.
const scope = "github.com/dagrun/dag/otel"

// Run runs tasks as [dag.Run] does and records the job as spans of tp; nil
// means the global provider, [otel.GetTracerProvider]. The job's span is a
// child of the span in ctx, if any.
//
// Run wraps each Func, and each Expand so that the tasks it returns are
// wrapped too, to give it its attempt's span; the tasks and results are
// otherwise those of dag.Run. If opts.Events is set, it receives every
// event of the job as dag promises, and is closed after the last: Run
// reads the job's events itself and forwards them, never dropping one and
// never waiting for the reader.
//
// If the tasks or options are not valid Run returns dag.Run's error,
// records nothing and closes opts.Events.
func Run(ctx context.Context, tasks []dag.Task, opts dag.Options, tp trace.TracerProvider) (*Job, error) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	r := newRecorder(ctx, tp.Tracer(scope), opts.Name)
	tasks = r.wrap("", tasks)
	in := make(chan dag.Event)
	// The recorder's goroutine ends once dag.Run closes in, which it does
	// after the job's final event, or at once if it returns an error.
	go r.run(in, opts.Events)
	opts.Events = in
	job, err := dag.Run(ctx, tasks, opts)
	if err != nil {
		return nil, err
	}
	return &Job{Job: job, done: r.done}, nil
}

// A Job is a running job whose spans are being recorded: a [dag.Job] whose
// Wait and Done also wait for the job's spans to end. Its methods are safe
// for concurrent use.
type Job struct {
	*dag.Job
	done <-chan struct{}
}

// Wait blocks until the job ends and every span of it has ended, then
// returns what [dag.Job.Wait] returns. An exporter may still hold the
// spans: shut the TracerProvider down, or flush it, to have them exported.
//
// Wait does not wait for the events forwarded to [dag.Options.Events] to be
// read.
func (j *Job) Wait() (dag.Result, error) {
	res, err := j.Job.Wait()
	<-j.done
	return res, err
}

// Done returns a channel that is closed when the job has ended and every
// span of it has ended, after which Wait returns at once.
func (j *Job) Done() <-chan struct{} { return j.done }
