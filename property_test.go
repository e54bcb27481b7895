package dag_test

// The property test: hundreds of random jobs with random faults, each in a
// testing/synctest bubble, checked with checkJob and more.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// What an attempt of the property test does.
const (
	propOK        = iota // succeed, after a fake delay
	propErr              // fail, after a fake delay
	propPanic            // panic with an error
	propPermanent        // fail with backoff.Permanent
	propHang             // block until ctx ends (needs a timeout or a stop)
	propIgnore           // block until the end of the test, ignoring ctx
	propGoexit           // runtime.Goexit
)

// propProbe watches the Funcs of one property-test job.
type propProbe struct {
	mu        sync.Mutex
	calls     map[string]int
	succeeded map[string]bool // some attempt returned successfully
	problems  []string

	running atomic.Int32 // attempts whose ctx has not ended
}

func (p *propProbe) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// propCase is one random job.
type propCase struct {
	tasks    []dag.Task
	opts     dag.Options
	cancelAt time.Duration // 0: no cancel
	byCtx    bool          // cancel Run's ctx rather than calling Job.Cancel
	timeline string        // what was drawn, for failure messages
}

func newPropCase(seed uint64, p *propProbe, release <-chan struct{}) propCase {
	r := rand.New(rand.NewPCG(seed, 0xdecaf))
	n := 1 + r.IntN(12)
	tasks := randomDAG(r, n, 0.2)
	c := propCase{
		opts: dag.Options{
			Name:        fmt.Sprint("prop-", seed),
			MaxParallel: 1 + r.IntN(4),
			MaxRetries:  r.IntN(3),
			Context:     map[string]any{"init": true},
		},
	}
	delay := time.Duration(r.IntN(20)) * time.Millisecond
	c.opts.Backoff = func() backoff.BackOff { return backoff.NewConstantBackOff(delay) }
	if r.IntN(4) == 0 {
		c.opts.Timeout = time.Duration(20+r.IntN(200)) * time.Millisecond
	}
	if r.IntN(4) == 0 {
		c.cancelAt = time.Duration(1+r.IntN(150)) * time.Millisecond
		c.byCtx = r.IntN(2) == 0
	}
	var tl strings.Builder
	fmt.Fprintf(&tl, "MaxParallel %d, MaxRetries %d, backoff %v, Timeout %v, cancel at %v (ctx %t)\n",
		c.opts.MaxParallel, c.opts.MaxRetries, delay, c.opts.Timeout, c.cancelAt, c.byCtx)

	cont := map[string]bool{}
	for i := range tasks {
		task := &tasks[i]
		task.MaxRetries = r.IntN(4) - 1
		task.ContinueOnFailure = r.IntN(3) == 0
		cont[task.Name] = task.ContinueOnFailure
		if r.IntN(3) == 0 {
			task.Timeout = time.Duration(10+r.IntN(40)) * time.Millisecond
		}
	}
	for i := range tasks {
		task := &tasks[i]
		name, deps := task.Name, task.DependsOn
		kinds := make([]int, 4)
		sleeps := make([]time.Duration, 4)
		for a := range kinds {
			switch x := r.IntN(100); {
			case x < 55:
				kinds[a] = propOK
			case x < 70:
				kinds[a] = propErr
			case x < 77:
				kinds[a] = propPanic
			case x < 82:
				kinds[a] = propPermanent
			case x < 89:
				kinds[a] = propHang
			case x < 96:
				kinds[a] = propIgnore
			default:
				kinds[a] = propGoexit
			}
			if (kinds[a] == propHang || kinds[a] == propIgnore) && task.Timeout == 0 {
				kinds[a] = propOK // it would hang the job
			}
			sleeps[a] = time.Duration(r.IntN(30)) * time.Millisecond
		}
		fmt.Fprintf(&tl, "%s deps %v timeout %v retries %d cont %t kinds %v sleeps %v\n",
			name, deps, task.Timeout, task.MaxRetries, task.ContinueOnFailure, kinds, sleeps)
		mp := c.opts.MaxParallel
		task.Func = func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if n := p.running.Add(1); int(n) > mp {
				p.problem("%s: %d attempts running; MaxParallel is %d", name, n, mp)
			}
			var once sync.Once
			dec := func() { once.Do(func() { p.running.Add(-1) }) }
			stop := context.AfterFunc(ctx, dec)
			defer func() {
				stop()
				dec()
			}()

			p.mu.Lock()
			p.calls[name]++
			a := p.calls[name] - 1
			for _, d := range deps {
				if !p.succeeded[d] && !cont[d] {
					p.problems = append(p.problems, fmt.Sprintf("%s started before its dependency %s completed", name, d))
				}
				if _, ok := in.Get("k" + d); !ok && !cont[d] {
					p.problems = append(p.problems, fmt.Sprintf("%s does not see the output of its dependency %s", name, d))
				}
			}
			p.mu.Unlock()
			kind, sleep := kinds[min(a, len(kinds)-1)], sleeps[min(a, len(sleeps)-1)]

			if kind == propOK || kind == propErr {
				timer := time.NewTimer(sleep)
				defer timer.Stop()
				select {
				case <-timer.C:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			switch kind {
			case propErr:
				return nil, errBoom
			case propPanic:
				panic(errBang)
			case propPermanent:
				return nil, backoff.Permanent(errBoom)
			case propHang:
				<-ctx.Done()
				return nil, ctx.Err()
			case propIgnore:
				<-release
				return map[string]any{"late-" + name: true}, nil
			case propGoexit:
				runtime.Goexit()
			}
			p.mu.Lock()
			p.succeeded[name] = true
			p.mu.Unlock()
			return map[string]any{"k" + name: a + 1}, nil
		}
	}
	c.tasks = tasks
	c.timeline = tl.String()
	return c
}

// TestPropertyRandomJobs runs a few hundred random jobs, with random
// errors, panics, Goexits, timeouts, retries, ContinueOnFailure, job
// timeouts and cancels, in fake time, and checks what must always hold.
func TestPropertyRandomJobs(t *testing.T) {
	t.Parallel()
	for seed := range uint64(300) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &propProbe{calls: map[string]int{}, succeeded: map[string]bool{}}
				release := make(chan struct{})
				releaseNow := sync.OnceFunc(func() { close(release) })
				defer releaseNow()
				c := newPropCase(seed, p, release)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				job, rec := startJob(t, ctx, c.tasks, c.opts)
				if c.cancelAt > 0 {
					go func() {
						timer := time.NewTimer(c.cancelAt)
						defer timer.Stop()
						select {
						case <-timer.C:
						case <-job.Done():
							return
						}
						if c.byCtx {
							cancel()
						} else {
							job.Cancel()
						}
					}()
				}
				res, err := waitJob(t, job)
				waited := time.Now()
				out := outcome{Res: res, Err: err, Events: rec.events(t)}
				checkJob(t, c.tasks, c.opts, out)

				// Wait returns promptly once the job stops.
				for _, e := range out.Events {
					if e.To == dag.Canceled && e.Task != "" {
						if d := waited.Sub(e.Time); d > 50*time.Millisecond {
							t.Errorf("Wait returned %v after the job stopped; want at most 50ms", d)
						}
						break
					}
				}
				// The context holds the outputs of completed tasks only.
				wantKeys := []string{"init"}
				for name, tr := range res.Tasks {
					if tr.State == dag.Completed {
						wantKeys = append(wantKeys, "k"+name)
					}
				}
				var gotKeys []string
				for k := range res.Context {
					gotKeys = append(gotKeys, k)
				}
				if diff := cmp.Diff(wantKeys, gotKeys, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("Result.Context keys mismatch (-want +got):\n%s", diff)
				}

				releaseNow()
				synctest.Wait() // every Func has returned
				p.mu.Lock()
				defer p.mu.Unlock()
				for _, prob := range p.problems {
					t.Error(prob)
				}
				for name, tr := range res.Tasks {
					if p.calls[name] != tr.Attempts {
						t.Errorf("task %s: Func called %d times; Result says %d attempts", name, p.calls[name], tr.Attempts)
					}
				}
				if pr := job.Progress(); pr.Abandoned != 0 {
					t.Errorf("Progress().Abandoned = %d once every Func returned; want 0", pr.Abandoned)
				}
				if t.Failed() {
					t.Logf("the job:\n%s", c.timeline)
					for _, e := range out.Events {
						t.Logf("%v", e)
					}
				}
			})
		})
	}
}
