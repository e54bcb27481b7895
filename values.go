package dag

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sort"
	"sync"
)

// ErrMissingKey is returned by [Lookup] for a key that is not in the context.
var ErrMissingKey = errors.New("dag: key not in the job context")

// ErrConflict reports two tasks that do not depend on each other, directly
// or not, writing the same key. Their order is a race, so dag fails the job
// rather than pick a winner; the error names the key and both tasks. Make
// one task depend on the other, or use different keys.
var ErrConflict = errors.New("dag: conflicting writes to a job context key")

// Values is the read-only view of the job context that one task sees: the
// initial context plus the outputs of every task it depends on, directly or
// not. It stays valid and unchanged after the task ends, and is safe for
// concurrent use.
//
// The zero Values is empty and ready to use.
type Values struct {
	s    *store    // the job's store; nil for ValuesOf and the zero Values
	t    int32     // the reading task, with s
	snap *snapshot // the values, for ValuesOf
}

// snapshot is a materialised view: the keys in order and their values.
type snapshot struct {
	keys []string
	m    map[string]any
}

// ValuesOf returns a Values holding a copy of m, to call a [TaskFunc] in a
// test.
func ValuesOf(m map[string]any) Values {
	m = maps.Clone(m)
	if m == nil {
		m = map[string]any{}
	}
	return Values{snap: &snapshot{keys: slices.Sorted(maps.Keys(m)), m: m}}
}

// Get returns the value of key and whether the task can see it. It costs a
// map lookup plus, when several tasks wrote key, a check of which of them the
// reader depends on; the size of the job does not matter.
func (v Values) Get(key string) (any, bool) {
	if v.s != nil {
		return v.s.get(v.t, key)
	}
	if v.snap != nil {
		val, ok := v.snap.m[key]
		return val, ok
	}
	return nil, false
}

// Len returns the number of keys the task can see.
func (v Values) Len() int {
	return len(v.snapshot().keys)
}

// All yields every key the task can see and its value, sorted by key.
func (v Values) All() iter.Seq2[string, any] {
	return func(yield func(string, any) bool) {
		s := v.snapshot()
		for _, k := range s.keys {
			if !yield(k, s.m[k]) {
				return
			}
		}
	}
}

func (v Values) snapshot() *snapshot {
	switch {
	case v.s != nil:
		return v.s.view(v.t)
	case v.snap != nil:
		return v.snap
	}
	return &snapshot{}
}

// String formats the values as a sorted map, for debugging.
func (v Values) String() string {
	return fmt.Sprint(v.snapshot().m)
}

// Lookup returns the value of key as a T. It fails with an error matching
// [ErrMissingKey] when the key is absent, and with an error naming the key,
// the wanted type and the found type when the value is not a T. A nil value
// is a T only when T is an interface type.
func Lookup[T any](v Values, key string) (T, error) {
	var zero T
	raw, ok := v.Get(key)
	if !ok {
		return zero, &wrapError{msg: fmt.Sprintf("dag: key %q is not in the job context", key), err: ErrMissingKey}
	}
	if t, ok := raw.(T); ok {
		return t, nil
	}
	if raw == nil && any(zero) == nil { // T is an interface type
		return zero, nil
	}
	want := fmt.Sprintf("%T", (*T)(nil))[1:]
	return zero, fmt.Errorf("dag: key %q holds a %T, not a %s", key, raw, want)
}

// entry is one write of a key: the writer (-1 for the initial context), its
// level in the graph, and the value.
type entry struct {
	task  int32
	level int32
	val   any
}

// store is the job context. Every key has the list of its writes in the
// order they were made. Two tasks that do not depend on each other may not
// both write a key (that is an ErrConflict), so each list is a chain: every
// writer depends on the writer before it, and levels rise along the list.
// The writers a task depends on are therefore a prefix of each list, and
// the value a task sees is the last write of that prefix: the descendant's.
//
// That makes a read a map lookup, a binary search by level and, in the
// common case, one check that the writer is a direct dependency, without
// ever copying the context per task.
type store struct {
	g  *graph
	mu sync.RWMutex
	// keys holds every write; guarded by mu.
	keys map[string][]entry
	// views caches the snapshots built for Len and All; guarded by mu.
	views map[int32]*snapshot
}

