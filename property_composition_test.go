package dag_test

// Property tests of composition. cpGenerate draws random jobs with groups
// (Sub) inside groups, Expands that return random sub-DAGs (sometimes not a
// DAG), Maps, When (true, false, panicking), ErrSkip, every Trigger,
// ContinueOnFailure, retries, errors, panics, Goexits, KeepGoing on and off.
// TestPropertyComposition runs each job three times, with different
// MaxParallel (1 to 8), in a synctest bubble, and checks:
//
//   - every task, children included by full path, ends in exactly one final
//     state, the one cpExpectTask gives from how its dependencies (and, for a
//     group, its members) ended: a reference written from the rules of
//     issue 8, not from the library's code (cpCheckLocal);
//   - when the outcome does not depend on timing (KeepGoing, or no failure
//     that would stop anything), every task's state and attempts, the job's
//     state, Wait's error and Result.Context are those that cpPredict
//     computes, and are the same on every run (cpCheckPredicted);
//   - no Func or Expand starts before each of its dependencies has ended and
//     while its group is not running (read with Job.Snapshot from inside the
//     Func), nor before every call of its dependencies has returned (on the
//     probe's own clock), and no task is decided before its dependencies'
//     final events (cpProbe.enter, cpCheckLocal, cpCheckEvents);
//   - MaxParallel bounds the attempts whose context has not ended, across
//     groups and Expands (cpProbe.enter);
//   - events are legal transitions of State's table and complete: each
//     task's events go from Pending to its final state, the job's come first
//     and last (cpCheckEvents);
//   - each task, and each When, sees exactly the initial context plus the
//     outputs of its ancestors that completed (cpCheckLocal).
//
// The fuzz test (fuzz_composition_test.go) and the soak
// (soak_composition_test.go) reuse all of this. At the end of the file are
// minimal tests of the bugs these tests found. A failure names the seed:
// rerun it with -run 'TestPropertyComposition/seed=N$'. DAG_SOAK=1 runs
// twenty times as many seeds.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dagrun/dag"
)

// Kinds of task in a generated job.
const (
	cpFunc   = iota
	cpSub    // a group
	cpExpand // an Expand task: its children are what it returns
	cpMap    // a dag.Map task: its children are its items
	cpItem   // one item of a Map (made by dag.Map; in the spec for the reference)
)

var cpKindNames = [...]string{"func", "sub", "expand", "map", "item"}

// What one attempt does: of a Func, of an Expand's call, of a Map's item.
const (
	cpOK        = iota // succeed (an Expand returns its tasks)
	cpErr              // return an error
	cpPanic            // panic
	cpPermanent        // return backoff.Permanent
	cpSkip             // return an error wrapping ErrSkip, with an output to discard
	cpGoexit           // runtime.Goexit
	cpHang             // block until the attempt's context ends (soak only)
)

var cpDoNames = [...]string{"ok", "err", "panic", "permanent", "skip", "goexit", "hang"}

// Kinds of When.
const (
	cpWhenNone = iota
	cpWhenTrue
	cpWhenFalse
	cpWhenPanic
)

var cpWhenNames = [...]string{"", "true", "false", "panic"}

// How the tasks an Expand returns are not a valid DAG.
const (
	cpValid     = iota
	cpCycle     // two tasks that depend on each other
	cpMissing   // a dependency on an unknown task
	cpDuplicate // two tasks with one name
	cpSlash     // a name with a '/'
	cpTwoKinds  // a task with both Func and Sub
	cpNumBad
)

// cpBadErr is the sentinel that the Expand's error must match.
var cpBadErr = [cpNumBad]error{nil, dag.ErrCycle, dag.ErrMissingDependency, dag.ErrDuplicateTask, dag.ErrInvalidTask, dag.ErrInvalidTask}

var cpBadNames = [cpNumBad]string{"", "cycle", "missing", "duplicate", "slash", "two-kinds"}

var (
	cpErrBoom = errors.New("cp: boom")
	cpErrBang = errors.New("cp: bang")
	cpErrWhen = errors.New("cp: When panicked")
)

// cpSpec is one task of a generated job: pure data, from which each run
// builds fresh dag.Tasks.
type cpSpec struct {
	name, path string
	kind       int
	parent     *cpSpec  // the group, Expand or Map the task belongs to; nil at the top
	deps       []string // DependsOn as declared: siblings' short names or paths into sibling groups
	depPaths   []string // deps as full paths, each once
	trigger    dag.Trigger
	when       int
	cont       bool
	retries    int           // Task.MaxRetries
	timeout    time.Duration // Task.Timeout (soak only)
	does       []int         // what each attempt does; the last one repeats
	sleeps     []time.Duration
	bad        int       // for an Expand: how what it returns is not a DAG
	children   []*cpSpec // Sub; what an Expand returns; a Map's items
}

func (s *cpSpec) do(attempt int) int { return s.does[min(attempt, len(s.does))-1] }

func (s *cpSpec) sleep(attempt int) time.Duration {
	if len(s.sleeps) == 0 {
		return 0
	}
	return s.sleeps[min(attempt, len(s.sleeps))-1]
}

// group reports whether s has members once it runs.
func (s *cpSpec) group() bool { return s.kind == cpSub || s.kind == cpExpand || s.kind == cpMap }

// writes reports whether s writes its key, "k:"+path, to the job context.
func (s *cpSpec) writes() bool { return s.kind == cpFunc || s.kind == cpMap }

// cpJob is one generated job.
type cpJob struct {
	top        []*cpSpec
	keepGoing  bool
	maxRetries int           // Options.MaxRetries
	delay      time.Duration // the retry delay
	groupTO    map[string]time.Duration
	init       map[string]any
	all        []*cpSpec // every task in declaration order, members after their group
	byPath     map[string]*cpSpec
	anc        map[string][]string // the writers among each task's ancestors
}

// retries resolves s's MaxRetries: a Map's items take the Map's.
func (j *cpJob) retries(s *cpSpec) int {
	m := s.retries
	if s.kind == cpItem {
		m = s.parent.retries
	}
	switch m {
	case 0:
		return j.maxRetries
	case dag.NoRetries:
		return 0
	}
	return m
}

// cpSource is where the generator's choices come from: a PRNG, or the
// fuzzer's bytes. A source that has run dry answers 0, and 0 is always the
// simplest choice, so that generation ends.
type cpSource interface{ intn(n int) int }

type cpRand struct{ r *rand.Rand }

func (c cpRand) intn(n int) int { return c.r.IntN(n) }

// cpGen draws a job.
type cpGen struct {
	src    cpSource
	soak   bool // task and group Timeouts, attempts that hang
	budget int  // tasks left to make
}

// chance is true with pct percent probability, and false when the source
// has run dry.
func (g *cpGen) chance(pct int) bool { return g.src.intn(100) >= 100-pct }

// cpGenerate draws a job of at most maxTasks tasks, children included.
func cpGenerate(src cpSource, maxTasks int, soak bool) *cpJob {
	g := &cpGen{src: src, soak: soak, budget: maxTasks}
	j := &cpJob{
		keepGoing:  g.chance(50),
		maxRetries: g.src.intn(3),
		init:       map[string]any{"init": "x"},
		groupTO:    map[string]time.Duration{},
	}
	if g.chance(30) {
		j.delay = time.Duration(1+g.src.intn(3)) * time.Millisecond
	}
	j.top = g.list(nil, 0, j)
	j.index()
	return j
}

