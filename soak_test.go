package dag_test

// TestSoak: many random jobs at once, in real time, under the race
// detector.
//
// The property test (TestPropertyRandomJobs) runs each random job alone in a
// synctest bubble: time is fake, so every run of a seed is the same run. That
// is what makes it a good property test, and also what keeps it from ever
// seeing the interleavings that real time produces: a timeout firing while a
// worker is between its Func's return and the job's lock, a grace timer
// racing a late return, a retry timer racing a stale expiry, an event reader
// falling behind while other jobs load the CPU. The soak therefore runs in
// real time, on purpose, many jobs at once (-dag.soakpar, 32 by default) on
// goroutines the test owns, and checks only what must hold whatever the
// timing: the invariants of the property test (checkJob), a MaxParallel bound
// counted exactly (the attempts whose context has not ended, read with
// ctx.Err() under the probe's lock, not by goroutines that may run late),
// the cause of every failed attempt and of every stop, what each Func sees in
// the job context, the Funcs' calls against the events, and that every job
// ends, every events channel is closed and nothing leaks. Timing bounds
// (Wait within 50 ms of a stop) are measured and reported, not asserted: on a
// loaded two-core machine under -race they say more about the machine than
// about dag; only a hang (skHang) fails. A failure names the seed and logs
// what was drawn and every event. The seed fixes the job, not the timing,
// and a job alone rarely meets the interleaving that broke it: rerun the
// whole soak, or that job under load, many copies at once:
// -dag.soakone -dag.soakseed=SEED.
//
//	go test -race -count=1 -run TestSoak -v .                        # short: 2000 jobs, seconds
//	go test -race -run TestSoak -dag.soak=10000 -timeout 60m -v .   # long

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/dagrun/dag"
)

var (
	skJobs = flag.Int("dag.soak", 2000, "TestSoak runs this many random jobs; the long soak is -dag.soak=10000 -timeout 60m")
	skSeed = flag.Uint64("dag.soakseed", 0, "TestSoak's job i uses seed dag.soakseed+i")
	skPar  = flag.Int("dag.soakpar", 32, "TestSoak runs this many jobs at once")
	skOne  = flag.Bool("dag.soakone", false, "every job of TestSoak uses seed dag.soakseed: to chase one seed's failure under load")
)

const (
	// skHang is how long a job, its events or its Funcs may take before the
	// soak calls it hung. Jobs take milliseconds; this only catches hangs.
	skHang = 30 * time.Second
	// skHeapSlack is how far above its baseline the heap may end, plus
	// skHeapPerJob per job: the testing package keeps the name of every
	// subtest it ran (to tell duplicates apart), about 130 bytes each.
	skHeapSlack  = 8 << 20
	skHeapPerJob = 256
)

var (
	skErrPerm = errors.New("soak: permanent")
	skErrStop = errors.New("soak: stopped by the test")
)

// What an attempt does.
const (
	skDoOK        = iota // succeed, after a short delay (returns early if ctx ends)
	skDoErr              // fail, after a short delay
	skDoPanic            // panic
	skDoPermanent        // fail with backoff.Permanent
	skDoHang             // block until ctx ends: a timeout or a stop ends it
	skDoIgnore           // ignore ctx until the job has ended and been checked
	skDoLate             // ignore ctx for up to 30 ms, then succeed: a late result
	skDoGoexit           // runtime.Goexit
	skNumKinds
)

var skKindNames = [skNumKinds]string{"ok", "err", "panic", "permanent", "hang", "ignore", "late", "goexit"}

