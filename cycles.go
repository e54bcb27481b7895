package dag

import (
	"fmt"
	"slices"
	"strings"
)

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
