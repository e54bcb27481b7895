package dagotel_test

// Tests of the spans of real jobs, read back from an in-memory exporter:
// their names, parents, attributes, statuses and times.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dagrun/dag"
	dagotel "github.com/dagrun/dag/otel"
)

// span is what the tests check of a span. Key names it: its name, and
// "#n" for the attempt n of a task, or for a span started by attempt n.
type span struct {
	Key, Parent string
	Attrs       map[string]string // dag.*, error.type and, for test spans, "try"
	Status      codes.Code
	Desc        string
	Events      []string // names, and "exception: message" for exceptions
}

func key(s tracetest.SpanStub) string {
	for _, kv := range s.Attributes {
		if kv.Key == "dag.attempt" || kv.Key == "try" {
			return fmt.Sprintf("%s #%s", s.Name, kv.Value.Emit())
		}
	}
	return s.Name
}

// summarize returns what the tests check of spans, sorted by key.
func summarize(spans tracetest.SpanStubs) []span {
	keys := make(map[trace.SpanID]string)
	for _, s := range spans {
		keys[s.SpanContext.SpanID()] = key(s)
	}
	var out []span
	for _, s := range spans {
		sp := span{Key: key(s), Parent: keys[s.Parent.SpanID()], Status: s.Status.Code, Desc: s.Status.Description, Attrs: map[string]string{}}
		for _, kv := range s.Attributes {
			if strings.HasPrefix(string(kv.Key), "dag.") || kv.Key == "error.type" || kv.Key == "try" {
				sp.Attrs[string(kv.Key)] = kv.Value.Emit()
			}
		}
		for _, e := range s.Events {
			name := e.Name
			for _, kv := range e.Attributes {
				if kv.Key == "exception.message" {
					name += ": " + kv.Value.Emit()
				}
			}
			sp.Events = append(sp.Events, name)
		}
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, b span) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// record runs tasks with dagotel.Run under a parent span "test", with an
// Events channel of its own that it reads, calls during (if not nil) with
// the job, and returns the job's result, Wait's error, the spans and the
// events.
func record(t *testing.T, tasks []dag.Task, opts dag.Options, during func(*dagotel.Job)) (dag.Result, error, tracetest.SpanStubs, []dag.Event) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, parent := tp.Tracer("test").Start(t.Context(), "test")

	events := make(chan dag.Event)
	var evs []dag.Event
	var wg sync.WaitGroup
	wg.Go(func() {
		for e := range events {
			evs = append(evs, e)
		}
	})
	opts.Events = events
	job, err := dagotel.Run(ctx, tasks, opts, tp)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if during != nil {
		during(job)
	}
	res, err := job.Wait()
	parent.End()
	wg.Wait()
	return res, err, exp.GetSpans(), evs
}

func ok(context.Context, dag.Values) (map[string]any, error) { return nil, nil }

// child starts and ends a span "query" from ctx, as task code would, with
// the attempt it runs in as attribute "try".
func child(ctx context.Context) {
	info, _ := dag.TaskInfoFromContext(ctx)
	_, s := trace.SpanFromContext(ctx).TracerProvider().Tracer("test").Start(ctx, "query",
		trace.WithAttributes(attribute.Int("try", info.Attempt)))
	s.End()
}