// list draws the tasks of one level: the job's, a group's, or what an
// Expand returns; a group or an Expand may have none.
func (g *cpGen) list(parent *cpSpec, depth int, j *cpJob) []*cpSpec {
	widths := [...]int{9, 4, 3, 2}
	n := 1 + g.src.intn(widths[depth])
	if depth == 0 {
		n++
	}
	if parent != nil && g.chance(8) {
		n = 0 // an Expand that returns no task, a group without tasks
	}
	n = max(min(n, g.budget), min(n, 1))
	g.budget -= n
	specs := make([]*cpSpec, n)
	for i := range specs {
		specs[i] = &cpSpec{name: "t" + strconv.Itoa(i), parent: parent}
		specs[i].path = specs[i].name
		if parent != nil {
			specs[i].path = parent.path + "/" + specs[i].name
		}
	}
	for _, s := range specs {
		g.task(s, depth, j)
	}
	// Dependencies follow a random order of the level, so that a task may
	// depend on one declared after it; they name a sibling, or a task
	// inside a sibling group by its path.
	rank := make([]int, n)
	for i := range rank {
		rank[i] = i
	}
	for i := n - 1; i > 0; i-- {
		k := g.src.intn(i + 1)
		rank[i], rank[k] = rank[k], rank[i]
	}
	for i, s := range specs {
		for k, d := range specs {
			if rank[k] >= rank[i] || !g.chance(35) {
				continue
			}
			name := d.name
			if inner := cpSubMembers(d); len(inner) > 0 && g.chance(25) {
				name = strings.TrimPrefix(inner[g.src.intn(len(inner))].path, s.parentPath())
			}
			s.deps = append(s.deps, name)
			if g.chance(5) {
				s.deps = append(s.deps, name) // listed twice: the same as once
			}
		}
	}
	return specs
}

func (s *cpSpec) parentPath() string {
	if s.parent == nil {
		return ""
	}
	return s.parent.path + "/"
}

// cpSubMembers lists the tasks that can be named by path inside group s:
// its members and theirs, through Sub only (an Expand's tasks are not known
// when the job is validated).
func cpSubMembers(s *cpSpec) []*cpSpec {
	if s.kind != cpSub {
		return nil
	}
	var out []*cpSpec
	for _, c := range s.children {
		out = append(out, c)
		out = append(out, cpSubMembers(c)...)
	}
	return out
}

// task draws everything about s but its dependencies.
func (g *cpGen) task(s *cpSpec, depth int, j *cpJob) {
	k := g.src.intn(20)
	switch {
	case depth >= 3 || g.budget < 2 || k < 12:
		s.kind = cpFunc
	case k < 15:
		s.kind = cpSub
	case k < 18:
		s.kind = cpExpand
	default:
		s.kind = cpMap
	}
	if g.chance(50) {
		s.trigger = dag.Trigger(1 + g.src.intn(4))
	}
	switch w := g.src.intn(20); {
	case w >= 18:
		s.when = cpWhenFalse
	case w >= 16:
		s.when = cpWhenTrue
	case w >= 15:
		s.when = cpWhenPanic
	}
	s.cont = g.chance(25)
	if s.kind != cpSub {
		s.retries = [...]int{0, dag.NoRetries, 1, 2}[g.src.intn(4)]
	}
	attempts := func(items bool) ([]int, []time.Duration) {
		n := 1 + g.src.intn(4)
		does := make([]int, n)
		sleeps := make([]time.Duration, n)
		for a := range does {
			switch x := g.src.intn(100); {
			case x < 60:
				does[a] = cpOK
			case x < 72:
				does[a] = cpErr
			case x < 80:
				does[a] = cpPanic
			case x < 85:
				does[a] = cpPermanent
			case x < 93 && !items:
				does[a] = cpSkip
			case x < 96 && !items:
				does[a] = cpGoexit
			default:
				does[a] = cpErr
			}
			sleeps[a] = time.Duration(g.src.intn(4)) * time.Millisecond
			if g.soak {
				sleeps[a] /= 8
			}
		}
		return does, sleeps
	}
	switch s.kind {
	case cpFunc:
		s.does, s.sleeps = attempts(false)
		if g.soak && g.chance(8) {
			// Every attempt hangs until its Timeout: a task that fails
			// for good, whatever the timing, unless something stops it.
			s.timeout = time.Duration(1+g.src.intn(3)) * time.Millisecond
			for a := range s.does {
				s.does[a] = cpHang
			}
		} else if g.soak && cpUnderTimeout(s, j) && g.chance(15) {
			s.does[len(s.does)-1] = cpHang // only its group's Timeout ends it
		}
	case cpSub:
		if g.soak && g.chance(25) {
			s.timeout = time.Duration(2+g.src.intn(6)) * time.Millisecond
			j.groupTO[s.path] = s.timeout
		}
		s.children = g.list(s, depth+1, j)
	case cpExpand:
		s.does, s.sleeps = attempts(false)
		if g.soak && g.chance(8) {
			// Every Expand call hangs until the task's Timeout.
			s.timeout = time.Duration(1+g.src.intn(3)) * time.Millisecond
			for a := range s.does {
				s.does[a] = cpHang
			}
		}
		if g.chance(20) {
			s.bad = 1 + g.src.intn(cpNumBad-1)
		}
		s.children = g.list(s, depth+1, j)
	case cpMap:
		s.does, s.sleeps = []int{cpOK}, []time.Duration{0}
		n := min(g.src.intn(5), g.budget)
		g.budget -= n
		items := make([]int, n)
		for i := range n {
			c := &cpSpec{name: strconv.Itoa(i), path: s.path + "/" + strconv.Itoa(i), kind: cpItem, parent: s}
			c.does, c.sleeps = attempts(true)
			s.children = append(s.children, c)
			items[i] = i
		}
		j.init["in:"+s.path] = items
	}
}

// cpUnderTimeout reports whether a group around s has a Timeout.
func cpUnderTimeout(s *cpSpec, j *cpJob) bool {
	for p := s.parent; p != nil; p = p.parent {
		if _, ok := j.groupTO[p.path]; ok {
			return true
		}
	}
	return false
}

// index fills j.all, j.byPath, every task's depPaths and j.anc.
func (j *cpJob) index() {
	j.byPath = map[string]*cpSpec{}
	var walk func([]*cpSpec)
	walk = func(list []*cpSpec) {
		for _, s := range list {
			j.all = append(j.all, s)
			j.byPath[s.path] = s
			s.depPaths = nil
			for _, d := range s.deps {
				if p := s.parentPath() + d; !slices.Contains(s.depPaths, p) {
					s.depPaths = append(s.depPaths, p)
				}
			}
			walk(s.children)
		}
	}
	walk(j.top)
	// Ancestors, from the rules: a task sees what its group sees, and each
	// dependency, that dependency's ancestors and, for a group, all its
	// members.
	memo := map[string]map[string]bool{}
	var anc func(s *cpSpec) map[string]bool
	var members func(s *cpSpec, into map[string]bool)
	members = func(s *cpSpec, into map[string]bool) {
		for _, c := range s.children {
			into[c.path] = true
			members(c, into)
		}
	}
	anc = func(s *cpSpec) map[string]bool {
		if m, ok := memo[s.path]; ok {
			return m
		}
		m := map[string]bool{}
		if s.parent != nil {
			for a := range anc(s.parent) {
				m[a] = true
			}
		}
		for _, d := range s.depPaths {
			ds := j.byPath[d]
			m[d] = true
			for a := range anc(ds) {
				m[a] = true
			}
			members(ds, m)
		}
		memo[s.path] = m
		return m
	}
	j.anc = map[string][]string{}
	for _, s := range j.all {
		var ws []string
		for a := range anc(s) {
			if j.byPath[a].writes() {
				ws = append(ws, a)
			}
		}
		slices.Sort(ws)
		j.anc[s.path] = ws
	}
}

