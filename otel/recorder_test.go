package dagotel

// Tests of the recorder on its own, fed with events made by hand, so that
// the order in which the events and the Funcs' look-ups arrive is chosen by
// the test rather than by the scheduler.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newTestRecorder returns a recorder of job "j" on an in-memory exporter,
// its events channel and a forwarded-events channel, with its goroutine
// running; the test's cleanup closes in if the test has not, and waits for
// the goroutine.
func newTestRecorder(t *testing.T, out chan<- dag.Event) (*recorder, chan<- dag.Event, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	r := newRecorder(context.Background(), tp.Tracer(scope), "j")
	in := make(chan dag.Event)
	go r.run(in, out)
	return r, in, exp
}

// at returns a fixed time, s seconds after an arbitrary origin.
func at(s int) time.Time { return time.Unix(1_700_000_000+int64(s), 0) }

func ev(s int, task string, from, to dag.State, attempt int, err error) dag.Event {
	return dag.Event{Time: at(s), Job: "j", Task: task, From: from, To: to, Attempt: attempt, Err: err}
}

// spanTree returns, for each ended span, "name <- parent name".
func spanTree(spans tracetest.SpanStubs) map[string]string {
	names := make(map[trace.SpanID]string)
	for _, s := range spans {
		names[s.SpanContext.SpanID()] = s.Name
	}
	tree := make(map[string]string)
	for _, s := range spans {
		tree[s.Name] = names[s.Parent.SpanID()]
	}
	return tree
}

func TestRecorderFuncBeforeEvents(t *testing.T) {
	r, in, exp := newTestRecorder(t, nil)
	noop := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
	r.wrap("", []dag.Task{{Name: "g", Sub: []dag.Task{{Name: "a", Func: noop}}}})
	// The Func looks its span up before the recorder has seen any event:
	// it must wait for the attempt's Running event, then nest its own span.
	funcDone := make(chan struct{})
	go func() {
		defer close(funcDone)
		ctx, a := r.attemptContextOf(context.Background(), dag.TaskInfo{Job: "j", Task: "g/a", Attempt: 2, Started: at(5)})
		if a == nil {
			t.Errorf("attemptContextOf returned no attempt")
			return
		}
		_, span := r.tracer.Start(ctx, "work")
		span.End()
	}()
	for _, e := range []dag.Event{
		ev(1, "", dag.Pending, dag.Running, 0, nil),
		ev(2, "g", dag.Pending, dag.Running, 0, nil),
		ev(3, "g/a", dag.Pending, dag.Ready, 1, nil),
		ev(3, "g/a", dag.Ready, dag.Running, 1, nil),
		ev(4, "g/a", dag.Running, dag.Retrying, 1, errors.New("flake")),
		ev(4, "g/a", dag.Retrying, dag.Ready, 2, nil),
		ev(5, "g/a", dag.Ready, dag.Running, 2, nil),
	} {
		in <- e
	}
	<-funcDone
	for _, e := range []dag.Event{
		ev(6, "g/a", dag.Running, dag.Completed, 2, nil),
		ev(7, "g", dag.Running, dag.Completed, 0, nil),
		ev(8, "", dag.Running, dag.Completed, 0, nil),
	} {
		in <- e
	}
	close(in)
	<-r.done

	spans := exp.GetSpans()
	got := make(map[string][2]time.Time)
	for _, s := range spans {
		if s.Name == "work" {
			continue
		}
		got[s.Name+" "+attr(s, keyAttempt)] = [2]time.Time{s.StartTime, s.EndTime}
	}
	want := map[string][2]time.Time{
		"job j ":        {at(1), at(8)},
		"task g ":       {at(2), at(7)},
		"task g/a ":     {at(3), at(6)},
		"attempt g/a 1": {at(3), at(4)},
		"attempt g/a 2": {at(5), at(6)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("span times (-want +got):\n%s", diff)
	}
	// "work" must be a child of attempt 2, not 1.
	ids := make(map[trace.SpanID]string)
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = s.Name + " " + attr(s, keyAttempt)
	}
	for _, s := range spans {
		if s.Name == "work" {
			if p := ids[s.Parent.SpanID()]; p != "attempt g/a 2" {
				t.Errorf("parent of work = %q; want attempt g/a 2", p)
			}
		}
	}
	if p := spanTree(spans)["task g/a"]; p != "task g" {
		t.Errorf("parent of task g/a = %q; want task g", p)
	}
}

