package dag_test

// Benchmarks of the scheduler's overhead, beside a minimal hand-written
// executor (the floor), on four DAG shapes of fixed seeds:
//
//	go test -run '^$' -bench . -benchmem
//
// Every benchmark reports ns/task, allocs/task and B/task. TestPerfTable,
// behind -dag.perf, runs them all and prints the table of
// docs/performance.md with the ratios to the floor measured in the same
// run:
//
//	go test -run TestPerfTable -dag.perf -v -timeout 30m
//
// The 1,000,000-task cases run only with -dag.million.

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagrun/dag"
)

var (
	bMillion = flag.Bool("dag.million", false, "also run the 1,000,000-task benchmarks, and TestMillion")
	bPerf    = flag.Bool("dag.perf", false, "TestPerfTable runs every benchmark and prints the performance table")
)

// A bShape makes the dependencies of n tasks, by index.
type bShape struct {
	name string
	deps func(n int) [][]int32
}

var bShapes = []bShape{
	{"wide", bWide},
	{"chain", bChain},
	{"layered", bLayered},
	{"tree", bTree},
}

// bWide is one root, n-2 tasks that depend on it, and a sink that depends
// on all of them.
func bWide(n int) [][]int32 {
	deps := make([][]int32, n)
	sink := make([]int32, 0, n-2)
	for i := 1; i < n-1; i++ {
		deps[i] = []int32{0}
		sink = append(sink, int32(i))
	}
	deps[n-1] = sink
	return deps
}

// bChain is n tasks in a line.
func bChain(n int) [][]int32 {
	deps := make([][]int32, n)
	for i := 1; i < n; i++ {
		deps[i] = []int32{int32(i - 1)}
	}
	return deps
}

// bLayered is layers of 100 tasks, each depending on 3 distinct random
// tasks of the layer before.
func bLayered(n int) [][]int32 {
	const width = 100
	r := rand.New(rand.NewPCG(1, 2))
	deps := make([][]int32, n)
	for i := width; i < n; i++ {
		prev := int32(i/width-1) * width
		d := make([]int32, 0, 3)
		for len(d) < 3 {
			k := prev + int32(r.IntN(width))
			if !slices.Contains(d, k) {
				d = append(d, k)
			}
		}
		deps[i] = d
	}
	return deps
}

// bTree is a binary tree fanning in to task 0: task i depends on tasks
// 2i+1 and 2i+2, and the leaves are the roots.
func bTree(n int) [][]int32 {
	deps := make([][]int32, n)
	for i := range n {
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < n {
				deps[i] = append(deps[i], int32(c))
			}
		}
	}
	return deps
}

func bName(i int32) string { return "t" + strconv.Itoa(int(i)) }

func bKey(i int32) string { return "k" + strconv.Itoa(int(i)) }

// bTasks declares tasks with the given dependencies. With ctx, each task
// reads its dependencies' keys and writes its own; otherwise each does
// nothing.
func bTasks(deps [][]int32, ctx bool) []dag.Task {
	tasks := make([]dag.Task, len(deps))
	for i, ds := range deps {
		names := make([]string, len(ds))
		for k, d := range ds {
			names[k] = bName(d)
		}
		tasks[i] = dag.Task{Name: bName(int32(i)), DependsOn: names, Func: noop}
		if !ctx {
			continue
		}
		keys := make([]string, len(ds))
		for k, d := range ds {
			keys[k] = bKey(d)
		}
		key := bKey(int32(i))
		tasks[i].Func = func(_ context.Context, in dag.Values) (map[string]any, error) {
			for _, k := range keys {
				if _, ok := in.Get(k); !ok {
					return nil, fmt.Errorf("%s does not see %s", key, k)
				}
			}
			return map[string]any{key: i}, nil
		}
	}
	return tasks
}

// bSleeper returns tasks like bTasks that each sleep for d.
func bSleeper(deps [][]int32, d time.Duration) []dag.Task {
	tasks := bTasks(deps, false)
	for i := range tasks {
		tasks[i].Func = func(context.Context, dag.Values) (map[string]any, error) {
			time.Sleep(d)
			return nil, nil
		}
	}
	return tasks
}

// bRun runs tasks with dag and fails b if the job does not complete.
func bRun(b testing.TB, tasks []dag.Task, opts dag.Options) {
	job, err := dag.Run(context.Background(), tasks, opts)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := job.Wait(); err != nil {
		b.Fatal(err)
	}
}