// String describes the job, for failure messages.
func (j *cpJob) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "KeepGoing %t, MaxRetries %d, retry delay %v\n", j.keepGoing, j.maxRetries, j.delay)
	for _, s := range j.all {
		fmt.Fprintf(&b, "%s%s %s", strings.Repeat("  ", strings.Count(s.path, "/")), s.path, cpKindNames[s.kind])
		if len(s.deps) > 0 {
			fmt.Fprintf(&b, " deps %v", s.deps)
		}
		if s.trigger != dag.AllSucceeded {
			fmt.Fprintf(&b, " %v", s.trigger)
		}
		if s.when != cpWhenNone {
			fmt.Fprintf(&b, " when=%s", cpWhenNames[s.when])
		}
		if s.cont {
			b.WriteString(" cont")
		}
		if s.retries != 0 {
			fmt.Fprintf(&b, " retries=%d", s.retries)
		}
		if s.timeout != 0 {
			fmt.Fprintf(&b, " timeout=%v", s.timeout)
		}
		if s.bad != cpValid {
			fmt.Fprintf(&b, " returns-%s", cpBadNames[s.bad])
		}
		if s.kind != cpSub {
			var ds []string
			for _, d := range s.does {
				ds = append(ds, cpDoNames[d])
			}
			fmt.Fprintf(&b, " does %v", ds)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// Building and running

// cpSeen is what one call (of a Func, an Expand or a When) saw.
type cpSeen struct {
	path string
	what string // "func", "when"
	in   map[string]any
}

// cpCall is one call of a Func, an Expand, a Map's function or a When, on
// the probe's own clock: when it started and returned, and whether its
// context had ended when it returned (then the job may have moved on
// without it).
type cpCall struct {
	path       string
	start, end int // end is 0 until it returns
	late       bool
}

// cpProbe watches the calls of one run of a job.
type cpProbe struct {
	j     *cpJob
	mp    int
	ready chan struct{} // closed once Run has returned
	job   *dag.Job      // set before ready is closed

	mu        sync.Mutex
	cond      *sync.Cond // signalled when a call returns
	calls     map[string]int
	attempted map[string]map[int]bool // the attempt numbers that called
	whens     map[string]int
	live      map[int]context.Context // attempts whose context had not ended
	nextID    int
	inFlight  int
	most      int // most attempts live at once
	seen      []cpSeen
	log       []cpCall // every call, in the order they started
	clock     int      // ticks at each start and return of a call
	problems  []string
}

func newCPProbe(j *cpJob, mp int) *cpProbe {
	p := &cpProbe{j: j, mp: mp, ready: make(chan struct{}), calls: map[string]int{}, attempted: map[string]map[int]bool{}, whens: map[string]int{}, live: map[int]context.Context{}}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *cpProbe) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

func cpValues(in dag.Values) map[string]any {
	m := map[string]any{}
	for k, v := range in.All() {
		m[k] = v
	}
	return m
}

// enter records the start of an attempt of s and checks what must hold
// then; leave must be called when it returns.
func (p *cpProbe) enter(ctx context.Context, s *cpSpec, in *dag.Values) (attempt int, leave func()) {
	<-p.ready
	info, ok := dag.TaskInfoFromContext(ctx)
	p.mu.Lock()
	p.inFlight++
	p.clock++
	call := len(p.log)
	p.log = append(p.log, cpCall{path: s.path, start: p.clock})
	p.calls[s.path]++
	// The attempt's number: attempts may call their Funcs out of order,
	// when one times out before its goroutine runs and the next starts.
	a := info.Attempt
	if p.attempted[s.path] == nil {
		p.attempted[s.path] = map[int]bool{}
	}
	if !ok || info.Task != s.path || a < 1 || p.attempted[s.path][a] {
		p.problems = append(p.problems, fmt.Sprintf("%s call %d: TaskInfoFromContext = %+v, %t", s.path, p.calls[s.path], info, ok))
		a = max(a, 1)
	}
	p.attempted[s.path][a] = true
	// MaxParallel, counted exactly: the attempts whose context has not
	// ended hold a worker each. (An attempt whose context ended may run on
	// past the grace period, without its worker.)
	for id, c := range p.live {
		if c.Err() != nil {
			delete(p.live, id)
		}
	}
	id := p.nextID
	p.nextID++
	if ctx.Err() == nil {
		p.live[id] = ctx
	}
	if len(p.live) > p.mp {
		p.problems = append(p.problems, fmt.Sprintf("%s attempt %d: %d attempts running at once; MaxParallel is %d", s.path, a, len(p.live), p.mp))
	}
	p.most = max(p.most, len(p.live))
	if in != nil {
		p.seen = append(p.seen, cpSeen{s.path, "func", cpValues(*in)})
	}
	p.mu.Unlock()

	// Every dependency has ended, and every group around s runs.
	snap := p.job.Snapshot()
	for _, d := range s.depPaths {
		if st := snap.Tasks[d].State; !st.Final() {
			p.problem("%s attempt %d started while its dependency %s is %v", s.path, a, d, st)
		}
	}
	// (A group that has ended has ended its tasks' contexts too: an
	// attempt whose context has ended may be a late call, of an attempt
	// that timed out or was stopped before its goroutine ran.)
	late := ctx.Err() != nil
	for g := s.parent; g != nil && !late; g = g.parent {
		if st := snap.Tasks[g.path].State; st != dag.Running {
			p.problem("%s attempt %d started while its group %s is %v", s.path, a, g.path, st)
		}
	}
	return a, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.live, id)
		p.inFlight--
		p.clock++
		p.log[call].end, p.log[call].late = p.clock, ctx.Err() != nil
		p.cond.Broadcast()
	}
}

// pause waits d, or until ctx ends.
func cpPause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cpValue is what attempt a of task path returns at its key.
func cpValue(path string, a int) string { return path + "@" + strconv.Itoa(a) }

// fail does what a failing attempt does; it does not return for cpPanic
// and cpGoexit.
func cpFail(ctx context.Context, do int) error {
	switch do {
	case cpErr:
		return cpErrBoom
	case cpPanic:
		panic(cpErrBang)
	case cpPermanent:
		return backoff.Permanent(cpErrBoom)
	case cpGoexit:
		runtime.Goexit()
	case cpHang:
		<-ctx.Done()
		return ctx.Err()
	}
	panic("cp: not a failure: " + cpDoNames[do])
}

func (p *cpProbe) fn(s *cpSpec) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		a, leave := p.enter(ctx, s, &in)
		defer leave()
		do := s.do(a)
		if err := cpPause(ctx, s.sleep(a)); err != nil {
			return nil, err
		}
		switch do {
		case cpOK:
			return map[string]any{"k:" + s.path: cpValue(s.path, a)}, nil
		case cpSkip:
			return map[string]any{"k:" + s.path: "discarded"}, fmt.Errorf("cp: %s has nothing to do: %w", s.path, dag.ErrSkip)
		}
		return nil, cpFail(ctx, do)
	}
}

func (p *cpProbe) expand(s *cpSpec) func(context.Context, dag.Values) ([]dag.Task, error) {
	return func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
		a, leave := p.enter(ctx, s, &in)
		defer leave()
		do := s.do(a)
		if err := cpPause(ctx, s.sleep(a)); err != nil {
			return nil, err
		}
		switch do {
		case cpOK:
			return p.returned(s), nil
		case cpSkip:
			return p.tasks(s.children), fmt.Errorf("cp: %s has nothing to expand: %w", s.path, dag.ErrSkip)
		}
		return nil, cpFail(ctx, do)
	}
}

// returned is what Expand task s returns: its children, or a list that is
// not a valid DAG.
func (p *cpProbe) returned(s *cpSpec) []dag.Task {
	f := func(context.Context, dag.Values) (map[string]any, error) {
		p.problem("%s: a task of an invalid Expand result ran", s.path)
		return nil, nil
	}
	switch s.bad {
	case cpCycle:
		return []dag.Task{{Name: "x", DependsOn: []string{"y"}, Func: f}, {Name: "y", DependsOn: []string{"x"}, Func: f}}
	case cpMissing:
		return []dag.Task{{Name: "x", DependsOn: []string{"nowhere"}, Func: f}}
	case cpDuplicate:
		return []dag.Task{{Name: "x", Func: f}, {Name: "x", Func: f}}
	case cpSlash:
		return []dag.Task{{Name: "x/y", Func: f}}
	case cpTwoKinds:
		return []dag.Task{{Name: "x", Func: f, Sub: []dag.Task{{Name: "y", Func: f}}}}
	}
	return p.tasks(s.children)
}

func (p *cpProbe) item(m *cpSpec) func(context.Context, int) (string, error) {
	return func(ctx context.Context, i int) (string, error) {
		s := m.children[i]
		a, leave := p.enter(ctx, s, nil)
		defer leave()
		do := s.do(a)
		if err := cpPause(ctx, s.sleep(a)); err != nil {
			return "", err
		}
		if do == cpOK {
			return cpValue(s.path, a), nil
		}
		return "", cpFail(ctx, do)
	}
}

