package dagotel_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dagrun/dag"
	dagotel "github.com/dagrun/dag/otel"
)

// BenchmarkRun compares a job of no-op tasks run by dag.Run and by
// dagotel.Run, on a TracerProvider without span processors, so that what
// is measured is the recording and the SDK's spans, not an exporter. Wide
// is 1,000 independent tasks; chain is 1,000 tasks each depending on the
// one before, where the wait of each attempt for its span is on the path.
func BenchmarkRun(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	const n = 1000
	shapes := map[string][]dag.Task{}
	for _, shape := range []string{"wide", "chain"} {
		tasks := make([]dag.Task, n)
		for i := range tasks {
			tasks[i] = dag.Task{Name: fmt.Sprint("t", i), Func: ok}
			if shape == "chain" && i > 0 {
				tasks[i].DependsOn = []string{fmt.Sprint("t", i-1)}
			}
		}
		shapes[shape] = tasks
	}
	run := map[string]func(tasks []dag.Task) error{
		"dag": func(tasks []dag.Task) error {
			job, err := dag.Run(context.Background(), tasks, dag.Options{})
			if err == nil {
				_, err = job.Wait()
			}
			return err
		},
		"dagotel": func(tasks []dag.Task) error {
			job, err := dagotel.Run(context.Background(), tasks, dag.Options{}, tp)
			if err == nil {
				_, err = job.Wait()
			}
			return err
		},
	}
	for _, shape := range []string{"wide", "chain"} {
		for _, with := range []string{"dag", "dagotel"} {
			b.Run(shape+"/"+with, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := run[with](shapes[shape]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
			})
		}
	}
}
