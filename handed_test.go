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