func (p *cpProbe) when(s *cpSpec) func(dag.Values) bool {
	return func(in dag.Values) bool {
		// When runs under the job's lock: no Snapshot here.
		p.mu.Lock()
		p.whens[s.path]++
		p.clock++
		p.log = append(p.log, cpCall{path: s.path, start: p.clock, end: p.clock})
		p.seen = append(p.seen, cpSeen{s.path, "when", cpValues(in)})
		p.mu.Unlock()
		switch s.when {
		case cpWhenTrue:
			return true
		case cpWhenFalse:
			return false
		}
		panic(cpErrWhen)
	}
}

// tasks builds a fresh list of dag.Tasks from specs.
func (p *cpProbe) tasks(specs []*cpSpec) []dag.Task {
	out := make([]dag.Task, 0, len(specs))
	for _, s := range specs {
		var t dag.Task
		switch s.kind {
		case cpFunc:
			t.Func = p.fn(s)
		case cpSub:
			t.Sub = p.tasks(s.children)
		case cpExpand:
			t.Expand = p.expand(s)
		case cpMap:
			t = dag.Map(s.name, "in:"+s.path, "k:"+s.path, p.item(s))
		}
		t.Name, t.DependsOn, t.Trigger, t.ContinueOnFailure, t.MaxRetries, t.Timeout = s.name, s.deps, s.trigger, s.cont, s.retries, s.timeout
		if s.when != cpWhenNone {
			t.When = p.when(s)
		}
		out = append(out, t)
	}
	return out
}

func (j *cpJob) options(mp int) dag.Options {
	delay := j.delay
	return dag.Options{
		MaxParallel: mp,
		MaxRetries:  j.maxRetries,
		KeepGoing:   j.keepGoing,
		Context:     j.init,
		Backoff:     func() backoff.BackOff { return backoff.NewConstantBackOff(delay) },
	}
}

// cpOutcome is one run of a job.
type cpOutcome struct {
	mp       int
	res      dag.Result
	err      error
	events   []dag.Event
	progress dag.Progress
	canceled bool // the test canceled the job
}

// cpRunJob runs j once with MaxParallel mp. stop, if not nil, is called with
// the job once it runs, on a goroutine that ends before cpRunJob returns.
// hang bounds the wait for the job: past it, the test fails and the job
// is canceled.
func cpRunJob(t *testing.T, j *cpJob, mp int, hang time.Duration, stop func(*dag.Job)) (cpOutcome, *cpProbe) {
	t.Helper()
	p := newCPProbe(j, mp)
	opts := j.options(mp)
	ch := make(chan dag.Event, 64)
	opts.Events = ch
	var events []dag.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range ch {
			events = append(events, e)
		}
	}()
	job, err := dag.Run(context.Background(), p.tasks(j.top), opts)
	if err != nil {
		close(p.ready)
		<-done
		t.Fatalf("Run: %v\n%v", err, j)
	}
	p.job = job
	close(p.ready)
	var wg sync.WaitGroup
	if stop != nil {
		wg.Go(func() { stop(job) })
	}
	timer := time.NewTimer(hang)
	select {
	case <-job.Done():
	case <-timer.C:
		t.Errorf("the job has not ended after %v; tasks now: %v\n%v", hang, cpStates(job.Snapshot()), j)
		job.Cancel()
	}
	timer.Stop()
	res, werr := job.Wait()
	wg.Wait()
	<-done
	// Every attempt calls its Func, and it returns: no Func of these jobs
	// ignores its context, and the job's context is canceled once it ends.
	// An attempt that a stopping job abandoned (its goroutine had not run
	// for the grace period, on a loaded machine) calls its Func late.
	expired := false
	deadline := time.AfterFunc(hang, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		expired = true
		p.cond.Broadcast()
	})
	p.mu.Lock()
	for !expired && (p.inFlight > 0 || !p.called(res)) {
		p.cond.Wait()
	}
	if expired {
		t.Errorf("%d calls still running, or not made, %v after the job ended; calls %v", p.inFlight, hang, p.calls)
	}
	p.mu.Unlock()
	deadline.Stop()
	return cpOutcome{mp: mp, res: res, err: werr, events: events, progress: job.Progress()}, p
}

// called reports whether every attempt in res has called its Func (or
// Expand). p.mu is held.
func (p *cpProbe) called(res dag.Result) bool {
	for _, s := range p.j.all {
		if s.kind != cpSub && s.kind != cpMap && p.calls[s.path] < res.Tasks[s.path].Attempts {
			return false
		}
	}
	return true
}

// cpStates lists the tasks' states, sorted, for messages.
func cpStates(r dag.Result) string {
	names := make([]string, 0, len(r.Tasks))
	for n := range r.Tasks {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "\n  %s %v (%d attempts)", n, r.Tasks[n].State, r.Tasks[n].Attempts)
	}
	return b.String()
}

// ---------------------------------------------------------------------------
// The reference

// cpWant is how a task must end.
type cpWant struct {
	state    dag.State
	attempts int
	errIs    error // a sentinel Err must match, if not nil
	asked    bool  // When is asked
	started  bool  // for a group: its members run (a Sub started, an Expand returned valid tasks)
	hangs    bool  // it runs until something stops it: it must end Canceled
}

// cpRule applies a trigger rule, as issue 8's table states it, to how the
// dependencies ended: dag.Running if the task runs. A dependency Canceled
// (by its group's Timeout or stop) counts as a failure.
func cpRule(tr dag.Trigger, states []dag.State, tolerated []bool) dag.State {
	if len(states) == 0 {
		return dag.Running // no dependencies: it always runs
	}
	var completed, tol, failed, upstream int
	for i, st := range states {
		switch {
		case st == dag.Completed:
			completed++
		case st == dag.Failed && tolerated[i]:
			tol++
		case st == dag.Failed || st == dag.Canceled:
			failed++
		case st == dag.UpstreamFailed:
			upstream++
		}
	}
	bad := failed + upstream
	notRun := dag.Skipped
	if bad > 0 {
		notRun = dag.UpstreamFailed
	}
	switch tr {
	case dag.AllSucceeded:
		if completed+tol == len(states) {
			return dag.Running
		}
		return notRun
	case dag.NoneFailed:
		if bad == 0 {
			return dag.Running
		}
		return dag.UpstreamFailed
	case dag.AllDone:
		return dag.Running
	case dag.AnyFailed:
		if failed+tol+upstream > 0 {
			return dag.Running
		}
		return dag.Skipped
	case dag.AnySucceeded:
		if completed > 0 {
			return dag.Running
		}
		return notRun
	}
	panic("cp: unknown trigger")
}

// cpGroupEnd is how a group whose members ran ends: Failed if one Failed
// without ContinueOnFailure, Skipped if every one was Skipped, else
// Completed.
func cpGroupEnd(members []*cpSpec, state func(string) dag.State) dag.State {
	skipped := 0
	for _, m := range members {
		switch state(m.path) {
		case dag.Failed:
			if !m.cont {
				return dag.Failed
			}
		case dag.Skipped:
			skipped++
		}
	}
	if len(members) > 0 && skipped == len(members) {
		return dag.Skipped
	}
	return dag.Completed
}

// attempts plays s's attempts: what the last one did and how many ran.
func (j *cpJob) attempts(s *cpSpec) (last, n int) {
	r := j.retries(s)
	for a := 1; ; a++ {
		switch do := s.do(a); {
		case do == cpOK || do == cpSkip || do == cpPermanent:
			return do, a
		case do == cpHang && s.timeout == 0:
			return do, a // only a stop ends it
		case a > r:
			return do, a
		}
	}
}

// cpNotRun is how the members of a group that did not run end.
func cpNotRun(group dag.State) dag.State {
	if group == dag.Failed {
		// Its When panicked. The issue is silent; the members did not run
		// because their group failed: UpstreamFailed, as when a failed
		// dependency stops a group.
		return dag.UpstreamFailed
	}
	return group
}