func newStore(g *graph, initial map[string]any) *store {
	s := &store{g: g, keys: make(map[string][]entry, len(initial))}
	for k, v := range initial {
		s.keys[k] = []entry{{task: -1, level: -1, val: v}}
	}
	return s
}

// get returns the value of key that task t sees.
func (s *store) get(t int32, key string) (any, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.visible(t, s.keys[key])
	return e.val, ok
}

// visible returns the last write in chain that task t depends on.
func (s *store) visible(t int32, chain []entry) (entry, bool) {
	lvl := s.g.level[t]
	// Writers t depends on have lower levels than t.
	i := sort.Search(len(chain), func(i int) bool { return chain[i].level >= lvl }) - 1
	for ; i >= 0; i-- {
		if chain[i].task < 0 || s.g.dependsOn(t, chain[i].task) {
			return chain[i], true
		}
	}
	return entry{}, false
}

// kv is one key of a task's output, copied.
type kv struct {
	key string
	val any
}

// put records the output of task t, all of it or, on a conflict, none.
func (s *store) put(t int32, out []kv) error {
	if len(out) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range out {
		chain := s.keys[o.key]
		if len(chain) == 0 {
			continue
		}
		// The last writer finished before t; unless t depends on it, the
		// two were unordered.
		if last := chain[len(chain)-1].task; last >= 0 && !s.g.dependsOn(t, last) {
			return s.conflict(t, out)
		}
	}
	lvl := s.g.level[t]
	for _, o := range out {
		s.keys[o.key] = append(s.keys[o.key], entry{task: t, level: lvl, val: o.val})
	}
	return nil
}

// conflict builds the error for task t's conflicting output, naming the
// first conflicting key in sorted order so the message is stable.
func (s *store) conflict(t int32, out []kv) error {
	slices.SortFunc(out, func(a, b kv) int { return cmp.Compare(a.key, b.key) })
	for _, o := range out {
		chain := s.keys[o.key]
		if len(chain) == 0 {
			continue
		}
		if last := chain[len(chain)-1].task; last >= 0 && !s.g.dependsOn(t, last) {
			a, b := last, t
			if a > b {
				a, b = b, a
			}
			return &wrapError{
				msg: fmt.Sprintf("dag: tasks %s and %s both write key %q and neither depends on the other; make one depend on the other or use different keys",
					quote(s.g.names[a]), quote(s.g.names[b]), o.key),
				err: ErrConflict,
			}
		}
	}
	panic("dag: conflict not found") // unreachable: put found one
}

// view returns the snapshot of everything task t sees, building it once.
// It visits every key of the job: Len and All cost what the context holds.
func (s *store) view(t int32) *snapshot {
	s.mu.RLock()
	snap, ok := s.views[t]
	if !ok {
		snap = &snapshot{m: make(map[string]any)}
		for k, chain := range s.keys {
			if e, ok := s.visible(t, chain); ok {
				snap.m[k] = e.val
			}
		}
		snap.keys = slices.Sorted(maps.Keys(snap.m))
	}
	s.mu.RUnlock()
	if ok {
		return snap
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.views == nil {
		s.views = make(map[int32]*snapshot)
	}
	if old, ok := s.views[t]; ok {
		return old
	}
	s.views[t] = snap
	return snap
}

// final returns the job's context: for every key, its last write.
func (s *store) final() map[string]any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[string]any, len(s.keys))
	for k, chain := range s.keys {
		m[k] = chain[len(chain)-1].val
	}
	return m
}

// dependsOn reports whether task t depends on task a, directly or not.
//
// Levels answer most questions at once: an ancestor has a lower level, and
// an ancestor one level down must be a direct dependency. Direct
// dependencies are sorted, so checking them is a binary search. Otherwise a
// walk up from t visits only tasks above a's level.
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
	seen := map[int32]bool{t: true}
	stack := []int32{t}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.depsOf(x) {
			if d == a {
				return true
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
