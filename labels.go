package dag

import "slices"

// Labels of the graph that answer "does task t depend on task a?" in
// constant time for most questions, whatever the size of the job; the job
// context asks it on every read of a key written by an indirect ancestor.

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