func TestRecorderReleasesWaiters(t *testing.T) {
	r, in, _ := newTestRecorder(t, nil)
	// A Func whose ctx ends stops waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, a := r.attemptContextOf(ctx, dag.TaskInfo{Job: "j", Task: "x", Attempt: 1}); a != nil {
		t.Errorf("attemptContextOf(cancelled ctx) = %v; want nil", a)
	}
	// A Func whose Running event never comes is released when the events end.
	released := make(chan struct{})
	go func() {
		defer close(released)
		if _, a := r.attemptContextOf(context.Background(), dag.TaskInfo{Job: "j", Task: "y", Attempt: 1}); a != nil {
			t.Errorf("attemptContextOf after the events ended = %v; want nil", a)
		}
	}()
	close(in)
	<-released
	<-r.done
	// And one that comes after the end does not wait at all.
	if _, a := r.attemptContextOf(context.Background(), dag.TaskInfo{Job: "j", Task: "z", Attempt: 1}); a != nil {
		t.Errorf("attemptContextOf after the end = %v; want nil", a)
	}
}

func TestRecorderForwardsToSlowReader(t *testing.T) {
	out := make(chan dag.Event)
	r, in, _ := newTestRecorder(t, out)
	want := []dag.Event{
		ev(1, "", dag.Pending, dag.Running, 0, nil),
		ev(2, "a", dag.Pending, dag.Ready, 1, nil),
		ev(3, "a", dag.Ready, dag.Running, 1, nil),
		ev(4, "a", dag.Running, dag.Completed, 1, nil),
		ev(5, "", dag.Running, dag.Completed, 0, nil),
	}
	// Nobody reads out until every span has ended: the recorder must not
	// wait for the reader.
	for _, e := range want {
		in <- e
	}
	close(in)
	<-r.done
	var got []dag.Event
	for e := range out {
		got = append(got, e)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("forwarded events (-want +got):\n%s", diff)
	}
}

// attr returns the value of the attribute k of s, as text, or "".
func attr(s tracetest.SpanStub, k attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestRecorderForgetsEndedSpans checks that the recorder holds only the
// spans still open, whichever of an attempt's end and its Func's look-up
// comes first.
func TestRecorderForgetsEndedSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	r := newRecorder(context.Background(), sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)).Tracer(scope), "j")
	held := func(when string, tasks, attempts int) {
		t.Helper()
		if len(r.tasks) != tasks || len(r.attempts) != attempts {
			t.Errorf("%s: %d task and %d attempt records held; want %d and %d", when, len(r.tasks), len(r.attempts), tasks, attempts)
		}
	}
	r.handle(ev(1, "", dag.Pending, dag.Running, 0, nil))
	r.handle(ev(1, "a", dag.Pending, dag.Ready, 1, nil))
	r.handle(ev(2, "a", dag.Ready, dag.Running, 1, nil))
	// The Func looks its span up while the attempt runs.
	if _, a := r.attemptContextOf(context.Background(), dag.TaskInfo{Job: "j", Task: "a", Attempt: 1}); a == nil {
		t.Fatal("attemptContextOf(a) returned no attempt")
	}
	held("a running", 1, 1)
	r.handle(ev(3, "a", dag.Running, dag.Completed, 1, nil))
	held("a completed", 0, 0)

	// The attempt of b times out before its Func looks it up.
	r.handle(ev(3, "b", dag.Pending, dag.Ready, 1, nil))
	r.handle(ev(4, "b", dag.Ready, dag.Running, 1, nil))
	r.handle(ev(5, "b", dag.Running, dag.Failed, 1, context.DeadlineExceeded))
	held("b failed", 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.attemptContextOf(ctx, dag.TaskInfo{Job: "j", Task: "b", Attempt: 1})
	held("b's Func started", 0, 0)
	r.handle(ev(6, "", dag.Running, dag.Failed, 0, errors.New("b failed")))
	if n := len(exp.GetSpans()); n != 5 {
		t.Errorf("%d spans ended; want 5", n)
	}
}
