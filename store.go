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
