package dag

import (
	"context"
	"fmt"
	"testing"
)

// TestHandedListStaysShort runs many short tasks, which keep workers handed
// attempts all the time, and checks that the list of handed workers stays
// as long as the workers handed at once, not as long as the job.
func TestHandedListStaysShort(t *testing.T) {
	t.Parallel()
	const n, width, parallel = 20_000, 100, 16
	noop := func(context.Context, Values) (map[string]any, error) { return nil, nil }
	tasks := make([]Task, n)
	for i := range tasks {
		tasks[i] = Task{Name: fmt.Sprint(i), Func: noop}
		if i >= width {
			// Two tasks of the layer before: the one above and a
			// neighbour.
			above := i - width
			next := above + 1
			if i%width == width-1 {
				next = above - 1
			}
			tasks[i].DependsOn = []string{fmt.Sprint(above), fmt.Sprint(next)}
		}
	}
	j, err := Run(context.Background(), tasks, Options{MaxParallel: parallel})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Wait(); err != nil {
		t.Fatal(err)
	}
	j.s.mu.Lock()
	defer j.s.mu.Unlock()
	if c := cap(j.s.handed); c > 4*parallel {
		t.Errorf("the list of handed workers grew to %d places for MaxParallel %d", c, parallel)
	}
}

// TestHandedOldestFirst hands attempts to two workers, has a third take
// over the oldest, hands the taken-over worker a new attempt (it is the
// idle worker parked last, which spawn hands first), and checks that the
// next take-over takes the attempt handed second, not the new one.
func TestHandedOldestFirst(t *testing.T) {
	// Room in the list, so that handing out does not compact it.
	s := &scheduler{nodes: make([]node, 3), handed: make([]*worker, 0, 8)}
	for i := range s.nodes {
		s.nodes[i].state = Running
	}
	hand := func(w *worker, id int32) {
		w.id, w.idx = id, len(s.running)
		s.running = append(s.running, w)
		s.queueHanded(w)
		w.handed = true
	}
	a, b, x, y := &worker{}, &worker{}, &worker{}, &worker{}
	for _, w := range []*worker{x, y} {
		w.idx = len(s.running)
		s.running = append(s.running, w)
	}
	hand(a, 0)
	hand(b, 1)
	if !s.takeOver(x) || x.id != 0 {
		t.Fatalf("first take-over ran task %d, want 0, the oldest handed", x.id)
	}
	if len(s.idle) != 1 || s.idle[0] != a {
		t.Fatalf("the worker taken over is not idle")
	}
	s.idle = s.idle[:0]
	hand(a, 2)
	if !s.takeOver(y) || y.id != 1 {
		t.Errorf("second take-over ran task %d, want 1: handed before task 2", y.id)
	}
}
