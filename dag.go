// Package dag runs a directed acyclic graph of tasks inside one process.
//
// Where [golang.org/x/sync/errgroup] runs independent goroutines and reports
// the first error, dag runs tasks that depend on each other: a task starts
// once the tasks it depends on have ended, on a bounded pool of workers, with
// per-attempt timeouts, retries with backoff, a shared job context that
// carries each task's output to the tasks that depend on it, and an ordered
// stream of events for logging and metrics.
//
// dag is in-process and not durable: a job lives in memory and ends with the
// process. It is meant for gluing API calls, data fetches, build steps and
// batch jobs together, not for replacing a workflow server.
//
// # Declaring tasks
//
// A [Task] is a name, a [TaskFunc] and the names of the tasks it depends on.
// [Run] validates the tasks, starts the job and returns a [*Job]; [Job.Wait]
// returns the [Result]:
//
//	job, err := dag.Run(ctx, []dag.Task{
//		{Name: "fetch", Func: fetch},
//		{Name: "parse", Func: parse, DependsOn: []string{"fetch"}},
//	}, dag.Options{})
//	if err != nil { ... } // the tasks are not a valid DAG; nothing ran
//	res, err := job.Wait()
//
// # Validation
//
// [Validate] and [Run] check every task before anything runs and report every
// problem at once, joined with [errors.Join]: empty or duplicate names, a nil
// Func, a negative Timeout, MaxRetries below [NoRetries], a dependency on an
// unknown task or on the task itself, and cycles, shown as a path such as
// "a -> b -> c -> a". Each problem names its task and matches one of
// [ErrInvalidTask], [ErrDuplicateTask], [ErrMissingDependency], [ErrCycle] or
// [ErrInvalidOptions] with [errors.Is]. Validation and scheduling use no
// recursion, so graphs of millions of tasks or a task with a hundred thousand
// dependencies are fine.
//
// # Scheduling
//
// A task becomes Ready when every task it depends on has ended Completed, or
// Failed with ContinueOnFailure set. At most [Options.MaxParallel] attempts
// run at once; workers are started lazily, so a three-task job never starts
// more than three. Among ready tasks, the one with the longest chain of tasks
// still ahead of it (the critical path) starts first, and ties go to the task
// declared first. Only a task that can run holds a worker: a task waiting out
// a retry delay holds none.
//
// # The job context
//
// Each task returns a map that is merged into the job context. A task sees,
// through [Values], exactly the initial context ([Options.Context]) plus the
// outputs of every task it depends on, directly or not, and nothing else, so
// what it reads never depends on timing. When a key is written by two tasks
// of which one depends on the other, the descendant's value wins. When two
// tasks that do not depend on each other both write a key, the job fails
// with [ErrConflict]: the result would otherwise depend on which finished
// last. Outputs of failed attempts are never seen. dag copies each output, so
// a task may reuse its map after returning, and a [Values] stays valid and
// unchanged after its task ends. Reading a key costs the same whatever the
// size of the job: nothing is copied per task.
//
// # Failures, retries and panics
//
// An attempt fails when its Func returns an error, panics, or runs past the
// task's Timeout. A panic is recovered and becomes a [*PanicError] carrying
// the value and the stack; the attempt's Failed or Retrying event is sent the
// moment it happens and the scheduler never waits on the panicked attempt. A
// failed attempt is retried after the [Options.Backoff] delay while retries
// remain; returning [backoff.Permanent] or a BackOff returning [backoff.Stop]
// ends the retries at once. A task that fails for good fails the job unless
// it has ContinueOnFailure: running attempts have their context cancelled,
// nothing new starts, and [Job.Wait] returns a [*TaskError].
//
// errgroup chose to let panics crash the program, because a recovered panic
// loses its stack and keeps the group waiting. dag recovers them because a
// task is often someone else's code and one bad input should not take down a
// service; it keeps the full stack in the error, reports it at once, and does
// not wait for the panicked attempt.
//
// # Cancellation and timeouts
//
// [Job.Cancel], cancelling the context given to [Run], and [Options.Timeout]
// end the job Canceled. Every running attempt's context is cancelled, with a
// cause readable through [context.Cause]. Cancellation in Go is cooperative:
// a Func that ignores its context keeps running. dag does not wait for it
// past a short grace period: [Job.Wait] returns, and the attempt is counted
// in [TaskResult.Abandoned] and [Progress.Abandoned] so that such code can be
// found. Its late result is discarded.
//
// # Events
//
// Every state transition of the job and of each task is sent, in order and
// without loss, on [Options.Events] if it is set; see [State] for the legal
// transitions. [LogEvents] logs them with [log/slog]; [Job.Progress] gives
// live counts at any time.
//
// # Testing a TaskFunc
//
// A TaskFunc is a plain function: call it with a context and [ValuesOf].
package dag

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Validation errors. Each problem [Validate] or [Run] finds wraps one of
// these and names the task; match them with [errors.Is].
var (
	// ErrCycle reports tasks that depend on each other in a cycle, including a
	// task that depends on itself.
	ErrCycle = errors.New("dag: dependency cycle")
	// ErrMissingDependency reports a dependency on a task that is not declared.
	ErrMissingDependency = errors.New("dag: missing dependency")
	// ErrDuplicateTask reports two tasks with the same name.
	ErrDuplicateTask = errors.New("dag: duplicate task name")
	// ErrInvalidTask reports a task with an empty name, a nil Func, a negative
	// Timeout or a MaxRetries below NoRetries.
	ErrInvalidTask = errors.New("dag: invalid task")
	// ErrInvalidOptions reports a negative field of Options or a nil context.
	ErrInvalidOptions = errors.New("dag: invalid options")
)

