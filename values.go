package dag

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
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
// map lookup plus a check that the reader depends on the task that wrote
// key: a binary search of its direct dependencies, or labels the job makes
// once, in time linear in its tasks and dependencies, the first time a task
// reads what an indirect dependency wrote. The size of the job does not
// matter: reading from a task 100,000 tasks up a chain costs the same as
// from one 1,000 up (BenchmarkDependsOnDeep). Only when paths of the graph
// cross so that the labels leave the answer in doubt does the check walk up
// from the reader, through tasks the labels cannot rule out.
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

// chain is the list of writes of one key, in the order they were made. It
// is a value, so that a key written once, the common case, costs no
// allocation of its own.
type chain struct {
	first entry
	more  []entry
}

func (c *chain) len() int { return 1 + len(c.more) }

func (c *chain) at(i int) *entry {
	if i == 0 {
		return &c.first
	}
	return &c.more[i-1]
}

// storeShards is the number of independently locked parts of a store:
// enough that workers reading and writing different keys rarely meet.
const storeShards = 32

// shard is one part of a store, padded to its own cache lines.
type shard struct {
	mu   sync.RWMutex
	keys map[string]chain // guarded by mu
	_    [64 - 24 - 8]byte
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
// ever copying the context per task. Keys are spread over shards, each
// with its own lock, so that readers on different cores do not contend.
// Writes come from finish, under the job's lock, so they never race each
// other; the shard locks keep them apart from readers.
type store struct {
	g      *graph
	seed   maphash.Seed
	shards [storeShards]shard

	viewMu sync.Mutex
	views  map[int32]*snapshot // guarded by viewMu: built for Len and All
}

func newStore(g *graph, initial map[string]any) *store {
	s := &store{g: g, seed: maphash.MakeSeed()}
	for k, v := range initial {
		sh := s.shard(k)
		if sh.keys == nil {
			sh.keys = make(map[string]chain)
		}
		sh.keys[k] = chain{first: entry{task: -1, level: -1, val: v}}
	}
	return s
}

func (s *store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%storeShards]
}

// get returns the value of key that task t sees.
func (s *store) get(t int32, key string) (any, bool) {
	sh := s.shard(key)
	sh.mu.RLock()
	c, ok := sh.keys[key]
	var e *entry
	if ok {
		e = s.visible(t, &c)
	}
	sh.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	return e.val, true
}

// visible returns the last write in c that task t depends on, or nil.
func (s *store) visible(t int32, c *chain) *entry {
	lvl := s.g.level[t]
	// Writers t depends on have lower levels than t; levels rise along c.
	i := sort.Search(c.len(), func(i int) bool { return c.at(i).level >= lvl }) - 1
	for ; i >= 0; i-- {
		if e := c.at(i); e.task < 0 || s.g.dependsOn(t, e.task) {
			return e
		}
	}
	return nil
}

// kv is one key of a task's output, copied.
type kv struct {
	key string
	val any
}

// put records the output of task t, all of it or, on a conflict, none.
// The caller holds the job's lock, so puts never run concurrently: a put
// that meets a conflict can take back the writes it made, since nothing
// was written after them and no reader sees them (a task that depends on t
// has not started; any other task ignores t's writes).
func (s *store) put(t int32, out []kv) error {
	lvl := s.g.level[t]
	for i, o := range out {
		sh := s.shard(o.key)
		e := entry{task: t, level: lvl, val: o.val}
		sh.mu.Lock()
		c, ok := sh.keys[o.key]
		switch {
		case !ok:
			if sh.keys == nil {
				// Size the shard for one key per task: jobs that pass
				// values mostly write about that many, and the map then
				// never grows while the job runs.
				sh.keys = make(map[string]chain, len(s.g.names)/storeShards)
			}
			sh.keys[o.key] = chain{first: e}
		case c.at(c.len()-1).task >= 0 && !s.g.dependsOn(t, c.at(c.len()-1).task):
			// The last writer finished before t, and t does not depend
			// on it: the two were unordered.
			sh.mu.Unlock()
			s.undo(out[:i])
			return s.conflict(t, out)
		default:
			c.more = append(c.more, e)
			sh.keys[o.key] = c
		}
		sh.mu.Unlock()
	}
	return nil
}

// undo takes back the writes of out, the last of their keys.
func (s *store) undo(out []kv) {
	for _, o := range out {
		sh := s.shard(o.key)
		sh.mu.Lock()
		if c := sh.keys[o.key]; len(c.more) == 0 {
			delete(sh.keys, o.key)
		} else {
			c.more[len(c.more)-1] = entry{}
			c.more = c.more[:len(c.more)-1]
			sh.keys[o.key] = c
		}
		sh.mu.Unlock()
	}
}

// conflict builds the error for task t's conflicting output, naming the
// first conflicting key in sorted order so the message is stable.
func (s *store) conflict(t int32, out []kv) error {
	slices.SortFunc(out, func(a, b kv) int { return cmp.Compare(a.key, b.key) })
	for _, o := range out {
		sh := s.shard(o.key)
		sh.mu.RLock()
		c, ok := sh.keys[o.key]
		sh.mu.RUnlock()
		if !ok {
			continue
		}
		if last := c.at(c.len() - 1).task; last >= 0 && !s.g.dependsOn(t, last) {
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
	s.viewMu.Lock()
	snap, ok := s.views[t]
	s.viewMu.Unlock()
	if ok {
		return snap
	}
	snap = &snapshot{m: make(map[string]any)}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, c := range sh.keys {
			if e := s.visible(t, &c); e != nil {
				snap.m[k] = e.val
			}
		}
		sh.mu.RUnlock()
	}
	snap.keys = slices.Sorted(maps.Keys(snap.m))
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
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
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].keys)
	}
	m := make(map[string]any, n)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, c := range sh.keys {
			m[k] = c.at(c.len() - 1).val
		}
		sh.mu.RUnlock()
	}
	return m
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
