package dag

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// record is one write of a key: the writer (sc nil for the initial context)
// and the value. A record never changes once a reader can see it.
type record struct {
	key  string
	val  any
	sc   *scope
	task int32
	// chain is every write of the key up to this one, oldest first, when
	// there is more than one; nil for a key written once, the common case.
	// Records of one key share its array: a write appends past the end of
	// every chain published before it.
	chain []*record
}

// slot is one place of a table: the hash of its key (0 while empty) and the
// key's last write. A writer sets rec before hash, so a reader that sees a
// slot's hash sees its record.
type slot struct {
	hash atomic.Uint64
	rec  atomic.Pointer[record]
}

// table is an open-addressing hash table with linear probing. Its slots
// array never moves: the store replaces the whole table to grow it.
type table struct {
	slots []slot // a power of two of them
	mask  uint64
}

// find returns the last write of key, whose hash is h, or nil.
func (tab *table) find(h uint64, key string) *record {
	for i := h & tab.mask; ; i = (i + 1) & tab.mask {
		sl := &tab.slots[i]
		switch sl.hash.Load() {
		case 0:
			return nil
		case h:
			if r := sl.rec.Load(); r.key == key {
				return r
			}
		}
	}
}

// empty returns the first empty slot from where a key of hash h would be.
// Only the writer calls it.
func (tab *table) empty(h uint64) uint64 {
	i := h & tab.mask
	for tab.slots[i].hash.Load() != 0 {
		i = (i + 1) & tab.mask
	}
	return i
}

// store is the job context. Every key has the list of its writes in the
// order they were made. Two tasks that do not depend on each other may not
// both write a key (that is an ErrConflict), so each list is a chain: every
// writer depends on the writer before it. The writers a task depends on are
// therefore a prefix of each list, and the value a task sees is the last
// write of that prefix: the descendant's.
//
// That makes a read a lookup in a hash table and, in the common case of a
// key written once, one check that the writer is an ancestor (a binary
// search of the reader's direct dependencies, or the graph's labels),
// without ever copying the context per task.
//
// Reads take no lock and write nothing shared, so readers on different
// cores never contend: they load the table and its slots atomically, and a
// record never changes once published. Writes come from one writer at a
// time (the scheduler, under the job's lock; a Ledger, under its own), which
// publishes a new record with one atomic store, and a larger table, when it
// grows, with another. A reader that loaded the table before it grew still
// finds every write it may see there: the writes of the tasks it depends on
// were made before it started.
type store struct {
	seed maphash.Seed
	tab  atomic.Pointer[table] // nil until the first write
	// sizeHint is how many keys the job may write: its tasks, plus the
	// initial context (see grow).
	sizeHint int

	// What only the writer uses.
	used int          // keys in the table
	recs slab[record] // where records come from
	hs   []uint64     // the hashes of the output being put

	viewMu sync.Mutex
	views  map[reader]*snapshot // guarded by viewMu: built for Len and All
}

// reader names a task of a scope.
type reader struct {
	sc   *scope
	task int32
}

func newStore(tasks int, initial map[string]any) *store {
	s := &store{seed: maphash.MakeSeed(), sizeHint: tasks + len(initial)}
	for k, v := range initial {
		s.write(s.hash(k), k, v, nil, -1)
	}
	return s
}

// hash returns the hash of key in s's tables: never 0, which marks an
// empty slot.
func (s *store) hash(key string) uint64 {
	if h := maphash.String(s.seed, key); h != 0 {
		return h
	}
	return 1
}

// get returns the value of key that task t of scope sc sees.
func (s *store) get(sc *scope, t int32, key string) (any, bool) {
	tab := s.tab.Load()
	if tab == nil {
		return nil, false
	}
	r := tab.find(s.hash(key), key)
	if r == nil {
		return nil, false
	}
	if r = visible(sc, t, r); r == nil {
		return nil, false
	}
	return r.val, true
}

// visible returns the last write of r's key, up to r, that task t of scope
// sc depends on, or nil. The writes t depends on are a prefix of the chain:
// the search asks about O(log len(chain)) writers, one for a key written
// once.
func visible(sc *scope, t int32, r *record) *record {
	if r.chain == nil {
		// A key written once, the common case: one question, no search.
		if r.sc == nil || reach(sc, t, r.sc, r.task) {
			return r
		}
		return nil
	}
	c := r.chain
	i := sort.Search(len(c), func(i int) bool {
		return c[i].sc != nil && !reach(sc, t, c[i].sc, c[i].task)
	}) - 1
	if i < 0 {
		return nil
	}
	return c[i]
}

// recordChunk is how many records the store allocates together, at most.
const recordChunk = 128

// newRecord returns a record to fill in before it is published. Only the
// writer calls it.
func (s *store) newRecord() *record { return s.recs.next(recordChunk) }

// write publishes a write of key, whose hash is h. Only the writer calls
// it.
func (s *store) write(h uint64, key string, val any, sc *scope, t int32) {
	tab := s.tab.Load()
	free := uint64(0) // where key goes in tab if it is new
	if tab != nil {
		for i := h & tab.mask; ; i = (i + 1) & tab.mask {
			sl := &tab.slots[i]
			sh := sl.hash.Load()
			if sh == 0 {
				free = i
				break
			}
			if sh != h {
				continue
			}
			if prev := sl.rec.Load(); prev.key == key {
				// A later write of the key: the chain grows.
				r := s.newRecord()
				*r = record{key: key, val: val, sc: sc, task: t, chain: prev.chain}
				if r.chain == nil {
					r.chain = []*record{prev}
				}
				r.chain = append(r.chain, r)
				sl.rec.Store(r)
				return
			}
		}
	}
	if tab == nil || 4*(s.used+1) > 3*len(tab.slots) {
		tab = s.grow(tab)
		free = tab.empty(h)
	}
	r := s.newRecord()
	*r = record{key: key, val: val, sc: sc, task: t}
	// The record first: a reader that sees the hash loads the record.
	sl := &tab.slots[free]
	sl.rec.Store(r)
	sl.hash.Store(h)
	s.used++
}

