package dag

import (
	"context"
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
