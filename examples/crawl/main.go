// Command crawl pretends to crawl a web site with dag, to show a job's
// progress as it runs: robots.txt first, then the index page of each
// section, then every page of the section, then a report. Each fetch sleeps
// a random while; some pages are not found (they fail, and the job goes on
// without them) and some fail once and succeed when retried.
//
// On a terminal, a progress line is rewritten in place; when stdout is not
// a terminal (a pipe, a file, CI), a plain line is printed every -every.
//
//	go run ./examples/crawl                                      # about 2 s
//	go run ./examples/crawl -sections 40 -pages 50 -sleep 200ms  # longer
//	go run ./examples/crawl | cat                                # plain lines
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/dagrun/dag"
)

// config is the demo's flags.
type config struct {
	sections, pages, parallel int
	sleep, every              time.Duration
	missing, flaky            float64
	seed                      uint64
}

func main() {
	var c config
	flag.IntVar(&c.sections, "sections", 10, "sections of the site")
	flag.IntVar(&c.pages, "pages", 30, "pages in each section")
	flag.IntVar(&c.parallel, "parallel", 8, "fetches at once (Options.MaxParallel)")
	flag.DurationVar(&c.sleep, "sleep", 80*time.Millisecond, "longest fetch; each takes a random time up to it")
	flag.DurationVar(&c.every, "every", 0, "time between progress updates (default 100ms on a terminal, 500ms otherwise)")
	flag.Float64Var(&c.missing, "missing", 0.04, "share of pages not found")
	flag.Float64Var(&c.flaky, "flaky", 0.08, "share of pages that fail once")
	flag.Uint64Var(&c.seed, "seed", 1, "which pages are missing or flaky")
	flag.Parse()
	if c.sections < 1 || c.pages < 1 || c.parallel < 1 || c.sleep < 0 || c.every < 0 {
		fmt.Fprintln(os.Stderr, "crawl: -sections, -pages and -parallel must be positive, -sleep and -every not negative")
		os.Exit(2)
	}
	// A terminal shows a line rewritten in place; anything else, such as
	// a pipe or a file, gets plain lines.
	tty := false
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	if c.every == 0 {
		c.every = 500 * time.Millisecond
		if tty {
			c.every = 100 * time.Millisecond
		}
	}
	os.Exit(run(context.Background(), os.Stdout, tty, c))
}

// page is what the site does when a page is fetched.
type page struct {
	name    string
	missing bool // not found: fails for good
	flaky   bool // fails at the first attempt
	size    int  // bytes
}

// site returns the pages of each section, the same for the same seed.
func site(c config) [][]page {
	rng := rand.New(rand.NewPCG(c.seed, 0))
	sections := make([][]page, c.sections)
	for s := range sections {
		for p := range c.pages {
			pg := page{name: fmt.Sprintf("sec%d-page%02d", s, p), size: 1000 + rng.IntN(20000)}
			switch x := rng.Float64(); {
			case x < c.missing:
				pg.missing = true
			case x < c.missing+c.flaky:
				pg.flaky = true
			}
			sections[s] = append(sections[s], pg)
		}
	}
	return sections
}

// errNotFound is the error of a page that does not exist.
var errNotFound = errors.New("404 not found")

// fetch returns a task that fetches pg after its dependencies.
func fetch(c config, pg page, deps ...string) dag.Task {
	var attempts atomic.Int32
	return dag.Task{
		Name:              pg.name,
		DependsOn:         deps,
		ContinueOnFailure: true, // a missing page does not stop the crawl
		Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			select {
			case <-time.After(rand.N(c.sleep + 1)):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
			switch {
			case pg.missing:
				return nil, backoff.Permanent(errNotFound)
			case pg.flaky && attempts.Add(1) == 1:
				return nil, errors.New("503 service unavailable")
			}
			return map[string]any{"page:" + pg.name: pg.size}, nil
		},
	}
}

// tasks is the crawl: robots.txt, each section's index, its pages, and a
// report that depends on every page.
func tasks(c config) []dag.Task {
	ts := []dag.Task{fetch(c, page{name: "robots.txt"})}
	var all []string
	for s, pages := range site(c) {
		index := fmt.Sprintf("sec%d", s)
		ts = append(ts, fetch(c, page{name: index, size: 500}, "robots.txt"))
		for _, pg := range pages {
			ts = append(ts, fetch(c, pg, index))
			all = append(all, pg.name)
		}
	}
	return append(ts, dag.Task{
		Name:      "report",
		DependsOn: all,
		Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			pages, bytes := 0, 0
			for k, v := range in.All() {
				if strings.HasPrefix(k, "page:") && strings.Contains(k, "-page") {
					pages++
					bytes += v.(int)
				}
			}
			return map[string]any{"pages": pages, "bytes": bytes}, nil
		},
	})
}

// run crawls, shows the progress on w, prints a summary and returns the
// exit code.
func run(ctx context.Context, w io.Writer, tty bool, c config) int {
	start := time.Now()
	job, err := dag.Run(ctx, tasks(c), dag.Options{
		Name:        "crawl",
		MaxParallel: c.parallel,
		MaxRetries:  2,
		Backoff:     func() backoff.BackOff { return backoff.NewConstantBackOff(c.sleep / 4) },
	})
	if err != nil {
		fmt.Fprintln(w, err)
		return 2
	}
	show := progress(w, tty, start)
	show(job.Progress())
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-job.Done():
			done = true
		case <-tick.C:
			show(job.Progress())
		}
	}
	res, err := job.Wait()
	show(job.Progress())
	if tty {
		fmt.Fprintln(w) // keep the last progress line
	}

	var missing, retried []string
	for name, t := range res.Tasks {
		if t.State == dag.Failed {
			missing = append(missing, name)
		} else if t.Attempts > 1 {
			retried = append(retried, name)
		}
	}
	slices.Sort(missing)
	slices.Sort(retried)
	fmt.Fprintf(w, "crawl %s in %.1fs: %d tasks, %d pages fetched (%d bytes), %d retried, %d failed\n",
		res.State, time.Since(start).Seconds(), len(res.Tasks), res.Context["pages"], res.Context["bytes"], len(retried), len(missing))
	if len(missing) > 0 {
		fmt.Fprintf(w, "failed: %s\n", list(missing, 8))
	}
	if err != nil {
		fmt.Fprintln(w, err)
		return 1
	}
	return 0
}

// progress returns a func that shows a progress line: rewritten in place
// with a carriage return on a terminal, a new line otherwise.
func progress(w io.Writer, tty bool, start time.Time) func(dag.Progress) {
	width := 0
	return func(p dag.Progress) {
		line := fmt.Sprintf("[%4.1fs] %s", time.Since(start).Seconds(), p)
		if !tty {
			fmt.Fprintln(w, line)
			return
		}
		// Pad with spaces to wipe the end of a longer line before.
		pad := max(width-len(line), 0)
		width = len(line)
		fmt.Fprintf(w, "\r%s%s", line, strings.Repeat(" ", pad))
	}
}

// list joins the first n names, and counts the rest.
func list(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