// maxProblems caps how many validation problems one error lists, so that a
// list of a million bad tasks yields a readable error.
const maxProblems = 100

// maxCycles caps how many cycles one error shows.
const maxCycles = 10

// Validate reports whether tasks form a valid DAG, with the same checks as
// [Run], without running anything. It returns nil or an error joining every
// problem found (at most 100 are listed, and a last line counts the rest).
// Validate takes time linear in the number of tasks and dependencies.
func Validate(tasks []Task) error {
	_, err := build(tasks)
	return err
}

// graph is a validated task list in compact form: tasks are numbered in
// declaration order and edges are stored as offsets into flat slices (the
// "compressed sparse row" layout), so that a graph of a million tasks costs a
// handful of allocations.
type graph struct {
	names []string
	// deps[depOff[i]:depOff[i+1]] are the tasks task i depends on, sorted.
	depOff, deps []int32
	// outs[outOff[i]:outOff[i+1]] are the tasks that depend on task i, in
	// declaration order.
	outOff, outs []int32
	// level is the length of the longest path from a task without
	// dependencies to the task: an ancestor always has a smaller level.
	level []int32
	// rank is the number of tasks on the longest path from the task to a
	// task nothing depends on: the critical path still ahead of it.
	rank []int32
	// disc and fin number the tasks in the order a depth-first walk along
	// dependents, from each task without dependencies, discovers and
	// finishes them; low[i] is the least fin of task i and the tasks that
	// depend on it, directly or not. They answer most of dependsOn's
	// questions at once, whatever the size of the graph:
	//
	//   - if a is an ancestor of t, fin[t] < fin[a] and low[a] <= low[t];
	//   - if disc[a] < disc[t] and fin[t] < fin[a], t was reached through a
	//     on the walk, so a is an ancestor of t.
	//
	// They are made by the first question that needs them: a job whose
	// tasks read only what their direct dependencies wrote never does.
	walked         sync.Once
	disc, fin, low []int32
}

func (g *graph) depsOf(i int32) []int32 { return g.deps[g.depOff[i]:g.depOff[i+1]] }
func (g *graph) outsOf(i int32) []int32 { return g.outs[g.outOff[i]:g.outOff[i+1]] }

// problems collects validation errors up to maxProblems.
type problems struct {
	errs    []error
	dropped int
}

func (p *problems) add(sentinel error, format string, args ...any) {
	if len(p.errs) >= maxProblems {
		p.dropped++
		return
	}
	p.errs = append(p.errs, &wrapError{msg: "dag: " + fmt.Sprintf(format, args...), err: sentinel})
}

func (p *problems) err() error {
	if p.dropped > 0 {
		p.errs = append(p.errs, fmt.Errorf("dag: %d more problems not shown", p.dropped))
	}
	return errors.Join(p.errs...)
}

// wrapError is an error with its own message that matches a sentinel.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// quote quotes a task name for an error message, shortening huge ones.
func quote(name string) string {
	const max = 64
	if len(name) > max {
		return fmt.Sprintf("%q… (%d bytes)", name[:max], len(name))
	}
	return fmt.Sprintf("%q", name)
}

// pathName names a task in a cycle's path: as it is, so that the path
// reads a -> b -> a, unless the name could blur the path (it is long, has
// an arrow, quotes, control characters or invalid UTF-8): then quoted.
func pathName(name string) string {
	if len(name) <= 64 && utf8.ValidString(name) && !strings.Contains(name, "->") &&
		!strings.ContainsFunc(name, func(r rune) bool { return r == '"' || r == '…' || !unicode.IsPrint(r) }) {
		return name
	}
	return quote(name)
}

// taskID names task i for a message: its quoted name, or #i if it has none.
func taskID(name string, i int) string {
	if name == "" {
		return fmt.Sprintf("#%d", i)
	}
	return quote(name)
}