// cpExpectTask returns how task s ends, given state, how the tasks it
// depends on ended and, if s is a group whose members ran, how they ended.
// groupRan says whether s's group (if any) ran its members.
func (j *cpJob) cpExpectTask(s *cpSpec, state func(string) dag.State, groupRan bool) cpWant {
	if s.parent != nil && !groupRan {
		return cpWant{state: cpNotRun(state(s.parent.path))}
	}
	var states []dag.State
	var tol []bool
	for _, d := range s.depPaths {
		states = append(states, state(d))
		tol = append(tol, j.byPath[d].cont)
	}
	if v := cpRule(s.trigger, states, tol); v != dag.Running {
		return cpWant{state: v}
	}
	w := cpWant{asked: s.when != cpWhenNone}
	switch s.when {
	case cpWhenFalse:
		w.state = dag.Skipped
		return w
	case cpWhenPanic:
		w.state = dag.Failed
		return w
	}
	if s.kind == cpSub {
		w.started = true
		w.state = cpGroupEnd(s.children, state)
		return w
	}
	last, n := j.attempts(s)
	w.attempts = n
	switch last {
	case cpOK:
		w.state = dag.Completed
		switch {
		case s.kind == cpExpand && s.bad != cpValid:
			w.state, w.errIs = dag.Failed, cpBadErr[s.bad]
		case s.group():
			w.started = true
			w.state = cpGroupEnd(s.children, state)
		}
	case cpSkip:
		w.state, w.errIs = dag.Skipped, dag.ErrSkip
	case cpHang:
		w.state, w.hangs = dag.Canceled, s.timeout == 0
		if s.timeout != 0 {
			w.state, w.errIs = dag.Failed, context.DeadlineExceeded
		}
	default:
		w.state = dag.Failed
	}
	return w
}

// cpPredict computes every task's end when nothing stops anything: with
// KeepGoing, or in fail-fast mode when no task fails without
// ContinueOnFailure. It walks each level in an order where dependencies
// come first, members before their group's end.
func (j *cpJob) cpPredict() map[string]cpWant {
	want := map[string]cpWant{}
	state := func(p string) dag.State { return want[p].state }
	var walk func(list []*cpSpec, ran bool)
	walk = func(list []*cpSpec, ran bool) {
		left := slices.Clone(list)
		for len(left) > 0 {
			next := left[:0]
			for _, s := range left {
				if !slices.ContainsFunc(s.depPaths, func(d string) bool { _, ok := want[d]; return !ok }) {
					w := j.cpExpectTask(s, state, ran)
					if s.group() {
						// Members first: a Sub's end depends on theirs.
						if s.kind == cpSub && w.started {
							w.state = dag.Running
						}
						want[s.path] = w
						switch {
						case w.started:
							walk(s.children, true)
							w = j.cpExpectTask(s, state, ran)
						case s.kind == cpSub:
							walk(s.children, false)
						}
					}
					want[s.path] = w
				} else {
					next = append(next, s)
				}
			}
			if len(next) == len(left) {
				panic("cp: a cycle in a generated job")
			}
			left = next
		}
	}
	walk(j.top, true)
	return want
}

// jobTolerated reports whether a failure of s is tolerated at the job
// level: s or a group around it has ContinueOnFailure.
func (j *cpJob) jobTolerated(s *cpSpec) bool {
	for ; s != nil; s = s.parent {
		if s.cont {
			return true
		}
	}
	return false
}

