package dag

import (
	"fmt"
	"sync"
)

// A Ledger is the job context of a job that an executor other than [Run]
// runs, such as the temporal module, which runs tasks as activities of a
// durable workflow. It keeps the core's rules, so that they are shared
// rather than copied: each task sees exactly the initial context plus its
// ancestors' outputs (groups and Expands included), and two tasks that
// write a key without one depending on the other are an [ErrConflict].
//
// The executor decides when tasks run (with [Trigger.Decide] for their
// rules) and tells the Ledger what they produced. A Ledger is safe for
// concurrent use and starts no goroutine; its answers depend only on the
// calls made, in the order made, never on time, so a deterministic
// executor stays deterministic.
type Ledger struct {
	mu     sync.Mutex
	store  *store
	tasks  map[string]ledgerTask // by full name
	gather map[string]*ledgerMap // Maps whose tasks have not all completed, by name
}

type ledgerTask struct {
	sc      *scope
	local   int32
	private bool // a Map's task: its output waits for the Map
	collect func([]map[string]any) (map[string]any, error)
}

// ledgerMap is a Map waiting for its tasks' outputs.
type ledgerMap struct {
	name string
	outs []map[string]any
	left int
}

// NewLedger validates tasks, as Run does, and returns the job context of a
// job of them with the initial context (copied).
func NewLedger(tasks []Task, initial map[string]any) (*Ledger, error) {
	g, err := build(tasks)
	if err != nil {
		return nil, err
	}
	l := &Ledger{store: newStore(len(g.nodes), initial), tasks: make(map[string]ledgerTask, len(g.nodes))}
	l.add(&scope{g: g, owner: -1}, nil)
	return l, nil
}

// add indexes the tasks of scope sc; m is the Map that owns it, if any.
func (l *Ledger) add(sc *scope, m *ledgerMap) {
	for i := range sc.g.nodes {
		gn := &sc.g.nodes[i]
		if gn.kind == kindClose {
			continue
		}
		lt := ledgerTask{sc: sc, local: int32(i), collect: sc.g.decls[i].collect}
		if m != nil && gn.group < 0 {
			lt.private = true
			m.left++
		}
		l.tasks[sc.g.names[i]] = lt
	}
	sc.g.decls = nil
}

// lookup finds a task by its full name.
func (l *Ledger) lookup(task string) (ledgerTask, error) {
	lt, ok := l.tasks[task]
	if !ok {
		return lt, fmt.Errorf("dag: the ledger has no task %s; name tasks by their full path (\"group/child\"), and add an Expand's tasks with Ledger.Expand first", quote(task))
	}
	return lt, nil
}

// Values returns what task (its full name) sees: what the core's Values
// would hold for it when it runs, given the outputs put so far. Call it
// once every task it depends on has ended.
func (l *Ledger) Values(task string) (Values, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lt, err := l.lookup(task)
	if err != nil {
		return Values{}, err
	}
	return Values{s: l.store, sc: lt.sc, t: lt.local}, nil
}

// Put records the output of task (its full name), which completed. It
// fails with an error matching ErrConflict, naming the key and both tasks,
// when a task that the task does not depend on (nor the other way round)
// wrote one of its keys; nothing of the output is then recorded. The
// output of a Map's task is held until every task of the Map is put; the
// Map's list is then written as the Map task's output.
func (l *Ledger) Put(task string, out map[string]any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	lt, err := l.lookup(task)
	if err != nil {
		return err
	}
	if lt.private {
		owner := lt.sc.parent.g.names[lt.sc.owner]
		m := l.gather[owner]
		if m == nil || m.outs[lt.local] != nil {
			return fmt.Errorf("dag: the ledger has task %s's output already; put each task's output once", quote(task))
		}
		m.outs[lt.local] = copyMap(out)
		if m.outs[lt.local] == nil {
			m.outs[lt.local] = map[string]any{}
		}
		if m.left--; m.left > 0 {
			return nil
		}
		delete(l.gather, owner)
		olt := l.tasks[owner]
		res, err := collect(olt.collect, m.outs)
		if err != nil {
			return err
		}
		return l.put(olt, res)
	}
	return l.put(lt, out)
}

func (l *Ledger) put(lt ledgerTask, out map[string]any) error {
	if err := l.store.put(lt.sc, lt.local, appendKVs(nil, out)); err != nil {
		if b, ok := err.(*blamedError); ok {
			return b.err
		}
		return err
	}
	return nil
}

// Expand adds the tasks that the Expand of task (its full name) returned,
// named "task/child", validating them as Run does: an error joins every
// problem, and nothing is added.
func (l *Ledger) Expand(task string, children []Task) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	lt, err := l.lookup(task)
	if err != nil {
		return err
	}
	g, err := buildScope(children, task+"/", true)
	if err != nil {
		return err
	}
	sc := &scope{g: g, parent: lt.sc, owner: lt.local, depth: lt.sc.depth + 1}
	var m *ledgerMap
	if lt.collect != nil {
		m = &ledgerMap{name: task}
		if l.gather == nil {
			l.gather = make(map[string]*ledgerMap)
		}
		l.gather[task] = m
	}
	l.add(sc, m)
	if m != nil {
		m.outs = make([]map[string]any, m.left)
		if m.left == 0 {
			delete(l.gather, task)
			res, err := collect(lt.collect, nil)
			if err != nil {
				return err
			}
			return l.put(lt, res)
		}
	}
	return nil
}

// Context returns the job context as it is now: the initial context plus
// every output put, the descendant's value for a key written by a task and
// one of its ancestors.
func (l *Ledger) Context() map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.store.final()
}