// build validates tasks and returns their graph.
func build(tasks []Task) (*graph, error) {
	n := len(tasks)
	var p problems
	if n > 1<<31-2 {
		p.add(ErrInvalidTask, "%d tasks is more than a job can hold", n)
		return nil, p.err()
	}
	g := &graph{names: make([]string, n)}
	index := make(map[string]int32, n)
	for i := range tasks {
		t := &tasks[i]
		g.names[i] = t.Name
		switch first, dup := index[t.Name]; {
		case t.Name == "":
			p.add(ErrInvalidTask, "task #%d has an empty name; every task needs a unique name", i)
		case dup:
			p.add(ErrDuplicateTask, "task %s is declared twice (#%d and #%d); task names must be unique", quote(t.Name), first, i)
		default:
			index[t.Name] = int32(i)
		}
		if t.Func == nil {
			p.add(ErrInvalidTask, "task %s has a nil Func", taskID(t.Name, i))
		}
		if t.Timeout < 0 {
			p.add(ErrInvalidTask, "task %s has a negative Timeout (%v); use 0 for no timeout", taskID(t.Name, i), t.Timeout)
		}
		if t.MaxRetries < NoRetries {
			p.add(ErrInvalidTask, "task %s has MaxRetries %d; use a positive count, 0 for Options.MaxRetries or NoRetries (-1)", taskID(t.Name, i), t.MaxRetries)
		}
	}

	// Resolve dependencies into the flat deps slice, sorted and without
	// duplicates per task. The name lookups, a cache miss each in a big
	// job, run on several goroutines; problems are then reported, and each
	// task's list compacted in place, in declaration order.
	g.depOff = make([]int32, n+1)
	total := 0
	for i := range tasks {
		total += len(tasks[i].DependsOn)
	}
	g.deps = make([]int32, total)
	resolve(tasks, index, g.deps)
	at, w := 0, 0
	for i := range tasks {
		t := &tasks[i]
		start := w
		for _, d := range t.DependsOn {
			switch j := g.deps[at]; j {
			case depSelf:
				p.add(ErrCycle, "task %s depends on itself", quote(t.Name))
			case depUnknown:
				p.add(ErrMissingDependency, "task %s depends on %s, which is not declared", quote(t.Name), quote(d))
			default:
				g.deps[w] = j
				w++
			}
			at++
		}
		mine := g.deps[start:w]
		slices.Sort(mine)
		w = start + len(slices.Compact(mine))
		g.depOff[i+1] = int32(w)
	}
	g.deps = g.deps[:w]

	// Dependents, by counting sort: stable, so each list is in declaration order.
	g.outOff = make([]int32, n+1)
	for _, d := range g.deps {
		g.outOff[d+1]++
	}
	for i := range n {
		g.outOff[i+1] += g.outOff[i]
	}
	g.outs = make([]int32, len(g.deps))
	fill := slices.Clone(g.outOff[:n])
	for i := range int32(n) {
		for _, d := range g.depsOf(i) {
			g.outs[fill[d]] = i
			fill[d]++
		}
	}

	// Kahn's algorithm: a topological order, and the levels on the way.
	order := make([]int32, 0, n)
	pending := make([]int32, n)
	g.level = make([]int32, n)
	for i := range int32(n) {
		pending[i] = g.depOff[i+1] - g.depOff[i]
		if pending[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		i := order[k]
		for _, o := range g.outsOf(i) {
			g.level[o] = max(g.level[o], g.level[i]+1)
			if pending[o]--; pending[o] == 0 {
				order = append(order, o)
			}
		}
	}
	if len(order) < n {
		g.reportCycles(pending, &p)
	}
	if err := p.err(); err != nil {
		return nil, err
	}

	g.rank = make([]int32, n)
	for k := n - 1; k >= 0; k-- {
		i := order[k]
		r := int32(0)
		for _, o := range g.outsOf(i) {
			r = max(r, g.rank[o])
		}
		g.rank[i] = r + 1
	}
	return g, nil
}

// walk sets disc, fin and low by a depth-first walk along dependents from
// each task without dependencies, in declaration order. It keeps its own
// stack: a chain of a million tasks must not overflow the goroutine's.
func (g *graph) walk() {
	g.walked.Do(g.walkNow)
}

func (g *graph) walkNow() {
	n := int32(len(g.names))
	g.disc = make([]int32, n) // 0: not discovered yet
	g.fin = make([]int32, n)
	g.low = make([]int32, n)
	type frame struct{ task, next int32 }
	var stack []frame
	disc, fin := int32(1), int32(0)
	for root := range n {
		if g.depOff[root+1] != g.depOff[root] {
			continue
		}
		g.disc[root] = disc
		disc++
		stack = append(stack[:0], frame{task: root})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if outs := g.outsOf(top.task); int(top.next) < len(outs) {
				o := outs[top.next]
				top.next++
				if g.disc[o] == 0 {
					g.disc[o] = disc
					disc++
					stack = append(stack, frame{task: o})
				}
				continue
			}
			// Every task that depends on this one has finished: it was
			// finished before, or during this one's part of the walk.
			l := fin
			for _, o := range g.outsOf(top.task) {
				l = min(l, g.low[o])
			}
			g.fin[top.task], g.low[top.task] = fin, l
			fin++
			stack = stack[:len(stack)-1]
		}
	}
}