// skStats are the soak's figures, summed over every job.
type skStats struct {
	jobs, tasks, tasksStarted, attempts, events atomic.Int64
	kinds                                       [skNumKinds]atomic.Int64 // attempts by what they did
	lateDiscarded                               atomic.Int64             // late attempts whose ctx had ended
	backoffStops, backoffPanics                 atomic.Int64             // retry policies that stop or panic
	jobCancels, ctxCancels, bothCancels         atomic.Int64             // stops issued while the job ran
	jobTimeouts, jobTimeoutsFired               atomic.Int64             // jobs with Options.Timeout; ended by it
	continueOnFailure                           atomic.Int64             // tasks with ContinueOnFailure
	slowReaders, pollers                        atomic.Int64
	completed, failed, canceled                 atomic.Int64 // jobs by final state
	abandoned                                   atomic.Int64 // TaskResult.Abandoned, summed
	lost, outOfOrder                            atomic.Int64
	maxStopToWait, slowStops                    atomic.Int64             // ns; stops that took Wait over 50 ms
	maxLive                                     atomic.Int64             // most attempts seen running at once in a job
	seen                                        [skNumKinds]atomic.Int64 // failed attempts by cause, from the events
}

func skMax(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}

// skSeen is what one attempt of a task saw of one of its dependencies.
type skSeen struct {
	task, dep string
	ok        bool
	val       any
	n         int // keys the attempt could see in all
}

// skProbe watches the Funcs of one job.
type skProbe struct {
	st *skStats
	mp int // the job's MaxParallel, resolved

	mu        sync.Mutex
	calls     map[string]int
	succeeded map[string]bool // some attempt returned successfully
	live      map[int]context.Context
	nextID    int
	maxLive   int
	seen      []skSeen
	problems  []string
}

func (p *skProbe) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// skCase is one random job.
type skCase struct {
	tasks     []dag.Task
	opts      dag.Options
	deps      map[string][]string
	cancelAt  time.Duration // 0: no stop
	cancelHow int           // 0 Job.Cancel, 1 cancel Run's ctx, 2 both at once from three goroutines
	slowEvery int           // 0: a fast reader; else sleep 1 ms after every slowEvery-th event
	evBuf     int           // capacity of the events channel
	poll      bool          // call Progress every millisecond while the job runs
	timeline  string
}