// stops reports whether any task fails in want in a way that stops its
// group or the job in fail-fast mode.
func (j *cpJob) stops(want map[string]cpWant) bool {
	for p, w := range want {
		if w.state == dag.Failed && !j.byPath[p].cont {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Checks

// cpLegal is the table of State's doc: from -> to. Any state that is not
// final may also go to Canceled.
var cpLegal = map[[2]dag.State]bool{
	{dag.Pending, dag.Ready}:          true,
	{dag.Pending, dag.Running}:        true, // a group starts
	{dag.Pending, dag.Skipped}:        true,
	{dag.Pending, dag.UpstreamFailed}: true,
	{dag.Pending, dag.Failed}:         true, // When panicked
	{dag.Ready, dag.Running}:          true,
	{dag.Running, dag.Completed}:      true,
	{dag.Running, dag.Failed}:         true,
	{dag.Running, dag.Retrying}:       true,
	{dag.Running, dag.Skipped}:        true,
	{dag.Retrying, dag.Ready}:         true,
}

// cpCheckEvents checks the events of run o: legal, complete, in an order
// where no task is decided before its dependencies end, and no group ends
// before its members.
func cpCheckEvents(t *testing.T, j *cpJob, o cpOutcome) {
	t.Helper()
	ev := o.events
	if len(ev) < 2 || ev[0].Task != "" || ev[0].From != dag.Pending || ev[0].To != dag.Running {
		t.Errorf("the job's first event is not Pending -> Running: %v", ev[:min(1, len(ev))])
		return
	}
	if last := ev[len(ev)-1]; last.Task != "" || last.From != dag.Running || last.To != o.res.State {
		t.Errorf("the job's last event is %v; want running -> %v", last, o.res.State)
	}
	type life struct {
		first, final, started int // event indexes; -1 if none
		running               int // Running events
		states                []dag.State
	}
	lives := map[string]*life{}
	for i, e := range ev[1 : len(ev)-1] {
		i++
		if e.Task == "" {
			t.Errorf("event %d is the job's, in the middle: %v", i, e)
			continue
		}
		l := lives[e.Task]
		if l == nil {
			l = &life{first: i, final: -1, started: -1, states: []dag.State{dag.Pending}}
			lives[e.Task] = l
		}
		cur := l.states[len(l.states)-1]
		switch {
		case l.final >= 0:
			t.Errorf("event %v after the task's final one", e)
		case e.From != cur:
			t.Errorf("event %v: the task was %v", e, cur)
		case !cpLegal[[2]dag.State{e.From, e.To}] && e.To != dag.Canceled:
			t.Errorf("illegal transition %v", e)
		}
		l.states = append(l.states, e.To)
		if e.To == dag.Running {
			l.running++
			l.started = i
			s := j.byPath[e.Task]
			if s != nil && s.kind != cpSub && e.Attempt != l.running {
				t.Errorf("event %v: attempt %d; want %d", e, e.Attempt, l.running)
			}
		}
		if e.To.Final() {
			l.final = i
		}
	}
	for name := range lives {
		if _, ok := o.res.Tasks[name]; !ok {
			t.Errorf("task %q has events but no result", name)
		}
		if j.byPath[name] == nil {
			t.Errorf("task %q is not in the job", name)
		}
	}
	for _, s := range j.all {
		tr, ok := o.res.Tasks[s.path]
		if !ok {
			continue
		}
		l := lives[s.path]
		if l == nil {
			t.Errorf("task %s ended %v without an event", s.path, tr.State)
			continue
		}
		if l.final < 0 || l.states[len(l.states)-1] != tr.State {
			t.Errorf("task %s: events %v; result %v", s.path, l.states, tr.State)
		}
		if s.kind == cpSub {
			if slices.Contains(l.states, dag.Ready) || slices.Contains(l.states, dag.Retrying) || l.running > 1 {
				t.Errorf("group %s: events %v; a group is never Ready, nor retried", s.path, l.states)
			}
		} else {
			if len(l.states) > 1 && l.states[0] == dag.Pending && l.states[1] == dag.Running {
				t.Errorf("task %s went Pending -> Running; only a group does", s.path)
			}
			if l.running != tr.Attempts {
				t.Errorf("task %s: %d Running events, %d attempts", s.path, l.running, tr.Attempts)
			}
		}
		// Decided only once every dependency has ended, and within a
		// group that runs.
		decision := l.first
		if l.states[1] == dag.Canceled {
			decision = -1
		}
		groupRan := true
		if g := s.parent; g != nil {
			gl := lives[g.path]
			groupRan = gl != nil && gl.started >= 0 && (g.kind != cpSub || gl.states[1] == dag.Running)
			if groupRan && gl.started > l.first {
				t.Errorf("task %s has an event (%d) before its group %s runs (%d)", s.path, l.first, g.path, gl.started)
			}
		}
		if decision >= 0 && groupRan {
			for _, d := range s.depPaths {
				if dl := lives[d]; dl == nil || dl.final < 0 || dl.final > decision {
					t.Errorf("task %s was decided (event %d) before its dependency %s ended", s.path, decision, d)
				}
			}
		}
		// A group whose members ran ends after them, unless it is
		// canceled. (The members of a group that does not run end with
		// it, in no order the issue fixes.)
		if s.group() && tr.State != dag.Canceled && cpGroupRan(j, s, o) {
			for _, c := range s.children {
				if cl := lives[c.path]; cl != nil && cl.final > l.final {
					t.Errorf("group %s ended (event %d) before its member %s (%d)", s.path, l.final, c.path, cl.final)
				}
			}
		}
	}
	// Progress agrees with the result.
	p := o.progress
	if p.Total() != len(o.res.Tasks) || p.Done() != p.Total() || p.State != o.res.State {
		t.Errorf("Progress() = %+v: total %d, done %d; %d tasks", p, p.Total(), p.Done(), len(o.res.Tasks))
	}
	counts := map[dag.State]int{}
	for _, tr := range o.res.Tasks {
		counts[tr.State]++
	}
	for st := dag.Pending; st <= dag.UpstreamFailed; st++ {
		if p.Count(st) != counts[st] {
			t.Errorf("Progress().Count(%v) = %d; %d tasks", st, p.Count(st), counts[st])
		}
	}
}

// groupRan reports whether group g's members ran in run o: a Sub started
// (went Pending -> Running); an Expand or a Map returned its tasks.
func cpGroupRan(j *cpJob, g *cpSpec, o cpOutcome) bool {
	if g == nil {
		return true
	}
	if g.kind == cpSub {
		for _, e := range o.events {
			if e.Task == g.path && e.From == dag.Pending {
				return e.To == dag.Running
			}
		}
		return false
	}
	return len(g.children) > 0 && func() bool { _, ok := o.res.Tasks[g.children[0].path]; return ok }()
}

// cpCheckLocal checks every task of run o against cpExpectTask, with the
// states its dependencies and members actually ended in: sound whatever the
// timing. It also checks the calls the probe saw, and what each saw.
func cpCheckLocal(t *testing.T, j *cpJob, o cpOutcome, p *cpProbe, lenient func(s *cpSpec, tr dag.TaskResult) bool) {
	t.Helper()
	res := o.res
	state := func(path string) dag.State { return res.Tasks[path].State }
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, prob := range p.problems {
		t.Error(prob)
	}
	// Which tasks exist: the job's own, and an Expand's (or a Map's) all
	// or none.
	for _, s := range j.all {
		_, has := res.Tasks[s.path]
		if s.parent == nil || s.parent.kind == cpSub {
			if !has && (s.parent == nil || cpHas(res, s.parent)) {
				t.Errorf("task %s has no result", s.path)
			}
		} else if has != cpHas(res, s.parent.children[0]) {
			t.Errorf("task %s: in the result %t, its first sibling %t", s.path, has, !has)
		}
	}
	for _, s := range j.all {
		tr, ok := res.Tasks[s.path]
		if !ok {
			continue
		}
		if s.kind != cpSub && s.kind != cpMap {
			if p.calls[s.path] != tr.Attempts || len(p.attempted[s.path]) != tr.Attempts || (tr.Attempts > 0 && !p.attempted[s.path][tr.Attempts]) {
				t.Errorf("task %s: called %d times, by attempts %v; %d attempts", s.path, p.calls[s.path], p.attempted[s.path], tr.Attempts)
			}
		}
		if p.whens[s.path] > 1 {
			t.Errorf("task %s: When asked %d times", s.path, p.whens[s.path])
		}
		if tr.State == dag.Canceled {
			// Something stopped it: the job, or a group around it (in
			// fail-fast mode, or by its Timeout).
			stopped := res.State == dag.Canceled || (res.State == dag.Failed && !j.keepGoing)
			for g := s.parent; g != nil && !stopped; g = g.parent {
				_, timed := j.groupTO[g.path]
				gs := res.Tasks[g.path].State
				stopped = gs == dag.Canceled || (gs == dag.Failed && (!j.keepGoing || timed))
			}
			if !stopped {
				t.Errorf("task %s ended Canceled though nothing stopped it", s.path)
			}
			continue
		}
		w := j.cpExpectTask(s, state, cpGroupRan(j, s.parent, o))
		if lenient != nil && lenient(s, tr) {
			continue
		}
		if w.hangs {
			t.Errorf("task %s ended %v; it hangs until something stops it", s.path, tr.State)
			continue
		}
		if tr.State != w.state || (s.kind != cpSub && tr.Attempts != w.attempts) {
			t.Errorf("task %s ended %v after %d attempts; want %v after %d (its dependencies: %v)", s.path, tr.State, tr.Attempts, w.state, w.attempts, cpDepStates(s, res))
		}
		if w.errIs != nil && !errors.Is(tr.Err, w.errIs) {
			t.Errorf("task %s: Err = %v; want one matching %v", s.path, tr.Err, w.errIs)
		}
		if asked := p.whens[s.path] == 1; asked != w.asked {
			t.Errorf("task %s: When asked %t; want %t (its dependencies: %v)", s.path, asked, w.asked, cpDepStates(s, res))
		}
		if s.group() && w.started != cpGroupRan(j, s, o) && len(s.children) > 0 {
			t.Errorf("group %s: its members ran %t; want %t", s.path, !w.started, w.started)
		}
		if tr.State == dag.Failed && tr.Err == nil {
			t.Errorf("task %s Failed with a nil Err", s.path)
		}
	}
	// On the probe's own clock, no call of a task (nor its When) started
	// before every call of each dependency (and of its members, for a
	// group) had returned: calls that returned after their context ended,
	// or of a task that was canceled, excepted, since the job moves on
	// without them.
	firstStart := map[string]int{}
	for _, c := range p.log {
		if _, ok := firstStart[c.path]; !ok {
			firstStart[c.path] = c.start
		}
	}
	for _, s := range j.all {
		at, ok := firstStart[s.path]
		if !ok {
			continue
		}
		var before []string
		var add func(d *cpSpec)
		add = func(d *cpSpec) {
			before = append(before, d.path)
			for _, c := range d.children {
				add(c)
			}
		}
		for _, d := range s.depPaths {
			add(j.byPath[d])
		}
		for _, c := range p.log {
			if slices.Contains(before, c.path) && !c.late && state(c.path) != dag.Canceled && (c.end == 0 || c.end > at) {
				t.Errorf("%s was called (tick %d) before a call of %s (ticks %d-%d), on which it depends, returned", s.path, at, c.path, c.start, c.end)
			}
		}
	}

	// The context holds the initial context and the output of every task
	// that completed, with the value of its last attempt.
	want := cpContext(j, res)
	if diff := cmp.Diff(want, res.Context, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}
	for _, s := range j.all {
		tr := res.Tasks[s.path]
		if tr.State != dag.Completed {
			if tr.Output != nil {
				t.Errorf("task %s ended %v with output %v", s.path, tr.State, tr.Output)
			}
			continue
		}
		var wantOut map[string]any
		switch s.kind {
		case cpFunc:
			wantOut = map[string]any{"k:" + s.path: cpValue(s.path, tr.Attempts)}
		case cpItem:
			wantOut = map[string]any{"k:" + s.parent.path: cpValue(s.path, tr.Attempts)}
		case cpMap:
			wantOut = map[string]any{"k:" + s.path: want["k:"+s.path]}
		}
		if diff := cmp.Diff(wantOut, tr.Output, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("task %s: Output mismatch (-want +got):\n%s", s.path, diff)
		}
	}
	// Each call saw the initial context plus its ancestors' outputs.
	for _, seen := range p.seen {
		in := map[string]any{}
		for k, v := range j.init {
			in[k] = v
		}
		for _, a := range j.anc[seen.path] {
			if res.Tasks[a].State == dag.Completed {
				in["k:"+a] = want["k:"+a]
			}
		}
		if diff := cmp.Diff(in, seen.in, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s of %s saw (-want +got):\n%s", seen.what, seen.path, diff)
		}
	}
	// The job's end, and Wait's error.
	var untolerated []string
	for _, s := range j.all {
		if state(s.path) == dag.Failed && !j.jobTolerated(s) {
			untolerated = append(untolerated, s.path)
		}
	}
	switch res.State {
	case dag.Completed:
		if o.err != nil || len(untolerated) > 0 {
			t.Errorf("the job completed with Wait() = %v; failures not tolerated: %v", o.err, untolerated)
		}
	case dag.Failed:
		if len(untolerated) == 0 {
			t.Errorf("the job failed (%v) with no failure that is not tolerated", o.err)
		}
		if j.keepGoing {
			break // cpCheckKeepGoingErr
		}
		te, ok := o.err.(*dag.TaskError)
		if !ok || !slices.Contains(untolerated, te.Task) {
			t.Errorf("Wait() = %v; want the *TaskError of one of %v", o.err, untolerated)
		} else if te.Attempts != res.Tasks[te.Task].Attempts {
			t.Errorf("Wait's *TaskError says %d attempts; the task made %d", te.Attempts, res.Tasks[te.Task].Attempts)
		}
	case dag.Canceled:
		if !o.canceled || !errors.Is(o.err, context.Canceled) {
			t.Errorf("the job ended Canceled, Wait() = %v; the test canceled it: %t", o.err, o.canceled)
		}
	default:
		t.Errorf("the job ended %v", res.State)
	}
	if got, want := res.Failed(), cpNamesIn(res, dag.Failed); !slices.Equal(got, want) {
		t.Errorf("Result.Failed() = %v; want %v", got, want)
	}
	if got, want := res.Skipped(), cpNamesIn(res, dag.Skipped, dag.UpstreamFailed); !slices.Equal(got, want) {
		t.Errorf("Result.Skipped() = %v; want %v", got, want)
	}
}

func cpHas(res dag.Result, s *cpSpec) bool { _, ok := res.Tasks[s.path]; return ok }

func cpNamesIn(res dag.Result, states ...dag.State) []string {
	var out []string
	for n, tr := range res.Tasks {
		if slices.Contains(states, tr.State) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func cpDepStates(s *cpSpec, res dag.Result) string {
	var parts []string
	for _, d := range s.depPaths {
		parts = append(parts, d+"="+res.Tasks[d].State.String())
	}
	return strings.Join(parts, " ")
}

// cpContext is the job context a result must have: the initial context
// plus the key of every writer that completed, with the value of its last
// attempt (of each item's, for a Map).
func cpContext(j *cpJob, res dag.Result) map[string]any {
	ctx := map[string]any{}
	for k, v := range j.init {
		ctx[k] = v
	}
	for _, s := range j.all {
		tr := res.Tasks[s.path]
		if !s.writes() || tr.State != dag.Completed {
			continue
		}
		if s.kind == cpFunc {
			ctx["k:"+s.path] = cpValue(s.path, tr.Attempts)
			continue
		}
		items := []string{}
		for _, c := range s.children {
			items = append(items, cpValue(c.path, res.Tasks[c.path].Attempts))
		}
		ctx["k:"+s.path] = items
	}
	return ctx
}

// cpCheckKeepGoingErr checks Wait's error in KeepGoing mode: one
// *TaskError per task that Failed, is not tolerated at the job level and is
// not a group that its members failed (ownFailure says which groups failed
// by themselves, by their Timeout), in declaration order.
func cpCheckKeepGoingErr(t *testing.T, j *cpJob, o cpOutcome, ownFailure func(s *cpSpec) bool) {
	t.Helper()
	if o.res.State == dag.Canceled {
		return
	}
	var want []string
	for _, s := range j.all {
		if o.res.Tasks[s.path].State != dag.Failed || j.jobTolerated(s) {
			continue
		}
		if s.group() && cpGroupRan(j, s, o) && !ownFailure(s) {
			continue
		}
		want = append(want, s.path)
	}
	var got []string
	if o.err != nil {
		u, ok := o.err.(interface{ Unwrap() []error })
		if !ok {
			t.Errorf("Wait() = %v; want errors.Join of *TaskErrors", o.err)
			return
		}
		for _, e := range u.Unwrap() {
			te, ok := e.(*dag.TaskError)
			if !ok {
				t.Errorf("Wait's error holds %v, not a *TaskError", e)
				continue
			}
			got = append(got, te.Task)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Wait's error names %v; want %v", got, want)
	}
}

// cpCheckPredicted checks run o against the prediction, when nothing
// depends on timing.
func cpCheckPredicted(t *testing.T, j *cpJob, want map[string]cpWant, o cpOutcome) {
	t.Helper()
	got := map[string]cpWant{}
	for name, tr := range o.res.Tasks {
		s := j.byPath[name]
		if s == nil {
			continue // reported elsewhere
		}
		w := cpWant{state: tr.State, attempts: tr.Attempts}
		if s.kind == cpSub {
			w.attempts = 0
		}
		got[name] = w
	}
	exp := map[string]cpWant{}
	for name, w := range want {
		if s := j.byPath[name]; s.parent != nil && s.parent.kind != cpSub && !want[s.parent.path].started {
			continue // an Expand's tasks that were never returned
		}
		exp[name] = cpWant{state: w.state, attempts: w.attempts}
	}
	if diff := cmp.Diff(exp, got, cmp.AllowUnexported(cpWant{})); diff != "" {
		t.Errorf("tasks differ from the prediction (-want +got):\n%s", diff)
	}
	wantState := dag.Completed
	for _, s := range j.all {
		if want[s.path].state == dag.Failed && !j.jobTolerated(s) {
			wantState = dag.Failed
		}
	}
	if o.res.State != wantState {
		t.Errorf("the job ended %v; want %v", o.res.State, wantState)
	}
}

// cpCheckSameContext checks that two runs of a job ended with the same
// Result.Context.
func cpCheckSameContext(t *testing.T, first, o cpOutcome) {
	t.Helper()
	if diff := cmp.Diff(first.res.Context, o.res.Context, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Result.Context with MaxParallel %d differs from MaxParallel %d (-first +this):\n%s", o.mp, first.mp, diff)
	}
}

// TestPropertyComposition: see the top of the file.
func TestPropertyComposition(t *testing.T) {
	t.Parallel()
	seeds := uint64(120)
	if os.Getenv("DAG_SOAK") != "" {
		seeds *= 20
	}
	var stats cpStats
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			j := cpGenerate(cpRand{rand.New(rand.NewPCG(seed, 0xc0c0))}, 40, false)
			r := rand.New(rand.NewPCG(seed, 0x9a9a))
			mps := []int{1 + r.IntN(2), 3 + r.IntN(3), 6 + r.IntN(3)}
			cpCheckJob(t, j, mps, &stats)
		})
	}
	t.Logf("%d jobs, %d runs: %d tasks, %d deterministic jobs, most attempts at once %d; tasks by end: %v",
		seeds, 3*seeds, stats.tasks, stats.deterministic, stats.most, stats.ends)
}

// cpStats are figures over many jobs, to see what the generator covers.
type cpStats struct {
	mu                         sync.Mutex
	tasks, deterministic, most int
	ends                       map[dag.State]int
}

// cpCheckJob runs j once per MaxParallel in mps, each in a synctest
// bubble, and checks every run and that they agree.
func cpCheckJob(t *testing.T, j *cpJob, mps []int, stats *cpStats) {
	t.Helper()
	want := j.cpPredict()
	deterministic := j.keepGoing || !j.stops(want)
	var first *cpOutcome
	for _, mp := range mps {
		synctest.Test(t, func(t *testing.T) {
			o, p := cpRunJob(t, j, mp, time.Hour, nil)
			cpCheckEvents(t, j, o)
			cpCheckLocal(t, j, o, p, nil)
			if j.keepGoing {
				cpCheckKeepGoingErr(t, j, o, func(*cpSpec) bool { return false })
			}
			if deterministic {
				cpCheckPredicted(t, j, want, o)
				if first == nil {
					first = &o
				} else {
					cpCheckSameContext(t, *first, o)
				}
			}
			if stats != nil {
				stats.mu.Lock()
				if stats.ends == nil {
					stats.ends = map[dag.State]int{}
				}
				stats.tasks += len(o.res.Tasks)
				for _, tr := range o.res.Tasks {
					stats.ends[tr.State]++
				}
				stats.most = max(stats.most, p.most)
				if deterministic && mp == mps[0] {
					stats.deterministic++
				}
				stats.mu.Unlock()
			}
			if t.Failed() {
				t.Logf("MaxParallel %d; the job:\n%v", mp, j)
				cpLogEvents(t, o.events)
			}
		})
	}
}

// cpLogEvents logs events one line each: errors without their stacks.
func cpLogEvents(t *testing.T, events []dag.Event) {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		line, _, _ := strings.Cut(e.String(), "\n")
		b.WriteString(line)
		b.WriteString("\n")
	}
	t.Logf("events:\n%s", b.String())
}

// ---------------------------------------------------------------------------
// Bugs the property test found, each as a minimal job.

// cpRunSmall runs tasks in a synctest bubble and returns the result; a job
// that does not end fails the test (fake time runs out at once when every
// goroutine is blocked), and is canceled.
func cpRunSmall(t *testing.T, tasks []dag.Task, opts dag.Options) (res dag.Result, err error) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		job, rerr := dag.Run(context.Background(), tasks, opts)
		if rerr != nil {
			t.Fatalf("Run: %v", rerr)
		}
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		select {
		case <-job.Done():
		case <-timer.C:
			t.Errorf("the job never ends; tasks now: %v", cpStates(job.Snapshot()))
			job.Cancel()
		}
		res, err = job.Wait()
	})
	return res, err
}

