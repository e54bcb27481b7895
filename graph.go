package dag

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// graph is a validated task list in compact form: one scope of a job (the
// job's own tasks, or the tasks one Expand returned). Groups (Task.Sub) are
// flattened into it: a group is an open node, its members, then a close node,
// in that order, so the nodes are numbered in declaration order and each
// group's members are the nodes between its open and close nodes. Members
// depend on their group's open node and the close node depends on every
// member; a task that depends on a group depends on its close node. Paths of
// the graph are then exactly the "sees the output of" relation of the job
// context. Edges are stored as offsets into flat slices (the "compressed
// sparse row" layout), so that a graph of a million tasks costs a handful of
// allocations.
type graph struct {
	names []string // full paths; a close node has its group's name
	nodes []gnode
	// decls are the declarations (the caller's copies), by node; nil for a
	// close node. The executor that runs the graph reads what it needs and
	// drops them: a job keeps no reference to the caller's tasks.
	decls []*Task
	// deps[depOff[i]:depOff[i+1]] are the nodes node i depends on, sorted.
	depOff, deps []int32
	// outs[outOff[i]:outOff[i+1]] are the nodes that depend on node i, in
	// declaration order.
	outOff, outs []int32
	// level is the length of the longest path from a node without
	// dependencies to the node: an ancestor always has a smaller level.
	level []int32
	// rank is the number of tasks on the longest path from the node to a
	// node nothing depends on: the critical path still ahead of it.
	rank []int32
	// index finds a node by its full path; a group by its open node. It is
	// kept only when a caller needs it (restoring, Snapshot, Ledger).
	index map[string]int32
	// groups is true when the graph has an open node.
	groups bool
	// disc and fin number the nodes in the order a depth-first walk along
	// dependents, from each node without dependencies, discovers and
	// finishes them; low[i] is the least fin of node i and the nodes that
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

// Kinds of node.
const (
	kindFunc   uint8 = iota // a task with a Func
	kindExpand              // a task with an Expand
	kindOpen                // the start of a group (Task.Sub): the group's own node
	kindClose               // the end of a group, or of an Expand's scope; never seen by users
)

// gnode is what the graph knows of one node besides its edges.
type gnode struct {
	kind  uint8
	group int32 // the open node of the group the node is a member of; -1 if none
	pair  int32 // for an open node its close node and back; -1 otherwise
}

func (g *graph) depsOf(i int32) []int32 { return g.deps[g.depOff[i]:g.depOff[i+1]] }
func (g *graph) outsOf(i int32) []int32 { return g.outs[g.outOff[i]:g.outOff[i+1]] }

// build validates tasks and returns their graph, for a job's own tasks.
func build(tasks []Task) (*graph, error) { return buildScope(tasks, "", false) }

// buildScope validates tasks, whose full names start with prefix, and
// returns their graph. With closed, a last close node depends on every
// top-level task: the scope of an Expand ends when it does.
func buildScope(tasks []Task, prefix string, closed bool) (*graph, error) {
	var p problems
	// Sized for a list without groups, the common case; groups grow them.
	g := &graph{nodes: make([]gnode, 0, len(tasks)+1), names: make([]string, 0, len(tasks)+1), decls: make([]*Task, 0, len(tasks)+1)}
	// groupPrefix holds the path prefix of each group's members, by the
	// group's open node: "group/".
	var groupPrefix map[int32]string
	// Flatten groups, depth first, with a stack of its own: members follow
	// their open node, then comes the close node.
	type frame struct {
		tasks  []Task
		next   int
		prefix string
		open   int32
	}
	stack := []frame{{tasks: tasks, prefix: prefix, open: -1}}
	total := 0
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.next == len(top.tasks) {
			if top.open >= 0 {
				id := int32(len(g.nodes))
				g.nodes[top.open].pair = id
				open := g.nodes[top.open]
				g.nodes = append(g.nodes, gnode{kind: kindClose, group: open.group, pair: top.open})
				g.names = append(g.names, g.names[top.open])
				g.decls = append(g.decls, nil)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		i := top.next
		t := &top.tasks[i]
		top.next++
		if len(g.nodes) >= 1<<31-3 {
			p.add(ErrInvalidTask, "%d tasks is more than a job can hold", len(g.nodes))
			return nil, p.err()
		}
		id := int32(len(g.nodes))
		name := t.Name
		if top.prefix != "" {
			name = top.prefix + name
		}
		kind := kindFunc
		n := 0
		if t.Func != nil {
			n++
		}
		if t.Sub != nil {
			n++
			kind = kindOpen
		}
		if t.Expand != nil {
			n++
			kind = kindExpand
		}
		g.nodes = append(g.nodes, gnode{kind: kind, group: top.open, pair: -1})
		g.names = append(g.names, name)
		g.decls = append(g.decls, t)
		total += len(t.DependsOn)
		if t.Name == "" || n != 1 || t.Timeout < 0 || t.MaxRetries < NoRetries || t.Trigger >= numTriggers ||
			(kind == kindOpen && t.MaxRetries != 0) || strings.IndexByte(t.Name, '/') >= 0 {
			// Rare: the task's description for messages is made only then.
			checkTask(&p, t, kind, n, top.prefix, i)
		}
		if kind == kindOpen {
			g.groups = true
			if groupPrefix == nil {
				groupPrefix = make(map[int32]string)
			}
			groupPrefix[id] = name + "/"
			stack = append(stack, frame{tasks: t.Sub, prefix: groupPrefix[id], open: id})
		}
	}
	if closed {
		g.nodes = append(g.nodes, gnode{kind: kindClose, group: -1, pair: -1})
		g.names = append(g.names, strings.TrimSuffix(prefix, "/"))
		g.decls = append(g.decls, nil)
	}
	n := len(g.nodes)
	// One map operation per name: names are indexed without a check, the
	// later of two equal names winning, and only a list whose index ends
	// up short of its names has duplicates to find and report.
	index := make(map[string]int32, n)
	named := 0
	for i := range g.nodes {
		if g.nodes[i].kind == kindClose || g.decls[i].Name == "" {
			continue
		}
		index[g.names[i]] = int32(i)
		named++
	}
	if len(index) < named {
		clear(index)
		for i := range g.nodes {
			if g.nodes[i].kind == kindClose || g.decls[i].Name == "" {
				continue
			}
			name := g.names[i]
			if first, dup := index[name]; dup {
				p.add(ErrDuplicateTask, "task %s is declared twice (#%d and #%d); task names must be unique", quote(name), first, i)
				continue
			}
			index[name] = int32(i)
		}
	}

	// Resolve dependencies into the flat deps slice, sorted and without
	// duplicates per node. The name lookups, a cache miss each in a big
	// job, run on several goroutines; problems are then reported, and each
	// node's list compacted in place, in declaration order. Then come the
	// edges that groups add.
	g.depOff = make([]int32, n+1)
	g.deps = make([]int32, total)
	// prefixOf returns the prefix of node i's path: its dependencies are
	// named relative to it.
	prefixOf := func(i int) string {
		if grp := g.nodes[i].group; grp >= 0 {
			return groupPrefix[grp]
		}
		return prefix
	}
	resolve(g, prefixOf, index, g.deps)
	read, w := 0, 0
	for i := range n {
		start := w
		if t := g.decls[i]; t != nil {
			for _, d := range t.DependsOn {
				switch j := g.deps[read]; j {
				case depSelf:
					p.add(ErrCycle, "task %s depends on itself", quote(g.names[i]))
				case depUnknown:
					p.add(ErrMissingDependency, "task %s depends on %s, which is not declared", quote(g.names[i]), quote(prefixOf(i)+d))
				default:
					if g.groups && g.nodes[j].kind == kindOpen {
						j = g.nodes[j].pair
					}
					g.deps[w] = j
					w++
				}
				read++
			}
		}
		if mine := g.deps[start:w]; len(mine) > 1 {
			if !slices.IsSorted(mine) {
				slices.Sort(mine)
			}
			w = start + len(slices.Compact(mine))
		}
		g.depOff[i+1] = int32(w)
	}
	g.deps = g.deps[:w]
	if g.groups || closed {
		g.addGroupEdges()
	}

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

	// A topological order, and the levels on the way. Most lists declare
	// every task after its dependencies: their order is then one already,
	// checked in one pass over the edges (order stays nil). Otherwise,
	// Kahn's algorithm.
	g.level = make([]int32, n)
	var order []int32
	if !g.levelsInOrder() {
		clear(g.level)
		order = make([]int32, 0, n)
		pending := make([]int32, n)
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
	}
	if err := p.err(); err != nil {
		return nil, err
	}

	g.rank = make([]int32, n)
	for k := n - 1; k >= 0; k-- {
		i := int32(k)
		if order != nil {
			i = order[k]
		}
		r := int32(0)
		for _, o := range g.outsOf(i) {
			r = max(r, g.rank[o])
		}
		if k := g.nodes[i].kind; k == kindFunc || k == kindExpand {
			r++
		}
		g.rank[i] = r
	}
	if g.groups || closed {
		g.index = index
	}
	return g, nil
}

// levelsInOrder sets each node's level, the length of the longest path of
// dependencies to it, if every node comes after its dependencies, and
// reports whether they do. If not, the levels are partly set.
func (g *graph) levelsInOrder() bool {
	for i := range int32(len(g.nodes)) {
		l := int32(0)
		for _, d := range g.depsOf(i) {
			if d >= i {
				return false
			}
			l = max(l, g.level[d]+1)
		}
		g.level[i] = l
	}
	return true
}

// checkTask adds a problem for each thing wrong with task t, the i-th of
// its list, whose group's path is prefix: a kind of node declared by funcs
// of Func, Sub and Expand.
func checkTask(p *problems, t *Task, kind uint8, funcs int, prefix string, i int) {
	who := taskID(prefix+t.Name, i)
	if t.Name == "" && prefix != "" {
		who = fmt.Sprintf("#%d of group %s", i, quote(strings.TrimSuffix(prefix, "/")))
	}
	switch {
	case t.Name == "":
		p.add(ErrInvalidTask, "task %s has an empty name; every task needs a unique name", who)
	case strings.Contains(t.Name, "/"):
		p.add(ErrInvalidTask, "task %s has a '/' in its name; '/' is reserved for the paths of groups' tasks (\"group/child\")", who)
	}
	switch {
	case funcs == 0:
		p.add(ErrInvalidTask, "task %s has a nil Func", who)
	case funcs > 1:
		p.add(ErrInvalidTask, "task %s sets more than one of Func, Sub and Expand; set exactly one", who)
	}
	if t.Timeout < 0 {
		p.add(ErrInvalidTask, "task %s has a negative Timeout (%v); use 0 for no timeout", who, t.Timeout)
	}
	if t.MaxRetries < NoRetries {
		p.add(ErrInvalidTask, "task %s has MaxRetries %d; use a positive count, 0 for Options.MaxRetries or NoRetries (-1)", who, t.MaxRetries)
	}
	if t.Trigger >= numTriggers {
		p.add(ErrInvalidTask, "task %s has an unknown Trigger (%d); use one of AllSucceeded, NoneFailed, AllDone, AnyFailed, AnySucceeded", who, uint8(t.Trigger))
	}
	if kind == kindOpen && t.MaxRetries != 0 {
		p.add(ErrInvalidTask, "group %s has MaxRetries %d; a group is not retried: set MaxRetries on its tasks instead", who, t.MaxRetries)
	}
}

// addGroupEdges adds the edges of groups to the resolved dependencies:
// each member depends on its group's open node, and each close node on the
// members of its group (on its open node, for a group without tasks; or,
// for a scope's close node, on every top-level node). It rebuilds deps
// once, in order.
func (g *graph) addGroupEdges() {
	n := int32(len(g.nodes))
	// Members of each close node, found in one pass.
	closeOf := func(m int32) int32 { // the close node m's membership feeds
		if grp := g.nodes[m].group; grp >= 0 {
			return g.nodes[grp].pair
		}
		if last := n - 1; g.nodes[last].kind == kindClose && g.nodes[last].pair < 0 {
			return last
		}
		return -1
	}
	members := make([][]int32, 0)
	memberIdx := make(map[int32]int)
	for m := range n {
		nd := g.nodes[m]
		if nd.kind == kindClose {
			continue
		}
		c := closeOf(m)
		if c < 0 {
			continue
		}
		rep := m
		if nd.kind == kindOpen {
			rep = nd.pair
		}
		k, ok := memberIdx[c]
		if !ok {
			k = len(members)
			memberIdx[c] = k
			members = append(members, nil)
		}
		members[k] = append(members[k], rep)
	}
	deps := make([]int32, 0, len(g.deps)+2*int(n))
	off := make([]int32, n+1)
	for i := range n {
		start := len(deps)
		deps = append(deps, g.depsOf(i)...)
		nd := g.nodes[i]
		switch {
		case nd.kind == kindClose:
			if k, ok := memberIdx[i]; ok {
				deps = append(deps, members[k]...)
			} else if nd.pair >= 0 {
				deps = append(deps, nd.pair) // a group without tasks ends once it starts
			}
		case nd.group >= 0:
			deps = append(deps, nd.group)
		}
		mine := deps[start:]
		slices.Sort(mine)
		deps = deps[:start+len(slices.Compact(mine))]
		off[i+1] = int32(len(deps))
	}
	g.deps, g.depOff = deps, off
}

// Markers resolve leaves in place of a task number.
const (
	depUnknown = -1 // the name is not declared
	depSelf    = -2 // the task names itself
)

// parallelResolve is the number of dependencies above which resolve uses
// more than one goroutine.
const parallelResolve = 1 << 13

// resolve writes the node number of every dependency of g's nodes, in
// order, into out, or a marker. A dependency's name is relative to its
// node's group (prefixOf). Large jobs are split among GOMAXPROCS
// goroutines, which only read the graph and the index; resolve waits for
// them.
func resolve(g *graph, prefixOf func(int) string, index map[string]int32, out []int32) {
	n := len(g.decls)
	deps := func(i int) []string {
		if g.decls[i] == nil {
			return nil
		}
		return g.decls[i].DependsOn
	}
	chunk := func(lo, hi, at int) {
		for i := lo; i < hi; i++ {
			ds := deps(i)
			if len(ds) == 0 {
				continue
			}
			prefix := prefixOf(i)
			for _, d := range ds {
				full := d
				if prefix != "" {
					full = prefix + d
				}
				j, ok := index[full]
				switch {
				case full == g.names[i] && g.decls[i].Name != "":
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
		chunk(0, n, 0)
		return
	}
	var wg sync.WaitGroup
	lo, at := 0, 0
	for k := range parts {
		// Split by dependencies, not tasks: one task may have them all.
		hi, end := lo, at
		for hi < n && (k == parts-1 || end-at < len(out)/parts) {
			end += len(deps(hi))
			hi++
		}
		from, to, first := lo, hi, at // lo and at change below
		wg.Go(func() { chunk(from, to, first) })
		lo, at = hi, end
	}
	wg.Wait()
}
