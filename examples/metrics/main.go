// Command metrics shows Prometheus metrics of dag jobs, built from their
// events by a Collector. It runs a demo job, a nightly report with a flaky
// fetch, an optional step that fails and one that is skipped, then prints
// a scrape of the metrics in Prometheus' text format:
//
//	go run .
//
// With -serve it runs the job again and again, two at a time, and serves
// the metrics on /metrics instead, to watch them with curl or Prometheus:
//
//	go run . -serve localhost:2112
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

func main() {
	serve := flag.String("serve", "", "serve /metrics on this address and run jobs until interrupted, instead of printing one scrape")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	reg := prometheus.NewRegistry()
	c := NewCollector(reg)
	if *serve == "" {
		// The job's failure is part of the demo: the scrape shows it.
		_ = runDemo(ctx, c, "nightly")
		c.Wait()
		if err := printScrape(reg); err != nil {
			log.Fatal(err)
		}
		return
	}

	srv := &http.Server{Addr: *serve, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	})
	for _, name := range []string{"nightly-eu", "nightly-us"} {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = runDemo(ctx, c, name)
			}
		})
	}
	log.Printf("serving http://%s/metrics; interrupt to stop", *serve)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
		stop()
	}
	wg.Wait()
	c.Wait()
}

// runDemo runs the demo job named name, observed by c, and returns Wait's
// error.
func runDemo(ctx context.Context, c *Collector, name string) error {
	// work sleeps between 10 and 60 ms, or until ctx ends.
	work := func(ctx context.Context) error {
		select {
		case <-time.After(time.Duration(10+rand.IntN(50)) * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	step := func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		return nil, work(ctx)
	}
	var calls int
	flaky := func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		// Only one attempt of a task runs at a time: calls needs no lock.
		calls++
		if err := work(ctx); err != nil {
			return nil, err
		}
		if calls < 3 {
			return nil, errors.New("orders service: 503 Service Unavailable")
		}
		return nil, nil
	}
	failing := func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		if err := work(ctx); err != nil {
			return nil, err
		}
		return nil, errors.New("chat webhook: 404 Not Found")
	}
	job, err := dag.Run(ctx, []dag.Task{
		{Name: "users", Func: step},
		{Name: "orders", Func: flaky, MaxRetries: 3},
		{Name: "join", Func: step, DependsOn: []string{"users", "orders"}},
		{Name: "report", Func: step, DependsOn: []string{"join"}},
		{Name: "notify", Func: failing, DependsOn: []string{"report"}, ContinueOnFailure: true},
		{Name: "archive", Func: step, DependsOn: []string{"report"}, When: func(dag.Values) bool { return false }},
	}, dag.Options{
		Name:    name,
		Events:  c.Observe(nil),
		Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(20 * time.Millisecond) },
	})
	if err != nil {
		return err
	}
	_, err = job.Wait()
	return err
}

// printScrape prints what a scrape of reg returns.
func printScrape(reg prometheus.Gatherer) error {
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(os.Stdout, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}