func TestSpans(t *testing.T) {
	t.Parallel()
	var tries int // extract's attempts run one at a time
	tasks := []dag.Task{
		{Name: "extract", MaxRetries: 2, Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
			child(ctx)
			if tries++; tries < 3 {
				return nil, errors.New("503")
			}
			return nil, nil
		}},
		{Name: "transform", DependsOn: []string{"extract"}, ContinueOnFailure: true, Func: func(context.Context, dag.Values) (map[string]any, error) {
			panic("bad row")
		}},
		{Name: "slow", Timeout: time.Millisecond, MaxRetries: dag.NoRetries, Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		{Name: "report", DependsOn: []string{"slow"}, Func: ok},
		{Name: "group", DependsOn: []string{"extract"}, Sub: []dag.Task{
			{Name: "a", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) { child(ctx); return nil, nil }},
			{Name: "b", DependsOn: []string{"a"}, Func: ok},
			{Name: "inner", DependsOn: []string{"b"}, Sub: []dag.Task{{Name: "z", Func: ok}}},
		}},
		{Name: "idle", DependsOn: []string{"slow"}, Sub: []dag.Task{{Name: "c", Func: ok}}},
		{Name: "fan", Expand: func(ctx context.Context, _ dag.Values) ([]dag.Task, error) {
			return []dag.Task{{Name: "x", Func: ok}, {Name: "y", Func: ok}}, nil
		}},
		dag.Map("double", "items", "doubled", func(_ context.Context, i int) (int, error) { return 2 * i, nil }),
		{Name: "maybe", Func: ok, When: func(dag.Values) bool { return false }},
		{Name: "nothing", Func: func(context.Context, dag.Values) (map[string]any, error) {
			return nil, fmt.Errorf("no new rows: %w", dag.ErrSkip)
		}},
	}
	res, err, spans, evs := record(t, tasks, dag.Options{
		Name:      "etl",
		Context:   map[string]any{"items": []int{1, 2}},
		KeepGoing: true,
		Backoff:   func() backoff.BackOff { return &backoff.ZeroBackOff{} },
	}, nil)
	if err == nil {
		t.Fatal("Wait() = nil; want the errors of slow")
	}
	if got := res.Context["doubled"]; !cmp.Equal(got, []int{2, 4}) {
		t.Errorf("doubled = %v; want [2 4]: Map's wrapped task lost its output", got)
	}

	task := func(name, state string, attempts int) map[string]string {
		return map[string]string{"dag.job": "etl", "dag.task": name, "dag.state": state, "dag.attempts": fmt.Sprint(attempts), "dag.restored": "false"}
	}
	attempt := func(name, state string, n int) map[string]string {
		return map[string]string{"dag.job": "etl", "dag.task": name, "dag.state": state, "dag.attempt": fmt.Sprint(n)}
	}
	with := func(m map[string]string, kv ...string) map[string]string {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const timeout = `dag: task "slow" timed out after 1ms: context deadline exceeded`
	want := []span{
		{Key: "attempt double #1", Parent: "task double", Attrs: attempt("double", "completed", 1)},
		{Key: "attempt double/0 #1", Parent: "task double/0", Attrs: attempt("double/0", "completed", 1)},
		{Key: "attempt double/1 #1", Parent: "task double/1", Attrs: attempt("double/1", "completed", 1)},
		{Key: "attempt extract #1", Parent: "task extract", Attrs: with(attempt("extract", "retrying", 1), "error.type", "*errors.errorString"), Status: codes.Error, Desc: "503", Events: []string{"exception: 503"}},
		{Key: "attempt extract #2", Parent: "task extract", Attrs: with(attempt("extract", "retrying", 2), "error.type", "*errors.errorString"), Status: codes.Error, Desc: "503", Events: []string{"exception: 503"}},
		{Key: "attempt extract #3", Parent: "task extract", Attrs: attempt("extract", "completed", 3)},
		{Key: "attempt fan #1", Parent: "task fan", Attrs: attempt("fan", "completed", 1)},
		{Key: "attempt fan/x #1", Parent: "task fan/x", Attrs: attempt("fan/x", "completed", 1)},
		{Key: "attempt fan/y #1", Parent: "task fan/y", Attrs: attempt("fan/y", "completed", 1)},
		{Key: "attempt group/a #1", Parent: "task group/a", Attrs: attempt("group/a", "completed", 1)},
		{Key: "attempt group/b #1", Parent: "task group/b", Attrs: attempt("group/b", "completed", 1)},
		{Key: "attempt group/inner/z #1", Parent: "task group/inner/z", Attrs: attempt("group/inner/z", "completed", 1)},
		{Key: "attempt nothing #1", Parent: "task nothing", Attrs: with(attempt("nothing", "skipped", 1), "dag.reason", "no new rows: dag: task skipped")},
		{Key: "attempt slow #1", Parent: "task slow", Attrs: with(attempt("slow", "failed", 1), "error.type", "timeout"), Status: codes.Error, Desc: timeout, Events: []string{"exception: " + timeout}},
		{Key: "attempt transform #1", Parent: "task transform", Attrs: with(attempt("transform", "failed", 1), "error.type", "*dag.PanicError"), Status: codes.Error, Desc: "panic: bad row", Events: []string{"exception: panic: bad row"}},
		{Key: "job etl", Parent: "test", Attrs: map[string]string{"dag.job": "etl", "dag.state": "failed", "error.type": "*errors.joinError"}, Status: codes.Error, Desc: err.Error(), Events: []string{"exception: " + err.Error()}},
		{Key: "query #1", Parent: "attempt extract #1", Attrs: map[string]string{"try": "1"}},
		{Key: "query #1", Parent: "attempt group/a #1", Attrs: map[string]string{"try": "1"}},
		{Key: "query #2", Parent: "attempt extract #2", Attrs: map[string]string{"try": "2"}},
		{Key: "query #3", Parent: "attempt extract #3", Attrs: map[string]string{"try": "3"}},
		{Key: "task double", Parent: "job etl", Attrs: task("double", "completed", 1)},
		{Key: "task double/0", Parent: "task double", Attrs: task("double/0", "completed", 1)},
		{Key: "task double/1", Parent: "task double", Attrs: task("double/1", "completed", 1)},
		{Key: "task extract", Parent: "job etl", Attrs: task("extract", "completed", 3)},
		{Key: "task fan", Parent: "job etl", Attrs: task("fan", "completed", 1)},
		{Key: "task fan/x", Parent: "task fan", Attrs: task("fan/x", "completed", 1)},
		{Key: "task fan/y", Parent: "task fan", Attrs: task("fan/y", "completed", 1)},
		{Key: "task group", Parent: "job etl", Attrs: task("group", "completed", 0)},
		{Key: "task group/a", Parent: "task group", Attrs: task("group/a", "completed", 1)},
		{Key: "task group/b", Parent: "task group", Attrs: task("group/b", "completed", 1)},
		{Key: "task group/inner", Parent: "task group", Attrs: task("group/inner", "completed", 0)},
		{Key: "task group/inner/z", Parent: "task group/inner", Attrs: task("group/inner/z", "completed", 1)},
		{Key: "task idle", Parent: "job etl", Attrs: task("idle", "upstream_failed", 0)},
		{Key: "task idle/c", Parent: "task idle", Attrs: task("idle/c", "upstream_failed", 0)},
		{Key: "task maybe", Parent: "job etl", Attrs: task("maybe", "skipped", 0)},
		{Key: "task nothing", Parent: "job etl", Attrs: with(task("nothing", "skipped", 1), "dag.reason", "no new rows: dag: task skipped")},
		{Key: "task report", Parent: "job etl", Attrs: task("report", "upstream_failed", 0)},
		{Key: "task slow", Parent: "job etl", Attrs: with(task("slow", "failed", 1), "error.type", "timeout"), Status: codes.Error, Desc: timeout, Events: []string{"exception: " + timeout}},
		{Key: "task transform", Parent: "job etl", Attrs: with(task("transform", "failed", 1), "error.type", "*dag.PanicError"), Status: codes.Error, Desc: "panic: bad row", Events: []string{"exception: panic: bad row"}},
		{Key: "test", Attrs: map[string]string{}},
	}
	got := summarize(spans)
	// query #1 appears twice; order them by parent.
	slices.SortStableFunc(got, func(a, b span) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Parent, b.Parent)
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	checkTimes(t, spans, evs, "fan", "double")
	checkPanicStack(t, spans)
}