func cpNop(context.Context, dag.Values) (map[string]any, error) { return nil, nil }

// TestCompositionPathDependentOfUnrunGroup: a task that depends on a
// group's task by its path must be decided when the group does not run
// (Skipped, or UpstreamFailed with KeepGoing), as when it depends on the
// group.
func TestCompositionPathDependentOfUnrunGroup(t *testing.T) {
	t.Parallel()
	for _, kg := range []bool{false, true} {
		tasks := []dag.Task{
			{Name: "skipped", When: func(dag.Values) bool { return false }, Sub: []dag.Task{{Name: "c", Func: cpNop}}},
			{Name: "a", DependsOn: []string{"skipped/c"}, Trigger: dag.AllDone, Func: cpNop},
		}
		want := map[string]dag.State{"skipped/c": dag.Skipped, "a": dag.Completed}
		if kg {
			tasks = append(tasks,
				dag.Task{Name: "f", Func: fail(errBoom)},
				dag.Task{Name: "upstream", DependsOn: []string{"f"}, Sub: []dag.Task{{Name: "c", Func: cpNop}}},
				dag.Task{Name: "b", DependsOn: []string{"upstream/c"}, Trigger: dag.AnyFailed, Func: cpNop})
			want["upstream/c"], want["b"] = dag.UpstreamFailed, dag.Completed
		}
		res, err := cpRunSmall(t, tasks, dag.Options{KeepGoing: kg})
		if kg != (err != nil) {
			t.Errorf("KeepGoing %t: Wait() = %v", kg, err)
		}
		checkStates(t, fmt.Sprintf("KeepGoing %t: ", kg), res, want)
	}
}

