// Command example runs a small job and prints its spans to stdout with
// OpenTelemetry's stdouttrace exporter, one JSON object per span:
//
//	cd otel && go run ./example
//
// The job fetches orders (the first try fails), transforms them in a group
// of two tasks, writes a report and tries to notify a chat, which fails
// without failing the job. A real program would export with OTLP to a
// collector instead; only the exporter changes.
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/dagrun/dag"
	dagotel "github.com/dagrun/dag/otel"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run runs the job and writes its spans to w. The job's own failure is
// not an error of run: it shows in the spans.
func run(w io.Writer) error {
	exp, err := stdouttrace.New(stdouttrace.WithWriter(w), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("nightly-report"))),
	)
	job, err := dagotel.Run(context.Background(), tasks(), dag.Options{
		Name:    "nightly",
		Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Millisecond) },
	}, tp)
	if err == nil {
		_, _ = job.Wait()
	}
	// Shutdown exports the spans still in the batch.
	return errors.Join(err, tp.Shutdown(context.Background()))
}

func tasks() []dag.Task {
	var tries int // attempts of a task run one at a time
	return []dag.Task{
		{Name: "fetch", MaxRetries: 2, Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
			// A span started from ctx is a child of the attempt's span.
			_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("example").Start(ctx, "GET /orders")
			defer span.End()
			time.Sleep(5 * time.Millisecond)
			if tries++; tries == 1 {
				return nil, errors.New("orders service: 503 Service Unavailable")
			}
			return map[string]any{"orders": []string{"o-1", "o-2"}}, nil
		}},
		{Name: "transform", DependsOn: []string{"fetch"}, Sub: []dag.Task{
			{Name: "clean", Func: pause(3 * time.Millisecond)},
			{Name: "enrich", Func: pause(4 * time.Millisecond), DependsOn: []string{"clean"}},
		}},
		{Name: "report", Func: pause(2 * time.Millisecond), DependsOn: []string{"transform"}},
		{Name: "notify", DependsOn: []string{"report"}, ContinueOnFailure: true, MaxRetries: dag.NoRetries,
			Func: func(context.Context, dag.Values) (map[string]any, error) {
				return nil, errors.New("chat webhook: 404 Not Found")
			}},
	}
}

// pause returns a TaskFunc that takes d, or less if its ctx ends.
func pause(d time.Duration) dag.TaskFunc {
	return func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		select {
		case <-time.After(d):
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