// bRunEvents runs tasks with dag, with every event read by a consumer.
func bRunEvents(b testing.TB, tasks []dag.Task) {
	events := make(chan dag.Event, 1024)
	var n int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range events {
			n++
		}
	}()
	bRun(b, tasks, dag.Options{Events: events})
	<-done
	if want := 3*len(tasks) + 2; n != want {
		b.Fatalf("read %d events; want %d", n, want)
	}
}

// floor is the hand-written executor dag is measured against: Kahn's
// algorithm over in-degree counters, a fixed pool of workers fed from a
// channel of ready tasks; no retries, no events, no context, no checks. It
// takes the same []dag.Task as dag and resolves the names itself, as any
// executor of named tasks must.
func floor(tasks []dag.Task, workers int) {
	floorRun(tasks, workers, false)
}

// floorResult is the floor that also reports what dag's Result.Tasks
// does: a map from each task's name to its state and the times it started
// and finished, one clock reading per task.
func floorResult(tasks []dag.Task, workers int) map[string]dag.TaskResult {
	return floorRun(tasks, workers, true)
}

func floorRun(tasks []dag.Task, workers int, withResult bool) map[string]dag.TaskResult {
	n := len(tasks)
	var finished []int64
	t0 := time.Now()
	if withResult {
		finished = make([]int64, n)
	}
	index := make(map[string]int32, n)
	for i := range tasks {
		index[tasks[i].Name] = int32(i)
	}
	indeg := make([]atomic.Int32, n)
	outOff := make([]int32, n+1)
	for i := range tasks {
		indeg[i].Store(int32(len(tasks[i].DependsOn)))
		for _, d := range tasks[i].DependsOn {
			outOff[index[d]+1]++
		}
	}
	for i := range n {
		outOff[i+1] += outOff[i]
	}
	outs := make([]int32, outOff[n])
	fill := slices.Clone(outOff[:n])
	for i := range tasks {
		for _, d := range tasks[i].DependsOn {
			k := index[d]
			outs[fill[k]] = int32(i)
			fill[k]++
		}
	}
	ready := make(chan int32, n)
	for i := range n {
		if indeg[i].Load() == 0 {
			ready <- int32(i)
		}
	}
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for t := range ready {
				tasks[t].Func(context.Background(), dag.Values{})
				if withResult {
					finished[t] = int64(time.Since(t0))
				}
				for _, o := range outs[outOff[t]:outOff[t+1]] {
					if indeg[o].Add(-1) == 0 {
						ready <- o
					}
				}
				if left.Add(-1) == 0 {
					close(ready)
				}
			}
		})
	}
	wg.Wait()
	if !withResult {
		return nil
	}
	res := make(map[string]dag.TaskResult, n)
	for i := range tasks {
		res[tasks[i].Name] = dag.TaskResult{State: dag.Completed, Attempts: 1, Finished: t0.Add(time.Duration(finished[i]))}
	}
	return res
}

// bMeasure runs run b.N times and reports the cost per task of n tasks.
//
// It runs the job twice first: the first runs of a large job grow the heap
// and fault in fresh pages, a cost a process running jobs pays once, which
// would otherwise dominate the few iterations a 100,000-task benchmark
// gets.
func bMeasure(b *testing.B, n int, run func()) {
	run()
	run()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		run()
	}
	runtime.ReadMemStats(&m1)
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/task")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/task")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/per, "B/task")
}

// A bCase is one benchmark: an executor and a task body on a shape.
type bCase struct {
	shape, body string
	n           int
	bench       func(b *testing.B)
}

func (c bCase) name() string {
	return fmt.Sprintf("shape=%s/n=%d/body=%s", c.shape, c.n, c.body)
}

// bSizes are the job sizes every shape is measured at.
func bSizes(shape string) []int {
	sizes := []int{1000, 10_000, 100_000}
	if *bMillion && (shape == "wide" || shape == "layered") {
		sizes = append(sizes, 1_000_000)
	}
	return sizes
}