// TestCompositionGroupWhenPanics: a group whose When panics fails without
// running; its tasks end UpstreamFailed (they did not run because their
// group failed), and the job goes on as for any tolerated failure.
func TestCompositionGroupWhenPanics(t *testing.T) {
	t.Parallel()
	for _, kg := range []bool{false, true} {
		tasks := []dag.Task{
			{Name: "g", ContinueOnFailure: true, When: func(dag.Values) bool { panic("bad condition") }, Sub: []dag.Task{
				{Name: "c", Func: cpNop},
				{Name: "h", Sub: []dag.Task{{Name: "d", Func: cpNop}}},
			}},
			{Name: "after", DependsOn: []string{"g"}, Func: cpNop},
			{Name: "by-path", DependsOn: []string{"g/c"}, Trigger: dag.AnyFailed, Func: cpNop},
		}
		res, err := cpRunSmall(t, tasks, dag.Options{KeepGoing: kg})
		if err != nil {
			t.Errorf("KeepGoing %t: Wait() = %v; g has ContinueOnFailure", kg, err)
		}
		var pe *dag.PanicError
		if g := res.Tasks["g"]; g.State != dag.Failed || !errors.As(g.Err, &pe) {
			t.Errorf("KeepGoing %t: g = %v, %v; want Failed with a *PanicError", kg, g.State, g.Err)
		}
		want := map[string]dag.State{"g/c": dag.UpstreamFailed, "g/h": dag.UpstreamFailed, "g/h/d": dag.UpstreamFailed, "after": dag.Completed, "by-path": dag.Completed}
		checkStates(t, fmt.Sprintf("KeepGoing %t: ", kg), res, want)
	}
}

// TestCompositionEmptySub: a group with no tasks (an empty, non-nil Sub)
// completes once it starts, as an Expand that returns no tasks does; its
// dependents see its own dependencies' outputs. It must not crash the
// program, in the job's tasks or in what an Expand returns.
func TestCompositionEmptySub(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"a": 1})},
		{Name: "g", DependsOn: []string{"a"}, Sub: []dag.Task{}},
		{Name: "after", DependsOn: []string{"g"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if _, ok := in.Get("a"); !ok {
				return nil, errors.New("after does not see a, an ancestor through g")
			}
			return nil, nil
		}},
		{Name: "skipped", When: func(dag.Values) bool { return false }, Sub: []dag.Task{}},
		{Name: "e", Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
			return []dag.Task{{Name: "x", Func: cpNop}, {Name: "g", DependsOn: []string{"x"}, Sub: []dag.Task{}}}, nil
		}},
	}
	res, err := cpRunSmall(t, tasks, dag.Options{})
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	want := map[string]dag.State{"g": dag.Completed, "after": dag.Completed, "skipped": dag.Skipped, "e": dag.Completed, "e/g": dag.Completed}
	checkStates(t, "", res, want)
}

// TestCompositionGroupTimeoutAfterItEnded: a group whose Timeout passes at
// the moment its last task ends (here by that task's own Timeout) ends
// once. The group's timeout watch and the task's expiry race for the job's
// lock; when the task's wins, the group completes, and an attempt of its
// that returns later must not end it a second time (a second final event,
// and its dependents released twice). The race is the scheduler's, so the
// job runs many times (it is lost about one time in six under the race
// detector, one in fifty without): each run takes no wall time (synctest).
func TestCompositionGroupTimeoutAfterItEnded(t *testing.T) {
	t.Parallel()
	for range 200 {
		synctest.Test(t, func(t *testing.T) {
			returned := make(chan struct{})
			tasks := []dag.Task{
				{Name: "g", Timeout: 10 * time.Millisecond, Sub: []dag.Task{
					{Name: "m", Timeout: 10 * time.Millisecond, MaxRetries: dag.NoRetries, ContinueOnFailure: true,
						Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
							time.Sleep(15 * time.Millisecond) // ignores ctx, and returns within the grace period
							close(returned)
							return nil, nil
						}},
				}},
				// keeper keeps the job running until m's late return has
				// been recorded.
				{Name: "keeper", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
					<-returned
					synctest.Wait()
					return nil, nil
				}},
				{Name: "after", DependsOn: []string{"g"}, Trigger: dag.AllDone, Func: cpNop},
			}
			ch := make(chan dag.Event, 64)
			job, err := dag.Run(context.Background(), tasks, dag.Options{Events: ch, MaxParallel: 2})
			if err != nil {
				t.Fatal(err)
			}
			res, _ := job.Wait()
			finals := map[string]int{}
			var events []dag.Event
			for e := range ch {
				events = append(events, e)
				if e.Task != "" && e.To.Final() {
					finals[e.Task]++
				}
			}
			for name, n := range finals {
				if n != 1 {
					t.Errorf("task %s has %d final events; want 1 (it ended %v)", name, n, res.Tasks[name].State)
				}
			}
			if t.Failed() {
				cpLogEvents(t, events)
			}
		})
	}
}
