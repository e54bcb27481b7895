package dag

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sort"
	"sync"
)

// entry is one write of a key: the writer (sc nil for the initial
// context) and the value.
type entry struct {
	sc   *scope
	task int32
	val  any
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
// writer depends on the writer before it. The writers a task depends on are
// therefore a prefix of each list, and the value a task sees is the last
// write of that prefix: the descendant's.
//
// That makes a read a map lookup and, in the common case of a key written
// once, one check that the writer is an ancestor (a binary search of the
// reader's direct dependencies, or the graph's labels), without ever
// copying the context per task. Keys are spread over shards, each with its
// own lock, so that readers on different cores do not contend. Writes come
// from the scheduler, under the job's lock, so they never race each other;
// the shard locks keep them apart from readers.
type store struct {
	seed   maphash.Seed
	shards [storeShards]shard
	// sizeHint sizes a shard's map when its first key is written.
	sizeHint int

	viewMu sync.Mutex
	views  map[reader]*snapshot // guarded by viewMu: built for Len and All
}

// reader names a task of a scope.
type reader struct {
	sc   *scope
	task int32
}

func newStore(tasks int, initial map[string]any) *store {
	s := &store{seed: maphash.MakeSeed(), sizeHint: tasks / storeShards}
	for k, v := range initial {
		sh := s.shard(k)
		if sh.keys == nil {
			sh.keys = make(map[string]chain)
		}
		sh.keys[k] = chain{first: entry{task: -1, val: v}}
	}
	return s
}

func (s *store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%storeShards]
}

// get returns the value of key that task t of scope sc sees.
func (s *store) get(sc *scope, t int32, key string) (any, bool) {
	sh := s.shard(key)
	sh.mu.RLock()
	c, ok := sh.keys[key]
	var e *entry
	if ok {
		e = visible(sc, t, &c)
	}
	sh.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	return e.val, true
}

// visible returns the last write in c that task t of scope sc depends on,
// or nil. The writes t depends on are a prefix of c: the search asks about
// O(log len(c)) writers, one for a key written once.
func visible(sc *scope, t int32, c *chain) *entry {
	if len(c.more) == 0 {
		// A key written once, the common case: one question, no search.
		if e := &c.first; e.sc == nil || reach(sc, t, e.sc, e.task) {
			return e
		}
		return nil
	}
	n := c.len()
	i := sort.Search(n, func(i int) bool {
		e := c.at(i)
		return e.sc != nil && !reach(sc, t, e.sc, e.task)
	}) - 1
	if i < 0 {
		return nil
	}
	return c.at(i)
}

// kv is one key of a task's output, copied.
type kv struct {
	key string
	val any
}

// appendKVs appends the entries of m to dst, in no particular order.
func appendKVs(dst []kv, m map[string]any) []kv {
	dst = slices.Grow(dst, len(m))
	for k, v := range m {
		dst = append(dst, kv{k, v})
	}
	return dst
}

// put records the output of task t of scope sc, all of it or, on a
// conflict, none. The caller holds the job's lock, so puts never run
// concurrently: a put that meets a conflict can take back the writes it
// made, since nothing was written after them and no reader sees them (a
// task that depends on t has not started; any other task ignores t's
// writes).
//
// On a conflict, the job stops, and what it reports must not depend on
// which of the two writers finished first: the error blames the writer
// declared later, and the key keeps the value of the writer declared first.
func (s *store) put(sc *scope, t int32, out []kv) error {
	for i, o := range out {
		sh := s.shard(o.key)
		e := entry{sc: sc, task: t, val: o.val}
		sh.mu.Lock()
		c, ok := sh.keys[o.key]
		switch {
		case !ok:
			if sh.keys == nil {
				// Size the shard for one key per task: jobs that pass
				// values mostly write about that many, and the map then
				// never grows while the job runs.
				sh.keys = make(map[string]chain, s.sizeHint)
			}
			sh.keys[o.key] = chain{first: e}
		case c.at(c.len()-1).sc != nil && !reach(sc, t, c.at(c.len()-1).sc, c.at(c.len()-1).task):
			// The last writer finished before t, and t does not depend
			// on it: the two were unordered.
			sh.mu.Unlock()
			s.undo(out[:i])
			return s.conflict(sc, t, out)
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

// A conflictError is the error of two unordered writers of one key.
type conflictError struct {
	key           string
	first, second string // the writers, in declaration order
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("dag: tasks %s and %s both write key %q and neither depends on the other; make one depend on the other or use different keys",
		quote(e.first), quote(e.second), e.key)
}

func (e *conflictError) Unwrap() error { return ErrConflict }

// conflict builds the error for task t's conflicting output, naming the
// first conflicting key in sorted order so the message is stable, and
// returns the writer it blames: the one declared later. If that is the
// writer already in the store, the key's value becomes t's, so that the
// key keeps the value of the writer declared first.
func (s *store) conflict(sc *scope, t int32, out []kv) error {
	slices.SortFunc(out, func(a, b kv) int { return cmp.Compare(a.key, b.key) })
	for _, o := range out {
		sh := s.shard(o.key)
		sh.mu.Lock()
		c, ok := sh.keys[o.key]
		if !ok {
			sh.mu.Unlock()
			continue
		}
		last := c.at(c.len() - 1)
		if last.sc == nil || reach(sc, t, last.sc, last.task) {
			sh.mu.Unlock()
			continue
		}
		err := &conflictError{key: o.key}
		blame := reader{sc, t}
		if declaredBefore(sc, t, last.sc, last.task) {
			blame = reader{last.sc, last.task}
			err.first, err.second = sc.g.names[t], last.sc.g.names[last.task]
			last.val = o.val
			sh.keys[o.key] = c
		} else {
			err.first, err.second = last.sc.g.names[last.task], sc.g.names[t]
		}
		sh.mu.Unlock()
		return &blamedError{err: err, blame: blame}
	}
	panic("dag: conflict not found") // unreachable: put found one
}

// blamedError carries a conflict to the scheduler with the task to blame.
type blamedError struct {
	err   *conflictError
	blame reader
}

func (e *blamedError) Error() string { return e.err.Error() }
func (e *blamedError) Unwrap() error { return e.err }

// view returns the snapshot of everything task t of scope sc sees,
// building it once. It visits every key of the job: Len and All cost what
// the context holds.
func (s *store) view(sc *scope, t int32) *snapshot {
	r := reader{sc, t}
	s.viewMu.Lock()
	snap, ok := s.views[r]
	s.viewMu.Unlock()
	if ok {
		return snap
	}
	snap = &snapshot{m: make(map[string]any)}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, c := range sh.keys {
			if e := visible(sc, t, &c); e != nil {
				snap.m[k] = e.val
			}
		}
		sh.mu.RUnlock()
	}
	snap.keys = slices.Sorted(maps.Keys(snap.m))
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if s.views == nil {
		s.views = make(map[reader]*snapshot)
	}
	if old, ok := s.views[r]; ok {
		return old
	}
	s.views[r] = snap
	return snap
}

// writerOf returns the name of a task that wrote key, the last one; "" if
// none did.
func (s *store) writerOf(key string) string {
	sh := s.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	c, ok := sh.keys[key]
	if !ok {
		return ""
	}
	for i := c.len() - 1; i >= 0; i-- {
		if e := c.at(i); e.sc != nil {
			return e.sc.g.names[e.task]
		}
	}
	return ""
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
