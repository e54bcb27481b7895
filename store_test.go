package dag

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// chainScope returns the scope of a chain of n tasks, each depending on
// the one before it.
func chainScope(t *testing.T, n int) *scope {
	t.Helper()
	tasks := make([]Task, n)
	for i := range tasks {
		tasks[i] = Task{Name: fmt.Sprint(i), Func: func(context.Context, Values) (map[string]any, error) { return nil, nil }}
		if i > 0 {
			tasks[i].DependsOn = []string{fmt.Sprint(i - 1)}
		}
	}
	g, err := build(tasks)
	if err != nil {
		t.Fatal(err)
	}
	return &scope{g: g, owner: -1}
}

// TestStoreReadsWhileGrowing has readers look up every key written so far
// while one writer keeps writing, from a first table of 8 slots that grows
// ten times: a reader must find each published key, whichever table it
// loaded.
func TestStoreReadsWhileGrowing(t *testing.T) {
	t.Parallel()
	const n = 5000
	sc := chainScope(t, n+1)
	s := newStore(0, map[string]any{"init": -1})
	var published atomic.Int32 // keys 0 to published-1 are written
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			// The reader is the chain's last task: it depends on every
			// writer.
			for {
				p := published.Load()
				if p == n {
					return
				}
				for k := max(0, p-50+int32(r)); k < p; k++ {
					v, ok := s.get(sc, n, fmt.Sprint("k", k))
					if !ok || v != int(k) {
						errs <- fmt.Errorf("key k%d, one of %d written: got %v, %v", k, p, v, ok)
						return
					}
				}
				if v, ok := s.get(sc, n, "init"); !ok || v != -1 {
					errs <- fmt.Errorf("initial key: got %v, %v", v, ok)
					return
				}
			}
		})
	}
	for i := range int32(n) {
		if err := s.put(sc, i, []kv{{fmt.Sprint("k", i), int(i)}}); err != nil {
			t.Fatal(err)
		}
		published.Store(i + 1)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.final(); len(got) != n+1 {
		t.Errorf("final context has %d keys, want %d", len(got), n+1)
	}
}

// TestStoreChain checks what each task of a chain sees of a key that some
// of its tasks write: the write of the last writer before it.
func TestStoreChain(t *testing.T) {
	t.Parallel()
	const n = 40
	sc := chainScope(t, n)
	s := newStore(n, map[string]any{"k": "initial"})
	writers := []int32{3, 4, 10, 11, 12, 20, 33}
	for _, w := range writers {
		if err := s.put(sc, w, []kv{{"k", int(w)}}); err != nil {
			t.Fatal(err)
		}
	}
	for task := range int32(n) {
		var want any = "initial"
		for _, w := range writers {
			if w < task {
				want = int(w)
			}
		}
		if got, ok := s.get(sc, task, "k"); !ok || got != want {
			t.Errorf("task %d sees %v, %v; want %v", task, got, ok, want)
		}
	}
	if w := s.writerOf("k"); w != "33" {
		t.Errorf("writerOf = %q, want 33", w)
	}
	if got := s.final()["k"]; got != 33 {
		t.Errorf("final value %v, want 33", got)
	}
}

// TestStoreReadsWhatIsBeingWritten has readers look up, again and again,
// the key being written at that moment and keys not written yet: a reader
// may not see a key before its write, but must never see a slot half
// published.
func TestStoreReadsWhatIsBeingWritten(t *testing.T) {
	t.Parallel()
	const n = 3000
	sc := chainScope(t, n+1)
	s := newStore(0, nil)
	var writing atomic.Int32 // the key being written
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				k := writing.Load()
				for d := range int32(3) {
					if v, ok := s.get(sc, n, fmt.Sprint("k", k+d)); ok && v != int(k+d) {
						t.Errorf("key k%d holds %v", k+d, v)
						return
					}
				}
				if k == n-1 {
					return
				}
			}
		})
	}
	for i := range int32(n) {
		writing.Store(i)
		if err := s.put(sc, i, []kv{{fmt.Sprint("k", i), int(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// TestStoreConflictOnAChain has a task that conflicts with the last of two
// ordered writers of a key, while readers read the key: the key keeps the
// value of the writer declared first, its descendants see that value, and
// the key's later writes go on from it. (Run with -race: the value replaced
// is one readers may be reading.)
func TestStoreConflictOnAChain(t *testing.T) {
	t.Parallel()
	noop := func(context.Context, Values) (map[string]any, error) { return nil, nil }
	l, err := NewLedger([]Task{
		{Name: "a", Func: noop},
		{Name: "x", Func: noop},
		{Name: "b", DependsOn: []string{"a"}, Func: noop},
		{Name: "d", DependsOn: []string{"b", "x"}, Func: noop},
		{Name: "e", DependsOn: []string{"d"}, Func: noop},
		{Name: "f", DependsOn: []string{"e"}, Func: noop},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(task string) any {
		t.Helper()
		v, err := l.Values(task)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := v.Get("k")
		return got
	}
	for _, p := range []struct{ task, val string }{{"a", "a"}, {"b", "b"}} {
		if err := l.Put(p.task, map[string]any{"k": p.val}); err != nil {
			t.Fatal(err)
		}
	}
	stop, reading := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	readSome := func() { once.Do(func() { close(reading) }) }
	wg.Go(func() {
		defer readSome()
		v, _ := l.Values("d")
		for i := 0; ; i++ {
			if i == 100 {
				readSome()
			}
			select {
			case <-stop:
				return
			default:
			}
			if got, _ := v.Get("k"); got != "b" && got != "x" {
				t.Errorf("d read k = %v during the conflict, want b or x", got)
				return
			}
		}
	})
	<-reading
	// x is declared before b and does not depend on it: b is blamed, and
	// k keeps x's value.
	err = l.Put("x", map[string]any{"k": "x"})
	close(stop)
	wg.Wait()
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Put(x) = %v, want ErrConflict", err)
	}
	if got := l.Context()["k"]; got != "x" {
		t.Errorf("context k = %v, want x", got)
	}
	if got := get("d"); got != "x" {
		t.Errorf("d sees k = %v, want x", got)
	}
	if err := l.Put("e", map[string]any{"k": "e"}); err != nil {
		t.Fatal(err)
	}
	if got := get("f"); got != "e" {
		t.Errorf("f sees k = %v, want e", got)
	}
	if got := get("e"); got != "x" {
		t.Errorf("e sees k = %v, want x", got)
	}
}