func skNewCase(seed uint64, p *skProbe, release <-chan struct{}) skCase {
	st := p.st
	r := rand.New(rand.NewPCG(seed, 0x50a4))
	n := 1 + r.IntN(24)
	tasks := randomDAG(r, n, 0.05+0.3*r.Float64())
	// Some jobs run clean and deep, others fail at every step.
	faultRate := []float64{0, 0.05, 0.15, 0.3, 0.6}[r.IntN(5)]
	c := skCase{
		opts: dag.Options{
			Name:        fmt.Sprint("soak-", seed),
			MaxParallel: r.IntN(5), // 0: GOMAXPROCS
			MaxRetries:  r.IntN(3),
			Context:     map[string]any{"init": true},
		},
		deps:  map[string][]string{},
		evBuf: []int{0, 0, 1, 16}[r.IntN(4)],
	}
	p.mp = c.opts.MaxParallel
	if p.mp == 0 {
		p.mp = runtime.GOMAXPROCS(0)
	}
	var policy string
	switch x := r.IntN(20); {
	case x < 12:
		d := time.Duration(r.IntN(4)) * time.Millisecond
		policy = fmt.Sprint("constant ", d)
		c.opts.Backoff = func() backoff.BackOff { return backoff.NewConstantBackOff(d) }
	case x < 16:
		policy = "zero"
		c.opts.Backoff = func() backoff.BackOff { return &backoff.ZeroBackOff{} }
	case x < 18:
		policy = "stop after one retry"
		c.opts.Backoff = func() backoff.BackOff {
			st.backoffStops.Add(1)
			return backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), 1)
		}
	case x < 19:
		policy = "panics"
		c.opts.Backoff = func() backoff.BackOff {
			st.backoffPanics.Add(1)
			panic("soak: Backoff panics")
		}
	default:
		policy = "default (100 ms exponential)"
	}
	if r.IntN(5) == 0 {
		c.opts.Timeout = time.Duration(5+r.IntN(60)) * time.Millisecond
		st.jobTimeouts.Add(1)
	}
	if r.IntN(4) == 0 {
		c.cancelAt = time.Duration(1+r.IntN(40)) * time.Millisecond
		c.cancelHow = r.IntN(3)
	}
	if r.IntN(4) == 0 {
		c.slowEvery = 1 + r.IntN(4)
		st.slowReaders.Add(1)
	}
	if r.IntN(4) == 0 {
		c.poll = true
		st.pollers.Add(1)
	}
	var tl strings.Builder
	fmt.Fprintf(&tl, "seed %d: %d tasks, fault rate %v, MaxParallel %d, MaxRetries %d, backoff %s, Timeout %v, stop at %v (how %d), slow reader %d, events buffer %d, poll %t\n",
		seed, n, faultRate, c.opts.MaxParallel, c.opts.MaxRetries, policy, c.opts.Timeout, c.cancelAt, c.cancelHow, c.slowEvery, c.evBuf, c.poll)

	cont := map[string]bool{}
	for i := range tasks {
		task := &tasks[i]
		task.MaxRetries = r.IntN(4) - 1
		task.ContinueOnFailure = r.IntN(3) == 0
		if task.ContinueOnFailure {
			st.continueOnFailure.Add(1)
		}
		cont[task.Name] = task.ContinueOnFailure
		c.deps[task.Name] = task.DependsOn
		if r.IntN(3) == 0 {
			task.Timeout = time.Duration(2+r.IntN(10)) * time.Millisecond
		}
	}
	for i := range tasks {
		task := &tasks[i]
		name, deps := task.Name, task.DependsOn
		// Blocking kinds need something to end them.
		canBlock := task.Timeout > 0 || c.opts.Timeout > 0 || c.cancelAt > 0
		kinds := make([]int, 4)
		durs := make([]time.Duration, 4)
		for a := range kinds {
			kinds[a] = skDoOK
			if r.Float64() < faultRate {
				switch x := r.IntN(100); {
				case x < 30:
					kinds[a] = skDoErr
				case x < 45:
					kinds[a] = skDoPanic
				case x < 55:
					kinds[a] = skDoPermanent
				case x < 70:
					kinds[a] = skDoHang
				case x < 80:
					kinds[a] = skDoIgnore
				case x < 95:
					kinds[a] = skDoLate
				default:
					kinds[a] = skDoGoexit
				}
			}
			if (kinds[a] == skDoHang || kinds[a] == skDoIgnore) && !canBlock {
				kinds[a] = skDoErr
			}
			durs[a] = time.Duration(r.IntN(5)) * time.Millisecond
			if kinds[a] == skDoLate {
				durs[a] = time.Duration(r.IntN(30)) * time.Millisecond
			}
		}
		names := make([]string, len(kinds))
		for a, k := range kinds {
			names[a] = skKindNames[k]
		}
		fmt.Fprintf(&tl, "%s deps %v timeout %v retries %d cont %t calls do %v for %v\n",
			name, deps, task.Timeout, task.MaxRetries, task.ContinueOnFailure, names, durs)
		task.Func = func(ctx context.Context, in dag.Values) (map[string]any, error) {
			p.mu.Lock()
			id := p.nextID
			p.nextID++
			p.live[id] = ctx
			live := 0
			for _, lc := range p.live {
				if lc.Err() == nil {
					live++
				}
			}
			if live > p.mp {
				p.problems = append(p.problems, fmt.Sprintf("%s: %d attempts running (ctx not ended); MaxParallel is %d", name, live, p.mp))
			}
			p.maxLive = max(p.maxLive, live)
			a := p.calls[name]
			p.calls[name]++
			nkeys := in.Len()
			for _, d := range deps {
				v, ok := in.Get("k" + d)
				p.seen = append(p.seen, skSeen{task: name, dep: d, ok: ok, val: v, n: nkeys})
				if !cont[d] && !p.succeeded[d] {
					p.problems = append(p.problems, fmt.Sprintf("%s started before its dependency %s completed", name, d))
				}
				if !ok && !cont[d] {
					p.problems = append(p.problems, fmt.Sprintf("%s does not see the output of its dependency %s", name, d))
				}
			}
			if v, ok := in.Get("init"); !ok || v != true {
				p.problems = append(p.problems, fmt.Sprintf("%s sees init = %v, %t; want true", name, v, ok))
			}
			for k := range in.All() {
				if strings.HasPrefix(k, "late-") {
					p.problems = append(p.problems, fmt.Sprintf("%s sees %s, the output of an attempt that ignored its context", name, k))
				}
			}
			p.mu.Unlock()
			defer func() {
				p.mu.Lock()
				delete(p.live, id)
				p.mu.Unlock()
			}()

			kind, dur := kinds[min(a, len(kinds)-1)], durs[min(a, len(durs)-1)]
			st.attempts.Add(1)
			st.kinds[kind].Add(1)
			switch kind {
			case skDoOK, skDoErr:
				if dur > 0 {
					timer := time.NewTimer(dur)
					defer timer.Stop()
					select {
					case <-timer.C:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				if kind == skDoErr {
					return nil, errBoom
				}
			case skDoPanic:
				if a%2 == 0 {
					panic(errBang)
				}
				panic("soak: a panic that is not an error")
			case skDoPermanent:
				return nil, backoff.Permanent(skErrPerm)
			case skDoHang:
				<-ctx.Done()
				return nil, ctx.Err()
			case skDoIgnore:
				<-release
				return map[string]any{"late-" + name: true}, nil
			case skDoLate:
				time.Sleep(dur) // ignores ctx
				if ctx.Err() != nil {
					st.lateDiscarded.Add(1)
					return map[string]any{"late-" + name: true}, nil
				}
			case skDoGoexit:
				runtime.Goexit()
			}
			p.mu.Lock()
			p.succeeded[name] = true
			p.mu.Unlock()
			return map[string]any{"k" + name: fmt.Sprintf("%s#%d", name, a+1)}, nil
		}
	}
	c.tasks = tasks
	c.timeline = tl.String()
	return c
}

// skRunJob runs one random job and checks it. It returns once every
// goroutine it started, and every Func of the job, has returned, unless the
// job hangs (then the test fails and they are left behind).
func skRunJob(t *testing.T, st *skStats, seed uint64) {
	release := make(chan struct{})
	releaseAll := sync.OnceFunc(func() { close(release) })
	defer releaseAll()
	p := &skProbe{st: st, calls: map[string]int{}, succeeded: map[string]bool{}, live: map[int]context.Context{}}
	c := skNewCase(seed, p, release)

	var evs []dag.Event // the reader's until readerDone is closed
	ch := make(chan dag.Event, c.evBuf)
	c.opts.Events = ch
	readerDone := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		defer close(readerDone)
		for e := range ch {
			evs = append(evs, e)
			if c.slowEvery > 0 && len(evs)%c.slowEvery == 0 {
				time.Sleep(time.Millisecond) // a slow reader: load, not synchronisation
			}
		}
	})

	ctx, cancelCtx := context.WithCancelCause(context.Background())
	defer cancelCtx(nil)
	job, err := dag.Run(ctx, c.tasks, c.opts)
	if err != nil {
		close(ch)
		bg.Wait()
		t.Fatalf("Run(…) = %v; want no error\n%s", err, c.timeline)
	}
	var stopped atomic.Bool // the test stopped the job
	if c.cancelAt > 0 {
		bg.Go(func() {
			timer := time.NewTimer(c.cancelAt)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-job.Done():
				return
			}
			stopped.Store(true)
			switch c.cancelHow {
			case 0:
				st.jobCancels.Add(1)
				job.Cancel()
			case 1:
				st.ctxCancels.Add(1)
				cancelCtx(skErrStop)
			default:
				st.bothCancels.Add(1)
				var all sync.WaitGroup
				all.Go(job.Cancel)
				all.Go(func() { cancelCtx(skErrStop) })
				all.Go(job.Cancel)
				all.Wait()
			}
		})
	}
	if c.poll {
		bg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				pr := job.Progress()
				sum := pr.Pending + pr.Ready + pr.Running + pr.Retrying + pr.Completed + pr.Failed + pr.Canceled
				if sum != len(c.tasks) || pr.Job != c.opts.Name || pr.Running > p.mp || pr.Abandoned < 0 {
					p.problem("Progress() = %+v: counts sum to %d, want %d tasks, at most %d running", pr, sum, len(c.tasks), p.mp)
				}
				select {
				case <-job.Done():
					return
				case <-tick.C:
				}
			}
		})
	}

	hung := time.NewTimer(skHang)
	defer hung.Stop()
	select {
	case <-job.Done():
	case <-hung.C:
		t.Fatalf("the job did not end within %v; progress %+v\n%s", skHang, job.Progress(), c.timeline)
	}
	waited := time.Now()
	res, werr := job.Wait()
	select {
	case <-readerDone:
	case <-hung.C:
		t.Fatalf("the events channel was not closed within %v of the start\n%s", skHang, c.timeline)
	}
	// Stopping a job that ended does nothing, and Wait answers the same.
	job.Cancel()
	cancelCtx(skErrStop)
	if res2, err2 := job.Wait(); res2.State != res.State || err2 != werr || len(res2.Tasks) != len(res.Tasks) {
		t.Errorf("Wait() after Cancel = %v, %v; first Wait said %v, %v", res2.State, err2, res.State, werr)
	}

	// Let the Funcs that ignore their context return, and wait for the
	// job to see them return: then every attempt's Func has been called
	// and has returned.
	releaseAll()
	for job.Progress().Abandoned != 0 {
		select {
		case <-hung.C:
			t.Fatalf("Progress().Abandoned = %d long after every Func was released\n%s", job.Progress().Abandoned, c.timeline)
		default:
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond) // poll interval
	}
	bg.Wait()

	out := outcome{Res: res, Err: werr, Events: evs}
	checkJob(t, c.tasks, c.opts, out)
	skCheck(t, st, c, p, out, waited, stopped.Load())

	if pr := job.Progress(); pr.State != res.State || pr.Completed+pr.Failed+pr.Canceled != len(c.tasks) {
		t.Errorf("Progress() after the end = %+v; want state %v and every task final", pr, res.State)
	}
	if t.Failed() {
		t.Logf("the job:\n%s", c.timeline)
		for i, e := range evs {
			if i == 500 {
				t.Logf("… %d more events", len(evs)-i)
				break
			}
			t.Logf("%v %v", e.Time.Format("15:04:05.000000"), e)
		}
	}
}