// firstTableKeys is how many keys the first table is made for, at most
// (fewer if the job has fewer tasks and initial keys): a job of many tasks
// that write few keys does not pay for a table sized for all of them, and
// one whose tasks all write grows it a few times, by doubling.
const firstTableKeys = 4096

// grow publishes a table twice the size of tab (or the first one), holding
// the same records. Only the writer calls it.
func (s *store) grow(tab *table) *table {
	n := 8
	if tab != nil {
		n = 2 * len(tab.slots)
	}
	for 3*n < 4*min(s.sizeHint, max(s.used+1, firstTableKeys)) {
		n *= 2
	}
	bigger := &table{slots: make([]slot, n), mask: uint64(n - 1)}
	if tab != nil {
		for i := range tab.slots {
			old := &tab.slots[i]
			h := old.hash.Load()
			if h == 0 {
				continue
			}
			j := bigger.empty(h)
			bigger.slots[j].rec.Store(old.rec.Load())
			bigger.slots[j].hash.Store(h)
		}
	}
	s.tab.Store(bigger)
	return bigger
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
// conflict, none: it checks every key before it writes any. The caller is
// the store's one writer (it holds the job's lock).
//
// On a conflict, the job stops, and what it reports must not depend on
// which of the two writers finished first: the error blames the writer
// declared later, and the key keeps the value of the writer declared first.
func (s *store) put(sc *scope, t int32, out []kv) error {
	hs := s.hs[:0]
	tab := s.tab.Load()
	for _, o := range out {
		h := s.hash(o.key)
		hs = append(hs, h)
		if tab == nil {
			continue
		}
		if unordered(sc, t, tab.find(h, o.key)) {
			s.hs = hs
			return s.conflict(sc, t, out)
		}
	}
	for i, o := range out {
		s.write(hs[i], o.key, o.val, sc, t)
	}
	s.hs = hs
	return nil
}

// unordered reports whether last, the last write of a key (nil if none),
// conflicts with a write of it by task t of scope sc: its writer finished
// before t, and t does not depend on it.
func unordered(sc *scope, t int32, last *record) bool {
	return last != nil && last.sc != nil && !reach(sc, t, last.sc, last.task)
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
// key keeps the value of the writer declared first. Only the writer calls
// it.
func (s *store) conflict(sc *scope, t int32, out []kv) error {
	slices.SortFunc(out, func(a, b kv) int { return cmp.Compare(a.key, b.key) })
	tab := s.tab.Load()
	for _, o := range out {
		h := s.hash(o.key)
		last := tab.find(h, o.key)
		if !unordered(sc, t, last) {
			continue
		}
		err := &conflictError{key: o.key}
		blame := reader{sc, t}
		if declaredBefore(sc, t, last.sc, last.task) {
			blame = reader{last.sc, last.task}
			err.first, err.second = sc.g.names[t], last.sc.g.names[last.task]
			s.replace(tab, h, last, o.val)
		} else {
			err.first, err.second = last.sc.g.names[last.task], sc.g.names[t]
		}
		return &blamedError{err: err, blame: blame}
	}
	panic("dag: conflict not found") // unreachable: put found one
}

// replace publishes, in place of last, the last write of its key, a record
// like it that holds val. The chain gets an array of its own: readers may
// be reading the one last shares. Only the writer calls it.
func (s *store) replace(tab *table, h uint64, last *record, val any) {
	r := s.newRecord()
	*r = *last
	r.val = val
	if n := len(last.chain); n > 0 {
		r.chain = append(last.chain[:n-1:n-1], r)
	}
	for i := h & tab.mask; ; i = (i + 1) & tab.mask {
		if sl := &tab.slots[i]; sl.rec.Load() == last {
			sl.rec.Store(r)
			return
		}
	}
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
	if tab := s.tab.Load(); tab != nil {
		for i := range tab.slots {
			sl := &tab.slots[i]
			if sl.hash.Load() == 0 {
				continue
			}
			if e := visible(sc, t, sl.rec.Load()); e != nil {
				snap.m[e.key] = e.val
			}
		}
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
	tab := s.tab.Load()
	if tab == nil {
		return ""
	}
	r := tab.find(s.hash(key), key)
	if r == nil {
		return ""
	}
	if r.chain == nil {
		if r.sc == nil {
			return ""
		}
		return r.sc.g.names[r.task]
	}
	for i := len(r.chain) - 1; i >= 0; i-- {
		if e := r.chain[i]; e.sc != nil {
			return e.sc.g.names[e.task]
		}
	}
	return ""
}

// final returns the job's context: for every key, its last write. Only the
// writer calls it, or a caller that the writer's last write happened before.
func (s *store) final() map[string]any {
	m := make(map[string]any, s.used)
	if tab := s.tab.Load(); tab != nil {
		for i := range tab.slots {
			sl := &tab.slots[i]
			if sl.hash.Load() != 0 {
				r := sl.rec.Load()
				m[r.key] = r.val
			}
		}
	}
	return m
}