// bCases lists the benchmarks of the overhead per task.
func bCases() []bCase {
	var cases []bCase
	for _, s := range bShapes {
		for _, n := range bSizes(s.name) {
			deps := sync.OnceValue(func() [][]int32 { return s.deps(n) })
			noop := sync.OnceValue(func() []dag.Task { return bTasks(deps(), false) })
			ctx := sync.OnceValue(func() []dag.Task { return bTasks(deps(), true) })
			cases = append(cases,
				bCase{s.name, "noop", n, func(b *testing.B) {
					tasks := noop()
					bMeasure(b, n, func() { bRun(b, tasks, dag.Options{}) })
				}},
				bCase{s.name, "floor", n, func(b *testing.B) {
					tasks, workers := noop(), runtime.GOMAXPROCS(0)
					bMeasure(b, n, func() { floor(tasks, workers) })
				}},
				bCase{s.name, "floor+result", n, func(b *testing.B) {
					tasks, workers := noop(), runtime.GOMAXPROCS(0)
					bMeasure(b, n, func() { floorResult(tasks, workers) })
				}},
				bCase{s.name, "ctx", n, func(b *testing.B) {
					tasks := ctx()
					bMeasure(b, n, func() { bRun(b, tasks, dag.Options{}) })
				}},
				bCase{s.name, "events", n, func(b *testing.B) {
					tasks := noop()
					bMeasure(b, n, func() { bRunEvents(b, tasks) })
				}},
			)
		}
	}
	return cases
}

// BenchmarkOverhead measures what dag costs per task: with no-op tasks
// (body=noop), with tasks that pass values through the job context
// (body=ctx), with every event read (body=events), and the hand-written
// floor on the same tasks (body=floor), alone and building a result like
// dag's Result.Tasks (body=floor+result).
func BenchmarkOverhead(b *testing.B) {
	for _, c := range bCases() {
		b.Run(c.name(), c.bench)
	}
}

// bSleepCase measures the makespan of tasks that sleep 1 ms, 64 at a time,
// on the layered shape, with dag or with the floor, and reports it divided
// by its lower bound: max(critical path, total work / 64).
func bSleepCase(n int, useFloor bool) func(b *testing.B) {
	return func(b *testing.B) {
		const sleep, parallel = time.Millisecond, 64
		deps := bLayered(n)
		tasks := bSleeper(deps, sleep)
		for b.Loop() {
			if useFloor {
				floor(tasks, parallel)
			} else {
				bRun(b, tasks, dag.Options{MaxParallel: parallel})
			}
		}
		layers := (n + 99) / 100
		bound := max(time.Duration(layers)*sleep, time.Duration(n)*sleep/parallel)
		makespan := b.Elapsed() / time.Duration(b.N)
		b.ReportMetric(float64(makespan.Microseconds())/1000, "ms/job")
		b.ReportMetric(float64(makespan)/float64(bound), "x-bound")
	}
}

// BenchmarkSleep measures how well dag keeps 64 workers busy with tasks
// that sleep 1 ms, beside the floor.
func BenchmarkSleep(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("shape=layered/n=%d/exec=dag", n), bSleepCase(n, false))
		b.Run(fmt.Sprintf("shape=layered/n=%d/exec=floor", n), bSleepCase(n, true))
	}
}

// TestBenchShapes checks that the benchmarks measure what they say: the
// shapes have the edges described, the floor runs every task once after
// its dependencies, and the ctx body sees its dependencies' values, on
// 2,000 tasks of each shape. (The huge-graph tests of reliability_test.go
// cover Validate's parallel resolution of many dependencies.)
func TestBenchShapes(t *testing.T) {
	t.Parallel()
	const n = 2_000
	edges := map[string]int{"wide": 2 * (n - 2), "chain": n - 1, "layered": 3 * (n - 100), "tree": n - 1}
	for _, s := range bShapes {
		t.Run(s.name, func(t *testing.T) {
			deps := s.deps(n)
			if len(deps) != n {
				t.Fatalf("%d tasks; want %d", len(deps), n)
			}
			m := 0
			for i, ds := range deps {
				m += len(ds)
				for _, d := range ds {
					if d < 0 || int(d) >= n || int(d) == i {
						t.Fatalf("task %d depends on %d", i, d)
					}
				}
			}
			if m != edges[s.name] {
				t.Errorf("%d edges; want %d", m, edges[s.name])
			}
			if err := dag.Validate(bTasks(deps, false)); err != nil {
				t.Fatal(err)
			}

			// The floor runs each task once, after its dependencies.
			tasks := bTasks(deps, false)
			var mu sync.Mutex
			done := make([]bool, n)
			runs := 0
			for i := range tasks {
				tasks[i].Func = func(context.Context, dag.Values) (map[string]any, error) {
					mu.Lock()
					defer mu.Unlock()
					for _, d := range deps[i] {
						if !done[d] {
							t.Errorf("floor ran task %d before its dependency %d", i, d)
						}
					}
					if done[i] {
						t.Errorf("floor ran task %d twice", i)
					}
					done[i] = true
					runs++
					return nil, nil
				}
			}
			floor(tasks, 4)
			if runs != n {
				t.Errorf("floor ran %d tasks; want %d", runs, n)
			}

			// The ctx body fails its task if it misses a value; every key
			// ends in the context.
			job, err := dag.Run(t.Context(), bTasks(deps, true), dag.Options{MaxParallel: 3})
			if err != nil {
				t.Fatal(err)
			}
			res, err := job.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Context) != n {
				t.Errorf("context has %d keys; want %d", len(res.Context), n)
			}
			bRunEvents(t, bTasks(deps, false))
		})
	}
}