// Markers resolve leaves in place of a task number.
const (
	depUnknown = -1 // the name is not declared
	depSelf    = -2 // the task names itself
)

// parallelResolve is the number of dependencies above which resolve uses
// more than one goroutine.
const parallelResolve = 1 << 13

// resolve writes the task number of every dependency of tasks, in order,
// into out, or a marker. Large jobs are split among GOMAXPROCS goroutines,
// which only read the index; resolve waits for them.
func resolve(tasks []Task, index map[string]int32, out []int32) {
	chunk := func(lo, hi, at int) {
		for i := lo; i < hi; i++ {
			t := &tasks[i]
			for _, d := range t.DependsOn {
				j, ok := index[d]
				switch {
				case d == t.Name && t.Name != "":
					j = depSelf
				case !ok:
					j = depUnknown
				}
				out[at] = j
				at++
			}
		}
	}
	parts := min(runtime.GOMAXPROCS(0), len(out)/parallelResolve+1)
	if parts <= 1 {
		chunk(0, len(tasks), 0)
		return
	}
	var wg sync.WaitGroup
	lo, at := 0, 0
	for k := range parts {
		// Split by dependencies, not tasks: one task may have them all.
		hi, end := lo, at
		for hi < len(tasks) && (k == parts-1 || end-at < len(out)/parts) {
			end += len(tasks[hi].DependsOn)
			hi++
		}
		from, to, first := lo, hi, at // lo and at change below
		wg.Go(func() { chunk(from, to, first) })
		lo, at = hi, end
	}
	wg.Wait()
}

// reportCycles adds a problem for each of up to maxCycles cycles among the
// tasks Kahn's algorithm could not order (pending > 0). Every such task
// depends on another such task, so a depth-first walk along dependencies
// from any of them reaches a cycle. The walk keeps its own stack: a cycle
// through a million tasks must not overflow the goroutine's.
func (g *graph) reportCycles(pending []int32, p *problems) {
	const (
		white = iota
		grey  // on the walk's current path
		black // done
	)
	color := make([]uint8, len(pending))
	type frame struct {
		task int32
		next int32 // index into depsOf(task) of the next dependency to visit
	}
	var stack []frame
	found, more := 0, false
	for root := range int32(len(pending)) {
		if pending[root] == 0 || color[root] != white {
			continue
		}
		stack = append(stack[:0], frame{task: root})
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			deps := g.depsOf(top.task)
			if int(top.next) == len(deps) {
				color[top.task] = black
				stack = stack[:len(stack)-1]
				continue
			}
			d := deps[top.next]
			top.next++
			if pending[d] == 0 {
				continue
			}
			switch color[d] {
			case white:
				color[d] = grey
				stack = append(stack, frame{task: d})
			case grey:
				if found == maxCycles {
					more = true
					continue
				}
				found++
				// The path from d to the top of the stack, each depending on
				// the next... and the top depends on d. Shown in the order the
				// tasks would have to run: each before the one after it.
				at := len(stack) - 1
				for stack[at].task != d {
					at--
				}
				cyc := make([]int32, 0, len(stack)-at)
				cyc = append(cyc, d)
				for k := len(stack) - 1; k > at; k-- {
					cyc = append(cyc, stack[k].task)
				}
				start := slices.Index(cyc, slices.Min(cyc))
				cyc = append(cyc[start:], cyc[:start]...)
				var b strings.Builder
				const show = 20 // tasks shown at each end of a long cycle
				for k, c := range cyc {
					if len(cyc) > 2*show && k == show {
						fmt.Fprintf(&b, "… (%d more) … -> ", len(cyc)-2*show)
					}
					if len(cyc) > 2*show && k >= show && k < len(cyc)-show {
						continue
					}
					b.WriteString(pathName(g.names[c]))
					b.WriteString(" -> ")
				}
				b.WriteString(pathName(g.names[cyc[0]]))
				p.add(ErrCycle, "dependency cycle: %s (each task depends on the one before it); remove one of these dependencies", b.String())
			}
		}
	}
	if more {
		p.add(ErrCycle, "more dependency cycles not shown")
	}
}
