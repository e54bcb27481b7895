package dag_test

// Workers: a job reuses its worker goroutines.

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/dagrun/dag"
)

// goroutineID returns the number of the calling goroutine, from the first
// line of its stack ("goroutine 18 [running]:"). Tests only.
func goroutineID() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf, _, _ = bytes.Cut(bytes.TrimPrefix(buf, []byte("goroutine ")), []byte(" "))
	id, err := strconv.Atoi(string(buf))
	if err != nil {
		panic("goroutineID: " + err.Error())
	}
	return id
}

// TestWorkersReused checks that a worker that finds no task ready waits for
// the next one rather than ending: in each layer of this job one of the
// two tasks ends first and finds nothing ready (the join needs both), so a
// scheduler whose idle workers end would run the job's tasks on more
// goroutines than MaxParallel, one more per layer.
func TestWorkersReused(t *testing.T) {
	t.Parallel()
	const layers, max = 20, 2
	var mu sync.Mutex
	ids := map[int]bool{}
	record := func(context.Context, dag.Values) (map[string]any, error) {
		mu.Lock()
		defer mu.Unlock()
		ids[goroutineID()] = true
		return nil, nil
	}
	tasks := []dag.Task{{Name: "join0", Func: record}}
	for i := 1; i <= layers; i++ {
		prev := fmt.Sprintf("join%d", i-1)
		x, y := fmt.Sprintf("x%d", i), fmt.Sprintf("y%d", i)
		tasks = append(tasks,
			dag.Task{Name: x, DependsOn: []string{prev}, Func: record},
			dag.Task{Name: y, DependsOn: []string{prev}, Func: record},
			dag.Task{Name: fmt.Sprintf("join%d", i), DependsOn: []string{x, y}, Func: record},
		)
	}
	res, err := runTasks(t, tasks, dag.Options{MaxParallel: max})
	allCompleted(t, res, err, tasks)
	if len(ids) > max {
		t.Errorf("the job's %d tasks ran on %d goroutines; want at most MaxParallel (%d): idle workers must wait for work, not end", len(tasks), len(ids), max)
	}
}