// skCheck checks what checkJob does not, and adds the job to the figures.
func skCheck(t *testing.T, st *skStats, c skCase, p *skProbe, out outcome, waited time.Time, stopped bool) {
	t.Helper()
	res, evs := out.Res, out.Events
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, prob := range p.problems {
		t.Error(prob)
	}

	// Lost and out-of-order events, counted on their own: a task's events
	// must chain (each From is the state before), times never go back, the
	// job's events come first and last, and every Func call has its
	// Running event.
	lost, disorder := 0, 0
	timeout := map[string]time.Duration{}
	for _, task := range c.tasks {
		timeout[task.Name] = task.Timeout
	}
	state := map[string]dag.State{}
	final := map[string]bool{}
	running := 0
	var stopAt time.Time
	for i, e := range evs {
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			disorder++
		}
		if e.Task == "" {
			if i != 0 && i != len(evs)-1 {
				disorder++
			}
			continue
		}
		if final[e.Task] {
			disorder++
		}
		if e.From != state[e.Task] {
			lost++
		}
		state[e.Task], final[e.Task] = e.To, e.To.Final()
		if e.To == dag.Running {
			running++
		}
		if e.To == dag.Canceled && stopAt.IsZero() {
			stopAt = e.Time
		}
		if e.To == dag.Retrying || e.To == dag.Failed {
			switch k := skCause(e.Err); {
			case k < 0:
				t.Errorf("event %d (%v): an error the soak did not inject", i, e)
			case k == skDoPermanent && e.To == dag.Retrying:
				t.Errorf("event %d (%v): a permanent error is retried", i, e)
			case k == skDoHang && timeout[e.Task] == 0:
				t.Errorf("event %d (%v): a timeout of a task without a Timeout", i, e)
			default:
				st.seen[k].Add(1)
			}
		}
	}
	if len(evs) == 0 || evs[0].Task != "" || evs[len(evs)-1].Task != "" {
		disorder++
	}
	calls := 0
	for _, task := range c.tasks {
		if !final[task.Name] {
			lost++
		}
		calls += p.calls[task.Name]
		if tr := res.Tasks[task.Name]; p.calls[task.Name] != tr.Attempts {
			t.Errorf("task %s: Func called %d times; Result says %d attempts", task.Name, p.calls[task.Name], tr.Attempts)
		}
	}
	if calls != running {
		lost += max(calls-running, running-calls)
	}
	if lost > 0 || disorder > 0 {
		t.Errorf("%d events lost and %d out of order (%d Func calls, %d Running events)", lost, disorder, calls, running)
	}

	// What each attempt saw: the output of each dependency that completed
	// and of no other, with the value the final context holds, and in all
	// the initial context plus the outputs of its completed ancestors.
	ancestors := func(name string) map[string]bool {
		seen := map[string]bool{}
		stack := []string{name}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, d := range c.deps[x] {
				if !seen[d] {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		return seen
	}
	wantN := map[string]int{}
	for _, s := range p.seen {
		done := res.Tasks[s.dep].State == dag.Completed
		if s.ok != done {
			t.Errorf("an attempt of %s sees the output of %s: %t; %s is %v", s.task, s.dep, s.ok, s.dep, res.Tasks[s.dep].State)
		} else if s.ok && s.val != res.Context["k"+s.dep] {
			t.Errorf("an attempt of %s sees k%s = %v; the final context has %v", s.task, s.dep, s.val, res.Context["k"+s.dep])
		}
		n, ok := wantN[s.task]
		if !ok {
			n = 1 // init
			for a := range ancestors(s.task) {
				if res.Tasks[a].State == dag.Completed {
					n++
				}
			}
			wantN[s.task] = n
		}
		if s.n != n {
			t.Errorf("an attempt of %s sees %d keys; want %d: init and the outputs of its completed ancestors", s.task, s.n, n)
		}
	}

	// The final context: init and the output of every completed task.
	want := 1
	for name, tr := range res.Tasks {
		if tr.State == dag.Completed {
			want++
			if _, ok := res.Context["k"+name]; !ok {
				t.Errorf("Result.Context lacks k%s, the output of a completed task", name)
			}
		}
	}
	if len(res.Context) != want || res.Context["init"] != true {
		t.Errorf("Result.Context = %v; want init and the outputs of the %d completed tasks", res.Context, want-1)
	}

	// Figures.
	st.jobs.Add(1)
	st.tasks.Add(int64(len(c.tasks)))
	st.events.Add(int64(len(evs)))
	st.lost.Add(int64(lost))
	st.outOfOrder.Add(int64(disorder))
	skMax(&st.maxLive, int64(p.maxLive))
	for _, tr := range res.Tasks {
		if tr.Attempts > 0 {
			st.tasksStarted.Add(1)
		}
		st.abandoned.Add(int64(tr.Abandoned))
	}
	// A canceled job was stopped by the test or by its Timeout, and says
	// which.
	if res.State == dag.Canceled {
		switch {
		case errors.Is(out.Err, context.DeadlineExceeded):
			if c.opts.Timeout == 0 {
				t.Errorf("Wait() = %v; the job has no Timeout", out.Err)
			}
		case !stopped:
			t.Errorf("Wait() = %v; the test did not stop the job", out.Err)
		case c.cancelHow == 1 && !strings.Contains(out.Err.Error(), skErrStop.Error()):
			t.Errorf("Wait() = %v; want the cause of the ctx cancel, %q", out.Err, skErrStop)
		}
	}
	switch res.State {
	case dag.Completed:
		st.completed.Add(1)
	case dag.Failed:
		st.failed.Add(1)
	case dag.Canceled:
		st.canceled.Add(1)
		if errors.Is(out.Err, context.DeadlineExceeded) {
			st.jobTimeoutsFired.Add(1)
		}
	}
	if res.State != dag.Completed {
		if stopAt.IsZero() {
			stopAt = evs[len(evs)-1].Time
		}
		d := waited.Sub(stopAt)
		skMax(&st.maxStopToWait, int64(d))
		if d > 50*time.Millisecond {
			st.slowStops.Add(1)
		}
		if d > skHang {
			t.Errorf("Wait returned %v after the job stopped", d)
		}
	}
}

// skCause says which kind of attempt an event's error comes from, or -1
// if from none: a task failing for a reason the soak did not inject, such as
// the job's own stop taken for the task's failure.
func skCause(err error) int {
	var pe *dag.PanicError
	switch {
	case err == nil:
		return -1
	case errors.As(err, &pe):
		if v, ok := pe.Value.(error); (!ok || v != errBang) && pe.Value != "soak: a panic that is not an error" {
			return -1
		}
		return skDoPanic
	case errors.Is(err, skErrPerm):
		return skDoPermanent
	case errors.Is(err, errBoom):
		return skDoErr
	case errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "timed out after"):
		return skDoHang // a timeout, whatever the attempt did
	case strings.Contains(err.Error(), "Goexit"):
		return skDoGoexit
	}
	return -1
}