// TestPerfTable runs every benchmark and prints the table of
// docs/performance.md, with ratios measured in this one run. It runs only
// with -dag.perf.
func TestPerfTable(t *testing.T) {
	if !*bPerf {
		t.Skip("run with -dag.perf to print the performance table")
	}
	type row struct{ ns, allocs, bytes float64 }
	results := map[string]row{}
	for _, c := range bCases() {
		r := testing.Benchmark(c.bench)
		results[c.name()] = row{r.Extra["ns/task"], r.Extra["allocs/task"], r.Extra["B/task"]}
		t.Logf("%s: %d runs, %.0f ns/task", c.name(), r.N, r.Extra["ns/task"])
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "GOMAXPROCS %d, %s/%s, %s\n\n", runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	sb.WriteString("| shape | tasks | floor ns/task | floor+result ns/task | dag ns/task | dag / floor | dag / floor+result | dag allocs/task | dag B/task | ctx ns/task (× no-op) | events ns/task (× no-op) |\n")
	sb.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range bShapes {
		for _, n := range bSizes(s.name) {
			get := func(body string) row {
				return results[bCase{shape: s.name, body: body, n: n}.name()]
			}
			fl, fr, noop, ctx, ev := get("floor"), get("floor+result"), get("noop"), get("ctx"), get("events")
			fmt.Fprintf(&sb, "| %s | %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.3f | %.0f | %.0f (%.2f) | %.0f (%.2f) |\n",
				s.name, n, fl.ns, fr.ns, noop.ns, noop.ns/fl.ns, noop.ns/fr.ns, noop.allocs, noop.bytes,
				ctx.ns, ctx.ns/noop.ns, ev.ns, ev.ns/noop.ns)
		}
	}
	sb.WriteString("\n| sleep 1 ms, MaxParallel 64, layered | tasks | dag ms/job | floor ms/job | dag / floor | dag / lower bound |\n")
	sb.WriteString("|---|--:|--:|--:|--:|--:|\n")
	for _, n := range []int{1000, 10_000} {
		d := testing.Benchmark(bSleepCase(n, false))
		f := testing.Benchmark(bSleepCase(n, true))
		fmt.Fprintf(&sb, "| | %d | %.1f | %.1f | %.3f | %.2f |\n", n,
			d.Extra["ms/job"], f.Extra["ms/job"], d.Extra["ms/job"]/f.Extra["ms/job"], d.Extra["x-bound"])
	}
	t.Logf("\n%s", sb.String())
}

// TestMillion validates and runs a 1,000,000-task layered job, and reports
// the time of each and the peak of the live heap, sampled every
// millisecond. It runs only with -dag.million.
func TestMillion(t *testing.T) {
	if !*bMillion {
		t.Skip("run with -dag.million")
	}
	tasks := bTasks(bLayered(1_000_000), false)
	runtime.GC()
	base := bHeap()

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			peak.Store(max(peak.Load(), bHeap()))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	t0 := time.Now()
	if err := dag.Validate(tasks); err != nil {
		t.Fatal(err)
	}
	validated := time.Since(t0)
	t0 = time.Now()
	bRun(t, tasks, dag.Options{})
	ran := time.Since(t0)
	close(stop)
	wg.Wait()
	t.Logf("1,000,000 layered tasks: Validate %v; Run+Wait %v (%.0f ns/task); peak heap %d MiB above the %d MiB the task slice holds",
		validated.Round(time.Millisecond), ran.Round(time.Millisecond), float64(ran.Nanoseconds())/1e6,
		(peak.Load()-base)>>20, base>>20)
}

// bHeap returns the bytes of live and not yet swept heap objects.
func bHeap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
