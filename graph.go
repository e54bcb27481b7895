package dag

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
)

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

// dependsOn reports whether task t depends on task a, directly or not.
//
// The labels of the graph answer most questions at once, whatever its
// size: an ancestor has a lower level, a fin above t's and a low not above
// t's, and a task the walk reached through a descends from a (see graph).
// Direct dependencies are sorted, so checking them is a binary search, and
// an ancestor one level down must be one of them. Otherwise a walk up from
// t visits only tasks the labels leave in doubt, and stops at the first
// that descends from a.
func (g *graph) dependsOn(t, a int32) bool {
	la, lt := g.level[a], g.level[t]
	if la >= lt {
		return false
	}
	if _, ok := slices.BinarySearch(g.depsOf(t), a); ok {
		return true
	}
	if lt-la == 1 {
		return false
	}
	g.walk()
	if g.fin[t] >= g.fin[a] || g.low[t] < g.low[a] {
		return false
	}
	if g.disc[a] < g.disc[t] {
		return true
	}
	seen := map[int32]bool{t: true}
	stack := []int32{t}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.depsOf(x) {
			if d == a {
				return true
			}
			if g.level[d] <= la || g.fin[d] >= g.fin[a] || g.low[d] < g.low[a] {
				continue // a is not an ancestor of d
			}
			if g.disc[a] < g.disc[d] {
				return true // d descends from a, and t from d
			}
			if g.level[d] > la+1 && !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			} else if g.level[d] == la+1 && !seen[d] {
				// One level above a: an ancestor of t through d only if d
				// depends on a directly.
				seen[d] = true
				if _, ok := slices.BinarySearch(g.depsOf(d), a); ok {
					return true
				}
			}
		}
	}
	return false
}
