package dag_test

// Workers: a job reuses its worker goroutines.

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// layerBarrier returns a maker of Funcs for n tasks that each wait until
// all n have started, or fail when their context ends.
func layerBarrier(n int) func(name string) dag.TaskFunc {
	var started atomic.Int32
	all := make(chan struct{})
	return func(name string) dag.TaskFunc {
		return func(ctx context.Context, _ dag.Values) (map[string]any, error) {
			if started.Add(1) == int32(n) {
				close(all)
			}
			select {
			case <-all:
				return nil, nil
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: the other tasks of its layer did not start", name)
			}
		}
	}
}

// barrierLayers returns layers of width tasks that must run all at once
// (layerBarrier), each layer depending on the one before, with short no-op
// tasks beside each layer, ready at the same time.
func barrierLayers(layers, width, short int) []dag.Task {
	nop := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
	var tasks []dag.Task
	var prev []string
	for layer := range layers {
		for i := range short {
			tasks = append(tasks, dag.Task{Name: fmt.Sprintf("s%d-%d", layer, i), DependsOn: prev, Func: nop})
		}
		barrier := layerBarrier(width)
		var names []string
		for i := range width {
			name := fmt.Sprintf("l%d-%d", layer, i)
			names = append(names, name)
			tasks = append(tasks, dag.Task{Name: name, DependsOn: prev, Func: barrier(name)})
		}
		prev = names
	}
	return tasks
}

// TestWorkersRunTogether checks that MaxParallel attempts run at the same
// time when they wait: workers are woken one at a time (each woken worker
// wakes the next), and a worker that ends an attempt takes over attempts
// handed to workers not woken yet, so a scheduler that lost a wake would
// leave an attempt handed out and never run. Every task here waits until
// all the tasks of its layer have started: the job ends only if each layer
// runs all at once.
func TestWorkersRunTogether(t *testing.T) {
	t.Parallel()
	for _, width := range []int{2, 3, 8, 32} {
		t.Run(fmt.Sprintf("width=%d", width), func(t *testing.T) {
			t.Parallel()
			for range 20 {
				tasks := barrierLayers(4, width, 0)
				res, err := runTasks(t, tasks, dag.Options{MaxParallel: width, Timeout: 10 * time.Second})
				allCompleted(t, res, err, tasks)
			}
		})
	}
}

// TestWorkersTakeOverThenWake covers the worker that is woken while
// another worker takes over the attempt handed to it: it must wake the
// next handed worker all the same. With one processor the order is
// deterministic: r's worker hands the b tasks out and wakes the first
// worker handed one; then it runs q, the most urgent task, which returns
// at once, and takes over the first b attempt before the woken worker
// runs; then it waits in that b for all the b tasks to start. Only the
// woken worker, which finds its attempt gone, can wake the others.
func TestWorkersTakeOverThenWake(t *testing.T) {
	// Not parallel: it changes GOMAXPROCS.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const width = 4
	for range 20 {
		nop := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
		barrier := layerBarrier(width)
		tasks := []dag.Task{{Name: "r", Func: nop}, {Name: "q", DependsOn: []string{"r"}, Func: nop}}
		tail := []string{"q"}
		for i := range width {
			name := fmt.Sprintf("b%d", i)
			tail = append(tail, name)
			tasks = append(tasks, dag.Task{Name: name, DependsOn: []string{"r"}, Func: barrier(name)})
		}
		tasks = append(tasks, dag.Task{Name: "tail", DependsOn: tail, Func: nop})
		res, err := runTasks(t, tasks, dag.Options{MaxParallel: width + 1, Timeout: 10 * time.Second})
		allCompleted(t, res, err, tasks)
	}
}

// TestWorkersRunTogetherAmidShortTasks is TestWorkersRunTogether with many
// short tasks ready beside each layer's waiting ones: the workers of the
// short tasks meet at the job's lock, and a woken worker that finds one
// waiting there goes back to sleep, counting on it to take over or wake
// again. The waiting tasks must still all run at once.
func TestWorkersRunTogetherAmidShortTasks(t *testing.T) {
	t.Parallel()
	const width = 8
	for range 10 {
		tasks := barrierLayers(3, width, 2000)
		res, err := runTasks(t, tasks, dag.Options{MaxParallel: width + 4, Timeout: 10 * time.Second})
		allCompleted(t, res, err, tasks)
	}
}

// TestWorkersGraceForHandedAttempt covers an attempt whose task is
// canceled while the worker it was handed to has not started it: group g
// stops when a fails, which cancels b, handed to a worker not yet running.
// The worker that ran a must not take b's attempt over, or b would run
// without the grace period after which the job stops waiting for it: the
// job must end while b's Func, which ignores its context, still runs. With
// one processor the order is deterministic.
func TestWorkersGraceForHandedAttempt(t *testing.T) {
	// Not parallel: it changes GOMAXPROCS.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range 10 {
		release := make(chan struct{})
		tasks := []dag.Task{{Name: "g", ContinueOnFailure: true, Sub: []dag.Task{
			{Name: "a", Func: fail(errBoom)},
			{Name: "b", Func: func(context.Context, dag.Values) (map[string]any, error) {
				<-release // ignores its context
				return nil, nil
			}},
		}}}
		job, err := dag.Run(context.Background(), tasks, dag.Options{MaxParallel: 2})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-job.Done():
		case <-time.After(5 * time.Second): // the grace period is 20 ms
			close(release)
			t.Fatal("the job waited for b, canceled while handed out, past its grace period")
		}
		close(release)
		res, _ := job.Wait()
		if b := res.Tasks["g/b"]; b.State != dag.Canceled || b.Abandoned != 1 {
			t.Errorf("g/b ended %v with %d abandoned attempts; want canceled with 1", b.State, b.Abandoned)
		}
	}
}