func TestSpansCanceled(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	_, err, spans, evs := record(t, []dag.Task{
		{Name: "hang", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		{Name: "later", DependsOn: []string{"hang"}, Func: ok},
	}, dag.Options{Name: "etl"}, func(job *dagotel.Job) {
		<-started
		job.Cancel()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait() = %v; want context.Canceled", err)
	}
	want := []span{
		{Key: "attempt hang #1", Parent: "task hang", Attrs: map[string]string{"dag.job": "etl", "dag.task": "hang", "dag.state": "canceled", "dag.attempt": "1"}},
		{Key: "job etl", Parent: "test", Attrs: map[string]string{"dag.job": "etl", "dag.state": "canceled", "error.type": "canceled"}, Status: codes.Error, Desc: err.Error(), Events: []string{"exception: " + err.Error()}},
		{Key: "task hang", Parent: "job etl", Attrs: map[string]string{"dag.job": "etl", "dag.task": "hang", "dag.state": "canceled", "dag.attempts": "1", "dag.restored": "false"}},
		{Key: "task later", Parent: "job etl", Attrs: map[string]string{"dag.job": "etl", "dag.task": "later", "dag.state": "canceled", "dag.attempts": "0", "dag.restored": "false"}},
		{Key: "test", Attrs: map[string]string{}},
	}
	if diff := cmp.Diff(want, summarize(spans)); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	checkTimes(t, spans, evs)
}

func TestSpansRestored(t *testing.T) {
	t.Parallel()
	fail := true
	tasks := []dag.Task{
		{Name: "a", Func: ok},
		{Name: "b", DependsOn: []string{"a"}, MaxRetries: dag.NoRetries, Func: func(context.Context, dag.Values) (map[string]any, error) {
			if fail {
				return nil, errors.New("down")
			}
			return nil, nil
		}},
	}
	first, err, _, _ := record(t, tasks, dag.Options{Name: "etl"}, nil)
	if err == nil {
		t.Fatal("first Wait() = nil; want b's error")
	}
	fail = false
	_, err, spans, evs := record(t, tasks, dag.Options{Name: "etl", Resume: &first}, nil)
	if err != nil {
		t.Fatalf("second Wait() = %v; want nil", err)
	}
	want := []span{
		{Key: "attempt b #1", Parent: "task b", Attrs: map[string]string{"dag.job": "etl", "dag.task": "b", "dag.state": "completed", "dag.attempt": "1"}},
		{Key: "job etl", Parent: "test", Attrs: map[string]string{"dag.job": "etl", "dag.state": "completed"}},
		{Key: "task a", Parent: "job etl", Attrs: map[string]string{"dag.job": "etl", "dag.task": "a", "dag.state": "completed", "dag.attempts": "0", "dag.restored": "true"}},
		{Key: "task b", Parent: "job etl", Attrs: map[string]string{"dag.job": "etl", "dag.task": "b", "dag.state": "completed", "dag.attempts": "1", "dag.restored": "false"}},
		{Key: "test", Attrs: map[string]string{}},
	}
	if diff := cmp.Diff(want, summarize(spans)); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	checkTimes(t, spans, evs)
}

func TestRunInvalid(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	events := make(chan dag.Event)
	job, err := dagotel.Run(t.Context(), []dag.Task{{Name: "a", Func: ok, DependsOn: []string{"nope"}}}, dag.Options{Events: events}, tp)
	if !errors.Is(err, dag.ErrMissingDependency) || job != nil {
		t.Fatalf("Run() = %v, %v; want nil, ErrMissingDependency", job, err)
	}
	if e, open := <-events; open {
		t.Errorf("Events received %v; want it closed", e)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans recorded; want none", n)
	}
}

// checkTimes checks that each job, task and attempt span starts and ends at
// the times of its events. A group's span starts at its first event or its
// first child's, whichever comes first; the attempt of an Expand ends when
// Expand returns, at no event.
func checkTimes(t *testing.T, spans tracetest.SpanStubs, evs []dag.Event, expands ...string) {
	t.Helper()
	type times struct{ start, end time.Time }
	want := make(map[string]times)
	starts := func(name string, at time.Time) {
		if _, seen := want[name]; !seen {
			want[name] = times{start: at}
		}
	}
	for _, e := range evs {
		name := "task " + e.Task
		if e.Task == "" {
			name = "job " + e.Job
		}
		for i := range len(e.Task) {
			if e.Task[i] == '/' {
				starts("task "+e.Task[:i], e.Time)
			}
		}
		starts(name, e.Time)
		if e.To.Final() {
			want[name] = times{want[name].start, e.Time}
		}
		a := fmt.Sprintf("attempt %s #%d", e.Task, e.Attempt)
		if e.From == dag.Ready && e.To == dag.Running {
			want[a] = times{start: e.Time}
		}
		if e.From == dag.Running && e.Attempt > 0 && !slices.Contains(expands, e.Task) {
			want[a] = times{want[a].start, e.Time}
		}
	}
	for _, s := range spans {
		w, ok := want[key(s)]
		if !ok {
			continue
		}
		if !s.StartTime.Equal(w.start) || (!w.end.IsZero() && !s.EndTime.Equal(w.end)) {
			t.Errorf("span %s: from %v to %v; want from %v to %v", key(s), s.StartTime, s.EndTime, w.start, w.end)
		}
		delete(want, key(s))
	}
	for k := range want {
		t.Errorf("no span %s", k)
	}
}

// checkPanicStack checks that the panic's exception event holds the stack
// of the panicking Func.
func checkPanicStack(t *testing.T, spans tracetest.SpanStubs) {
	t.Helper()
	for _, s := range spans {
		if key(s) != "attempt transform #1" {
			continue
		}
		for _, e := range s.Events {
			for _, kv := range e.Attributes {
				if kv.Key == "exception.stacktrace" && strings.Contains(kv.Value.AsString(), "TestSpans") {
					return
				}
			}
		}
	}
	t.Error("no exception.stacktrace with the panicking Func's stack on attempt transform #1")
}
