package dagotel_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dagrun/dag"
	dagotel "github.com/dagrun/dag/otel"
)

// A job whose first fetch fails, traced into an in-memory exporter and
// printed as a tree. A real program would export with OTLP or stdouttrace
// instead; see otel/example.
func ExampleRun() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())

	var tries int // attempts of a task run one at a time
	fetch := func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		// A span started from ctx is a child of the attempt's span.
		_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("example").Start(ctx, "GET /orders")
		defer span.End()
		if tries++; tries == 1 {
			return nil, errors.New("503 Service Unavailable")
		}
		return map[string]any{"orders": 3}, nil
	}
	report := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }

	job, err := dagotel.Run(context.Background(), []dag.Task{
		{Name: "fetch", Func: fetch, MaxRetries: 1},
		{Name: "report", Func: report, DependsOn: []string{"fetch"}},
		{Name: "archive", Func: report, DependsOn: []string{"report"}, When: func(dag.Values) bool { return false }},
	}, dag.Options{
		Name:    "nightly",
		Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} },
	}, tp)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := job.Wait(); err != nil {
		fmt.Println(err)
	}
	// Wait returned: every span of the job has ended.
	printTree(exp.GetSpans())
	// Output:
	// job nightly dag.state=completed
	//   task fetch dag.state=completed dag.attempts=2
	//     attempt fetch dag.attempt=1 dag.state=retrying: Error 503 Service Unavailable
	//       GET /orders
	//     attempt fetch dag.attempt=2 dag.state=completed
	//       GET /orders
	//   task report dag.state=completed dag.attempts=1
	//     attempt report dag.attempt=1 dag.state=completed
	//   task archive dag.state=skipped dag.attempts=0
}

// printTree prints spans as a tree, children in the order they started,
// with a few of their attributes and their status.
func printTree(spans tracetest.SpanStubs) {
	children := make(map[trace.SpanID][]tracetest.SpanStub)
	for _, s := range spans {
		children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
	}
	var walk func(parent trace.SpanID, indent string)
	walk = func(parent trace.SpanID, indent string) {
		kids := children[parent]
		slices.SortFunc(kids, func(a, b tracetest.SpanStub) int {
			return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.Name, b.Name))
		})
		for _, s := range kids {
			line := indent + s.Name
			for _, kv := range s.Attributes {
				switch kv.Key {
				case "dag.state", "dag.attempt", "dag.attempts":
					line += fmt.Sprintf(" %s=%s", kv.Key, kv.Value.Emit())
				}
			}
			if s.Status.Code == codes.Error {
				line += ": Error " + s.Status.Description
			}
			fmt.Println(line)
			walk(s.SpanContext.SpanID(), indent+"  ")
		}
	}
	walk(trace.SpanID{}, "")
}
