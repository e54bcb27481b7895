package dagtemporal

// This file is a temporary stand-in for the core's dag.Ledger, with the same
// API, until the core exports it. It is deleted once it does.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/dagrun/dag"
)

// Ledger is the job context of a job whose tasks another executor runs.
type Ledger struct {
	names   []string         // full path names, in the order they were added
	index   map[string]int   // full path name -> node
	anc     [][]bool         // anc[i][j]: node j's output is visible to node i
	sub     map[string][]int // group -> its nodes, recursively
	parent  []int            // node -> its group's node, -1 at the top
	expand  map[string]bool  // Expand tasks not expanded yet
	initial map[string]any
	writes  map[string][]write
}

type write struct {
	node int
	val  any
}

func stubFunc(context.Context, dag.Values) (map[string]any, error) { return nil, nil }

// validateLevel validates one level of tasks with dag.Validate, standing a
// Func in for Sub and Expand, which the core does not validate yet.
func validateLevel(tasks []dag.Task) error {
	flat := make([]dag.Task, len(tasks))
	for i, t := range tasks {
		flat[i] = t
		if t.Sub != nil || t.Expand != nil {
			flat[i].Sub, flat[i].Expand, flat[i].Func = nil, nil, stubFunc
		}
	}
	return dag.Validate(flat)
}

// validateTree validates tasks and their Subs, level by level.
func validateTree(tasks []dag.Task) error {
	if err := validateLevel(tasks); err != nil {
		return err
	}
	for _, t := range tasks {
		if t.Sub != nil {
			if err := validateTree(t.Sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// NewLedger validates tasks and returns the job context of a job of them
// that another executor runs, with initial context.
func NewLedger(tasks []dag.Task, initial map[string]any) (*Ledger, error) {
	l := &Ledger{index: map[string]int{}, sub: map[string][]int{}, expand: map[string]bool{}, initial: maps.Clone(initial), writes: map[string][]write{}}
	if err := validateTree(tasks); err != nil {
		return nil, err
	}
	l.add("", tasks, nil, -1)
	return l, nil
}

// add adds a level of tasks under prefix; base is what every task of the
// level sees (its group's ancestors).
func (l *Ledger) add(prefix string, tasks []dag.Task, base []int, parent int) {
	first := len(l.names)
	for _, t := range tasks {
		l.index[prefix+t.Name] = len(l.names)
		l.names = append(l.names, prefix+t.Name)
		l.parent = append(l.parent, parent)
	}
	// Sized when the level's nodes are known; grown for later levels.
	for i := range l.anc {
		l.anc[i] = append(l.anc[i], make([]bool, len(l.names)-len(l.anc[i]))...)
	}
	for range tasks {
		l.anc = append(l.anc, make([]bool, len(l.names)))
	}
	// Levels are validated: a topological pass marks ancestors.
	done := make([]bool, len(tasks))
	for left := len(tasks); left > 0; {
		for i, t := range tasks {
			if done[i] || slices.ContainsFunc(t.DependsOn, func(d string) bool { return !done[l.index[prefix+d]-first] }) {
				continue
			}
			me := first + i
			for _, b := range base {
				l.anc[me][b] = true
			}
			for _, d := range t.DependsOn {
				dn := l.index[prefix+d]
				l.see(me, dn)
			}
			done[i] = true
			left--
			name := prefix + t.Name
			switch {
			case t.Sub != nil:
				from := len(l.names)
				l.add(name+"/", t.Sub, l.ancestors(me), me)
				for n := from; n < len(l.names); n++ {
					l.sub[name] = append(l.sub[name], n)
				}
			case t.Expand != nil:
				l.expand[name] = true
			}
		}
	}
}

// see makes node d, its ancestors and its children visible to node me.
func (l *Ledger) see(me, d int) {
	l.anc[me][d] = true
	for j, ok := range l.anc[d] {
		if ok {
			l.anc[me][j] = true
		}
	}
	for _, c := range l.sub[l.names[d]] {
		l.anc[me][c] = true
	}
}

func (l *Ledger) ancestors(me int) []int {
	var out []int
	for j, ok := range l.anc[me] {
		if ok {
			out = append(out, j)
		}
	}
	return out
}

// Values returns exactly what the core's Values would hold for task (full
// path name).
func (l *Ledger) Values(task string) dag.Values {
	me, ok := l.index[task]
	m := maps.Clone(l.initial)
	if m == nil {
		m = map[string]any{}
	}
	if !ok {
		return dag.ValuesOf(m)
	}
	for k, ws := range l.writes {
		for i := len(ws) - 1; i >= 0; i-- {
			if l.anc[me][ws[i].node] {
				m[k] = ws[i].val
				break
			}
		}
	}
	return dag.ValuesOf(m)
}

// Put records a completed task's output; an error matching dag.ErrConflict
// on unordered writers.
func (l *Ledger) Put(task string, out map[string]any) error {
	me, ok := l.index[task]
	if !ok {
		return fmt.Errorf("dag: task %q is not in the job", task)
	}
	for _, k := range slices.Sorted(maps.Keys(out)) {
		ws := l.writes[k]
		if len(ws) == 0 {
			continue
		}
		if last := ws[len(ws)-1].node; !l.anc[me][last] {
			a, b := l.names[min(last, me)], l.names[max(last, me)]
			return &conflictError{fmt.Sprintf("dag: tasks %q and %q both write key %q and neither depends on the other; make one depend on the other or use different keys", a, b, k)}
		}
	}
	for k, v := range out {
		l.writes[k] = append(l.writes[k], write{me, v})
	}
	return nil
}

type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }
func (e *conflictError) Unwrap() error { return dag.ErrConflict }

// Expand adds an Expand task's children, named "task/child".
func (l *Ledger) Expand(task string, children []dag.Task) error {
	if !l.expand[task] {
		return fmt.Errorf("dag: task %q is not an Expand task waiting for its children", task)
	}
	me := l.index[task]
	from := len(l.names)
	if err := validateTree(children); err != nil {
		return err
	}
	l.add(task+"/", children, l.ancestors(me), me)
	delete(l.expand, task)
	for g := me; g >= 0; g = l.parent[g] {
		for n := from; n < len(l.names); n++ {
			l.sub[l.names[g]] = append(l.sub[l.names[g]], n)
		}
	}
	// Tasks that already see the group see its new children too.
	for m := range from {
		if l.anc[m][me] {
			for n := from; n < len(l.names); n++ {
				l.anc[m][n] = true
			}
		}
	}
	return nil
}

// Context returns the final job context.
func (l *Ledger) Context() map[string]any {
	m := maps.Clone(l.initial)
	if m == nil {
		m = map[string]any{}
	}
	for k, ws := range l.writes {
		m[k] = ws[len(ws)-1].val
	}
	return m
}