// skSettle polls cond, yielding, until it holds or limit passes.
func skSettle(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond) // poll interval
	}
	return true
}

func skHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestSoak runs -dag.soak random jobs (2000 by default), -dag.soakpar at a
// time (32), in real time, with random errors, panics, Goexits, permanent errors,
// timeouts, late returns, Funcs that ignore their context, retries with
// various backoff policies (ones that stop and panic included),
// ContinueOnFailure, job timeouts, Job.Cancel and ctx cancels mid-run,
// Progress pollers and slow event readers, and checks every job as the
// property test does and more (see the top of the file). At the end the
// goroutines and the heap must be back near where they started. It logs the
// figures docs/reliability.md quotes (run with -v to see them).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs hundreds of jobs in real time; skipped with -short")
	}
	jobs := *skJobs
	// No job starts once this many have failed: enough to see a pattern.
	maxFailures := int64(max(10, jobs/200))
	baseG := runtime.NumGoroutine()
	baseHeap := skHeap()
	start := time.Now()

	var st skStats
	var next, failures atomic.Int64
	var failedMu sync.Mutex
	var failedSeeds []uint64
	var wg sync.WaitGroup
	for range max(*skPar, 1) {
		wg.Go(func() {
			for failures.Load() < maxFailures {
				i := next.Add(1) - 1
				if i >= int64(jobs) {
					return
				}
				seed := *skSeed + uint64(i)
				if *skOne {
					seed = *skSeed
				}
				if !t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { skRunJob(t, &st, seed) }) {
					failures.Add(1)
					failedMu.Lock()
					failedSeeds = append(failedSeeds, seed)
					failedMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failures.Load(); n > 0 {
		slices.Sort(failedSeeds)
		t.Errorf("%d jobs failed, seeds %v (no job starts after the %dth failure); the seed fixes the job, not the timing: rerun the soak, or one seed under load with -run TestSoak -dag.soakone -dag.soakseed=SEED", n, failedSeeds, maxFailures)
	}

	// Nothing of the jobs remains: their workers, timers' goroutines and
	// event deliverers end within the abandon grace period, give or take
	// the scheduler.
	var g int
	if !skSettle(10*time.Second, func() bool { g = runtime.NumGoroutine(); return g <= baseG }) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines remain; %d at the start:\n%s", g, baseG, buf)
	}
	var heap uint64
	slack := uint64(skHeapSlack + skHeapPerJob*jobs)
	if !skSettle(5*time.Second, func() bool { heap = skHeap(); return heap <= baseHeap+slack }) {
		t.Errorf("the heap holds %d bytes; %d at the start, want at most %d more", heap, baseHeap, slack)
	}

	k := &st.kinds
	seeds := fmt.Sprintf("seeds %d..%d", *skSeed, *skSeed+uint64(max(jobs, 1))-1)
	if *skOne {
		seeds = fmt.Sprint("seed ", *skSeed)
	}
	t.Logf("soak: %d jobs (%d completed, %d failed, %d canceled), %d in flight, %v wall, %s",
		st.jobs.Load(), st.completed.Load(), st.failed.Load(), st.canceled.Load(), max(*skPar, 1), elapsed.Round(time.Millisecond), seeds)
	t.Logf("soak: %d tasks (%d started, %d with ContinueOnFailure), %d attempts, most attempts running at once in a job %d",
		st.tasks.Load(), st.tasksStarted.Load(), st.continueOnFailure.Load(), st.attempts.Load(), st.maxLive.Load())
	t.Logf("soak: faults injected: %d errors, %d panics, %d permanent, %d goexits, %d hangs, %d ignorers, %d late returns (%d after their ctx ended); %d abandoned attempts",
		k[skDoErr].Load(), k[skDoPanic].Load(), k[skDoPermanent].Load(), k[skDoGoexit].Load(),
		k[skDoHang].Load(), k[skDoIgnore].Load(), k[skDoLate].Load(), st.lateDiscarded.Load(), st.abandoned.Load())
	seen := &st.seen
	t.Logf("soak: failed attempts in the events: %d errors, %d panics, %d permanent, %d goexits, %d timeouts",
		seen[skDoErr].Load(), seen[skDoPanic].Load(), seen[skDoPermanent].Load(), seen[skDoGoexit].Load(), seen[skDoHang].Load())
	t.Logf("soak: stops: %d Job.Cancel, %d ctx cancels, %d both at once, %d job timeouts set (%d fired), %d backoff policies stopping, %d panicking",
		st.jobCancels.Load(), st.ctxCancels.Load(), st.bothCancels.Load(), st.jobTimeouts.Load(), st.jobTimeoutsFired.Load(), st.backoffStops.Load(), st.backoffPanics.Load())
	t.Logf("soak: events: %d received, %d lost, %d out of order; %d slow readers, %d Progress pollers",
		st.events.Load(), st.lost.Load(), st.outOfOrder.Load(), st.slowReaders.Load(), st.pollers.Load())
	t.Logf("soak: stop to Wait: at most %v, %d stops over 50 ms; goroutines %d -> %d; heap %.1f MiB -> %.1f MiB (%+.1f MiB)",
		time.Duration(st.maxStopToWait.Load()).Round(time.Microsecond), st.slowStops.Load(), baseG, g,
		float64(baseHeap)/(1<<20), float64(heap)/(1<<20), (float64(heap)-float64(baseHeap))/(1<<20))
	if st.lost.Load() != 0 || st.outOfOrder.Load() != 0 {
		t.Errorf("%d events lost, %d out of order; want 0", st.lost.Load(), st.outOfOrder.Load())
	}
}
