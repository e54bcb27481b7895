package dag

import (
	"fmt"
	"iter"
	"maps"
	"slices"
)

// Values is the read-only view of the job context that one task sees: the
// initial context plus the outputs of every task it depends on, directly or
// not. It stays valid and unchanged after the task ends, and is safe for
// concurrent use.
//
// What a read costs depends on the method: [Values.Get] and [Lookup] read
// one key and cost the same whatever the size of the job; [Values.Len],
// [Values.All] and [Values.String] need every key the task sees, and the
// first of them builds a snapshot of those keys (see Len).
//
// The zero Values is empty and ready to use.
type Values struct {
	s    *store    // the job's store; nil for ValuesOf and the zero Values
	sc   *scope    // the reading task's scope, with s
	t    int32     // the reading task, with s
	snap *snapshot // the values, for ValuesOf
}

// snapshot is a materialised view: the keys in order and their values.
type snapshot struct {
	keys []string
	m    map[string]any
}

// ValuesOf returns a Values holding a copy of m, to call a [TaskFunc] in a
// test. It copies m and sorts its keys, once: its Len, All and String cost
// no more after that.
func ValuesOf(m map[string]any) Values {
	m = maps.Clone(m)
	if m == nil {
		m = map[string]any{}
	}
	return Values{snap: &snapshot{keys: slices.Sorted(maps.Keys(m)), m: m}}
}

// Get returns the value of key and whether the task can see it. It takes
// no lock, so tasks on different cores read without waiting for each
// other or for the writes of the job. It costs a hash-table lookup plus a
// check that the reader depends on the task that wrote key: a binary
// search of its direct dependencies, or labels the job makes once, in time
// linear in its tasks and dependencies, the first time a task reads what
// an indirect dependency wrote. The size of the job does not
// matter: reading from a task 100,000 tasks up a chain costs the same as
// from one 1,000 up (BenchmarkDependsOnDeep). Only when paths of the graph
// cross so that the labels leave the answer in doubt does the check walk up
// from the reader, through tasks the labels cannot rule out.
func (v Values) Get(key string) (any, bool) {
	if v.s != nil {
		return v.s.get(v.sc, v.t, key)
	}
	if v.snap != nil {
		val, ok := v.snap.m[key]
		return val, ok
	}
	return nil, false
}

// Len returns the number of keys the task can see.
//
// The first call of Len, All or String on a task's Values builds a snapshot
// of what the task sees: it visits every key written to the job context so
// far, makes for each the check that Get makes, and sorts the keys the task
// can see. It costs time linear in the job's keys (plus the sort), and
// memory for the visible keys that lasts as long as the job; later calls on
// the same task's Values reuse the snapshot. A task that needs a few keys
// of a large context should Get them rather than range over All.
func (v Values) Len() int {
	return len(v.snapshot().keys)
}

// All yields every key the task can see and its value, sorted by key. Its
// first call builds the snapshot that Len describes.
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
		return v.s.view(v.sc, v.t)
	case v.snap != nil:
		return v.snap
	}
	return &snapshot{}
}

// String formats the values as a sorted map, for debugging. Its first call
// builds the snapshot that Len describes.
func (v Values) String() string {
	return fmt.Sprint(v.snapshot().m)
}

// Lookup returns the value of key as a T. It fails with an error matching
// [ErrMissingKey] when the key is absent, and with an error naming the key,
// the wanted type and the found type when the value is not a T. A nil value
// is a T only when T is an interface type.
//
// Both are mistakes in the job's design that a retry cannot fix: a task
// whose Func returns such an error (or wraps it) fails for good, without
// retrying. When the key is absent but another task of the job has written
// it already, the error names that task: a task sees only the outputs of
// the tasks it depends on, so it likely belongs in DependsOn. (A writer that
// has not run yet cannot be named.)
func Lookup[T any](v Values, key string) (T, error) {
	var zero T
	raw, ok := v.Get(key)
	if !ok {
		msg := fmt.Sprintf("dag: key %q is not in the job context", key)
		if v.s != nil {
			if w := v.s.writerOf(key); w != "" {
				msg = fmt.Sprintf("dag: key %q is not in the job context this task sees: task %s wrote it, but a task sees only the outputs of the tasks it depends on; add %s to DependsOn", key, quote(w), quote(w))
			}
		}
		return zero, &lookupError{msg: msg, err: ErrMissingKey}
	}
	if t, ok := raw.(T); ok {
		return t, nil
	}
	if raw == nil && any(zero) == nil { // T is an interface type
		return zero, nil
	}
	want := fmt.Sprintf("%T", (*T)(nil))[1:]
	return zero, &lookupError{msg: fmt.Sprintf("dag: key %q holds a value of type %T, not %s", key, raw, want)}
}

// lookupError is an error of Lookup: a mistake in the job's design, which
// the scheduler does not retry.
type lookupError struct {
	msg string
	err error // ErrMissingKey, or nil
}

func (e *lookupError) Error() string { return e.msg }
func (e *lookupError) Unwrap() error { return e.err }
