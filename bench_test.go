package dag_test

// Benchmarks of the scheduler's overhead, beside two hand-written
// executors, on DAG shapes of fixed seeds:
//
//   - the fair floor (fairFloor): Kahn's algorithm over atomic counters on
//     an integer graph built beforehand, a fixed set of workers, each
//     running the first successor it makes ready; the reference of
//     BenchmarkFair and TestFairTable;
//   - the name-resolving floor (floor): it resolves the tasks' names as dag
//     does, and hands every ready task through a channel; the reference
//     of BenchmarkOverhead and TestPerfTable.
//
//	go test -run '^$' -bench . -benchmem -cpu 2
//
// Every benchmark reports ns/task, cpu-ns/task, allocs/task and B/task.
// TestFairTable, behind -dag.fair=N, runs BenchmarkFair's cases N rounds,
// interleaved, and prints dag's ratios to the fair floor, each measured
// within one round (the table of docs/performance.md):
//
//	go test -run TestFairTable -dag.fair=3 -v -timeout 60m
//
// TestPerfTable, behind -dag.perf, runs BenchmarkOverhead's cases at
// 1,000, 10,000 and 100,000 tasks beside the name-resolving floor:
//
//	go test -run TestPerfTable -dag.perf -v -timeout 30m
//
// The 1,000,000-task cases run only with -dag.million.

import (
	"context"
	"errors"
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
	bFair    = flag.Int("dag.fair", 0, "TestFairTable runs the benchmarks beside the fair floor this many rounds, interleaved, and prints dag's ratios")
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

// bSpec describes a task that passes values, as data: what an adapter
// that runs tasks described elsewhere (a file, a database) holds before
// it declares them to dag.
type bSpec struct {
	name, key   string
	deps, reads []string // the tasks it depends on, and their keys
	val         int
}

// bSpecs describes tasks like bTasks with ctx, by name.
func bSpecs(deps [][]int32) map[string]*bSpec {
	specs := make(map[string]*bSpec, len(deps))
	for i, ds := range deps {
		sp := &bSpec{name: bName(int32(i)), key: bKey(int32(i)), val: i,
			deps: make([]string, len(ds)), reads: make([]string, len(ds))}
		for k, d := range ds {
			sp.deps[k], sp.reads[k] = bName(d), bKey(d)
		}
		specs[sp.name] = sp
	}
	return specs
}

// bRunSpec is the work of task sp: it reads its dependencies' keys and
// writes its own.
func bRunSpec(sp *bSpec, in dag.Values) (map[string]any, error) {
	for _, k := range sp.reads {
		if _, ok := in.Get(k); !ok {
			return nil, fmt.Errorf("%s does not see %s", sp.key, k)
		}
	}
	return map[string]any{sp.key: sp.val}, nil
}

// bDeclare declares the tasks of specs, in the order of names, with a
// closure per task, or (oneFunc) with one Func for every task, which
// finds its task's description by the name TaskInfoFromContext gives it.
func bDeclare(specs map[string]*bSpec, names []string, oneFunc bool) []dag.Task {
	tasks := make([]dag.Task, len(names))
	shared := func(ctx context.Context, in dag.Values) (map[string]any, error) {
		info, ok := dag.TaskInfoFromContext(ctx)
		if !ok {
			return nil, errors.New("no TaskInfo in the task's context")
		}
		return bRunSpec(specs[info.Task], in)
	}
	for i, name := range names {
		sp := specs[name]
		tasks[i] = dag.Task{Name: sp.name, DependsOn: sp.deps, Func: shared}
		if !oneFunc {
			tasks[i].Func = func(_ context.Context, in dag.Values) (map[string]any, error) {
				return bRunSpec(sp, in)
			}
		}
	}
	return tasks
}

// bNames names n tasks in declaration order.
func bNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = bName(int32(i))
	}
	return names
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

// floor is the name-resolving floor, with a channel hand-off: Kahn's
// algorithm over in-degree counters, a fixed pool of workers fed from a
// channel of ready tasks; no retries, no events, no context, no checks. It
// takes the same []dag.Task as dag and resolves the names itself, as any
// executor of named tasks must, and hands every ready task through the
// channel, so that a chain pays a goroutine hand-off per task. The fair
// floor (fairFloor) is the stronger reference.
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

// fairGraph is the integer graph the fair floor runs, built once from a
// shape's dependencies, outside the timed loop.
type fairGraph struct {
	indeg        []int32 // how many tasks each task depends on
	depOff, deps []int32 // deps[depOff[i]:depOff[i+1]] are what task i depends on
	outOff, outs []int32 // outs[outOff[i]:outOff[i+1]] are the tasks that depend on i
	roots        []int32 // the tasks that depend on nothing
	sinks        int32   // how many tasks nothing depends on
}

func newFairGraph(deps [][]int32) *fairGraph {
	n := len(deps)
	g := &fairGraph{indeg: make([]int32, n), depOff: make([]int32, n+1), outOff: make([]int32, n+1)}
	for i, ds := range deps {
		g.indeg[i] = int32(len(ds))
		g.deps = append(g.deps, ds...)
		g.depOff[i+1] = int32(len(g.deps))
		for _, d := range ds {
			g.outOff[d+1]++
		}
		if len(ds) == 0 {
			g.roots = append(g.roots, int32(i))
		}
	}
	for i := range n {
		g.outOff[i+1] += g.outOff[i]
	}
	g.outs = make([]int32, len(g.deps))
	fill := slices.Clone(g.outOff[:n])
	for i, ds := range deps {
		for _, d := range ds {
			g.outs[fill[d]] = int32(i)
			fill[d]++
		}
	}
	for i := range n {
		if g.outOff[i+1] == g.outOff[i] {
			g.sinks++
		}
	}
	return g
}

// A fairBody is the work of task t of the fair floor; vals holds the
// tasks' values when the job passes values, nil otherwise.
type fairBody func(g *fairGraph, t int32, vals []any)

func fairNoop(*fairGraph, int32, []any) {}

// fairValues reads the value of every task t depends on and writes t's
// own, as the ctx body of dag's benchmarks does through the job context.
func fairValues(g *fairGraph, t int32, vals []any) {
	for _, d := range g.deps[g.depOff[t]:g.depOff[t+1]] {
		if vals[d] == nil {
			panic(fmt.Sprintf("fair floor: task %d does not see task %d's value", t, d))
		}
	}
	vals[t] = int(t)
}

// fairFloor is the fair floor: the strongest simple executor of a graph
// that is already built. Kahn's algorithm over atomic in-degree counters;
// a fixed set of min(maxParallel, tasks) workers; a worker runs the first
// successor that its task makes ready itself, and sends the others through
// a channel to any worker; the job ends when its last sink has run. It
// returns the tasks' values (nil without values).
func fairFloor(g *fairGraph, maxParallel int, body fairBody, values bool) []any {
	n := len(g.indeg)
	indeg := slices.Clone(g.indeg) // changed with sync/atomic only
	var vals []any
	if values {
		vals = make([]any, n)
	}
	ready := make(chan int32, n)
	for _, r := range g.roots {
		ready <- r
	}
	var sinks atomic.Int32
	sinks.Store(g.sinks)
	var wg sync.WaitGroup
	for range min(maxParallel, n) {
		wg.Go(func() {
			for t := range ready {
				for t >= 0 {
					body(g, t, vals)
					next := int32(-1)
					outs := g.outs[g.outOff[t]:g.outOff[t+1]]
					for _, o := range outs {
						if atomic.AddInt32(&indeg[o], -1) == 0 {
							if next < 0 {
								next = o
							} else {
								ready <- o
							}
						}
					}
					if len(outs) == 0 && sinks.Add(-1) == 0 {
						close(ready)
					}
					t = next
				}
			}
		})
	}
	wg.Wait()
	return vals
}

// bMeasure runs run b.N times and reports the cost per task of n tasks:
// wall time, CPU time, allocations and bytes.
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
	cpu := bCPU()
	for b.Loop() {
		run()
	}
	cpu = bCPU() - cpu
	runtime.ReadMemStats(&m1)
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/task")
	if cpu > 0 {
		// CPU time on every thread (the collector's too): steadier than
		// ns/task on a shared machine, but blind to idle cores.
		b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/task")
	}
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

// fairShapes are the shapes measured against the fair floor.
var fairShapes = []bShape{{"chain", bChain}, {"layered", bLayered}, {"wide", bWide}}

// An fCase is one benchmark beside the fair floor: an executor (dag, the
// fair floor, or the name-resolving floor) running a task body on a shape
// with at most p tasks at once.
type fCase struct {
	shape, body, exec string
	n, p              int
	bench             func(b *testing.B)
}

func (c fCase) name() string {
	return fmt.Sprintf("shape=%s/n=%d/body=%s/p=%d/exec=%s", c.shape, c.n, c.body, c.p, c.exec)
}

// fairCases lists the benchmarks beside the fair floor, at n tasks. Every
// job's tasks and the fair floor's graph are built once, outside the timed
// loop.
func fairCases(n int) []fCase {
	var cases []fCase
	for _, s := range fairShapes {
		deps := sync.OnceValue(func() [][]int32 { return s.deps(n) })
		graph := sync.OnceValue(func() *fairGraph { return newFairGraph(deps()) })
		noop := sync.OnceValue(func() []dag.Task { return bTasks(deps(), false) })
		ctx := sync.OnceValue(func() []dag.Task { return bTasks(deps(), true) })
		one := sync.OnceValue(func() []dag.Task { return bDeclare(bSpecs(deps()), bNames(n), true) })
		for _, p := range []int{2, 64} {
			cases = append(cases,
				fCase{s.name, "noop", "dag", n, p, func(b *testing.B) {
					tasks := noop()
					bMeasure(b, n, func() { bRun(b, tasks, dag.Options{MaxParallel: p}) })
				}},
				fCase{s.name, "noop", "fair", n, p, func(b *testing.B) {
					g := graph()
					bMeasure(b, n, func() { fairFloor(g, p, fairNoop, false) })
				}},
				fCase{s.name, "noop", "floor", n, p, func(b *testing.B) {
					tasks := noop()
					bMeasure(b, n, func() { floor(tasks, p) })
				}},
				fCase{s.name, "ctx", "dag", n, p, func(b *testing.B) {
					tasks := ctx()
					bMeasure(b, n, func() { bRun(b, tasks, dag.Options{MaxParallel: p}) })
				}},
				fCase{s.name, "ctx", "fair", n, p, func(b *testing.B) {
					g := graph()
					bMeasure(b, n, func() { fairFloor(g, p, fairValues, true) })
				}},
				fCase{s.name, "ctx-onefunc", "dag", n, p, func(b *testing.B) {
					tasks := one()
					bMeasure(b, n, func() { bRun(b, tasks, dag.Options{MaxParallel: p}) })
				}},
			)
		}
	}
	return cases
}

// BenchmarkFair measures dag beside the fair floor (exec=fair) and the
// name-resolving floor (exec=floor), at 10,000 tasks, with no-op tasks
// (body=noop) and tasks that pass values through the job context
// (body=ctx, and body=ctx-onefunc where one Func serves every task), with
// MaxParallel 2 and 64. Run it with -cpu 2; compare figures of one run
// only (TestFairTable interleaves the executors).
func BenchmarkFair(b *testing.B) {
	for _, c := range fairCases(10_000) {
		b.Run(c.name(), c.bench)
	}
}

// BenchmarkValidate measures Validate alone on the shapes of
// BenchmarkFair, at 10,000 tasks: what every Run pays for names before
// its first task starts.
func BenchmarkValidate(b *testing.B) {
	const n = 10_000
	for _, s := range fairShapes {
		b.Run(fmt.Sprintf("shape=%s/n=%d", s.name, n), func(b *testing.B) {
			tasks := bTasks(s.deps(n), false)
			bMeasure(b, n, func() {
				if err := dag.Validate(tasks); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDeclare measures what an adapter pays to declare 10,000 tasks
// that it holds as data (bSpec): with a closure per task (body=ctx), or
// with one Func for every task that finds its task from
// TaskInfoFromContext (body=ctx-onefunc), which saves the closures. The
// run of either costs the same (BenchmarkFair, body=ctx-onefunc).
func BenchmarkDeclare(b *testing.B) {
	const n = 10_000
	specs, names := bSpecs(bLayered(n)), bNames(n)
	for _, c := range []struct {
		body    string
		oneFunc bool
	}{{"ctx", false}, {"ctx-onefunc", true}} {
		b.Run("shape=layered/n=10000/body="+c.body, func(b *testing.B) {
			bMeasure(b, n, func() { bDeclare(specs, names, c.oneFunc) })
		})
	}
}

// bSleepCase measures the makespan of tasks that sleep 1 ms, 64 at a time,
// on the layered shape, with dag, the fair floor or the name-resolving
// floor, and reports it divided by its lower bound: max(critical path,
// total work / 64).
func bSleepCase(n int, exec string) func(b *testing.B) {
	return func(b *testing.B) {
		const sleep, parallel = time.Millisecond, 64
		deps := bLayered(n)
		tasks := bSleeper(deps, sleep)
		g := newFairGraph(deps)
		body := func(*fairGraph, int32, []any) { time.Sleep(sleep) }
		for b.Loop() {
			switch exec {
			case "dag":
				bRun(b, tasks, dag.Options{MaxParallel: parallel})
			case "fair":
				fairFloor(g, parallel, body, false)
			default:
				floor(tasks, parallel)
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
// that sleep 1 ms, beside the fair floor and the name-resolving floor.
func BenchmarkSleep(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		for _, exec := range []string{"dag", "fair", "floor"} {
			b.Run(fmt.Sprintf("shape=layered/n=%d/exec=%s", n, exec), bSleepCase(n, exec))
		}
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

			// So does the fair floor, which passes every task's value to
			// the tasks that depend on it.
			g := newFairGraph(deps)
			ran := make([]atomic.Int32, n)
			body := func(g *fairGraph, i int32, vals []any) {
				for _, d := range deps[i] {
					if ran[d].Load() != 1 {
						t.Errorf("fair floor ran task %d before its dependency %d", i, d)
					}
				}
				fairValues(g, i, vals)
				ran[i].Add(1)
			}
			vals := fairFloor(g, 4, body, true)
			for i := range ran {
				if r := ran[i].Load(); r != 1 || vals[i] != i {
					t.Fatalf("fair floor ran task %d %d times, with value %v; want once, with %d", i, r, vals[i], i)
				}
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
			// So does the Func shared by every task, which finds its task
			// from TaskInfoFromContext.
			job, err = dag.Run(t.Context(), bDeclare(bSpecs(deps), bNames(n), true), dag.Options{MaxParallel: 3})
			if err != nil {
				t.Fatal(err)
			}
			if res, err = job.Wait(); err != nil || len(res.Context) != n {
				t.Errorf("one Func for every task: Wait() = %d keys, %v; want %d, nil", len(res.Context), err, n)
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
		d := testing.Benchmark(bSleepCase(n, "dag"))
		f := testing.Benchmark(bSleepCase(n, "floor"))
		fmt.Fprintf(&sb, "| | %d | %.1f | %.1f | %.3f | %.2f |\n", n,
			d.Extra["ms/job"], f.Extra["ms/job"], d.Extra["ms/job"]/f.Extra["ms/job"], d.Extra["x-bound"])
	}
	t.Logf("\n%s", sb.String())
}

// TestFairTable runs BenchmarkFair's cases -dag.fair times, interleaved
// (every case once per round), with GOMAXPROCS 2, and prints for each
// shape, body and MaxParallel dag's ns/task, the fair floor's, and the
// range of their ratio over the rounds, each ratio taken within one round;
// then dag's cost at MaxParallel 64 over its cost at 2; then the sleep
// benchmark's makespans. It runs only with -dag.fair=N.
func TestFairTable(t *testing.T) {
	if *bFair <= 0 {
		t.Skip("run with -dag.fair=3 to print the table beside the fair floor")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	const n = 10_000
	cases := fairCases(n)
	type key struct {
		shape, body, exec string
		p                 int
	}
	ns := map[key][]float64{}
	cpu := map[key][]float64{}
	bytes := map[key][]float64{}
	for round := range *bFair {
		for _, c := range cases {
			r := testing.Benchmark(c.bench)
			k := key{c.shape, c.body, c.exec, c.p}
			ns[k] = append(ns[k], r.Extra["ns/task"])
			cpu[k] = append(cpu[k], r.Extra["cpu-ns/task"])
			bytes[k] = append(bytes[k], r.Extra["B/task"])
			t.Logf("round %d: %s: %.0f ns/task, %.0f cpu-ns/task", round+1, c.name(), r.Extra["ns/task"], r.Extra["cpu-ns/task"])
		}
	}
	span := func(xs []float64, format string) string {
		lo, hi := slices.Min(xs), slices.Max(xs)
		if fmt.Sprintf(format, lo) == fmt.Sprintf(format, hi) {
			return fmt.Sprintf(format, lo)
		}
		return fmt.Sprintf(format+"–"+format, lo, hi)
	}
	ratio := func(a, b []float64) []float64 {
		r := make([]float64, len(a))
		for i := range a {
			r[i] = a[i] / b[i]
		}
		return r
	}
	bodies := []string{"noop", "ctx", "ctx-onefunc"}
	fairBody := func(body string) string { return strings.TrimSuffix(body, "-onefunc") }
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d tasks, GOMAXPROCS %d, %s/%s, %s; ranges over %d interleaved rounds\n\n",
		n, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), *bFair)
	sb.WriteString("| shape | body | MaxParallel | fair ns/task | dag ns/task | dag / fair | dag / fair, CPU time | dag B/task | dag / name-resolving floor |\n")
	sb.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range fairShapes {
		for _, body := range bodies {
			for _, p := range []int{2, 64} {
				d, f := key{s.name, body, "dag", p}, key{s.name, fairBody(body), "fair", p}
				fl := "–"
				if o := ns[key{s.name, body, "floor", p}]; o != nil {
					fl = span(ratio(ns[d], o), "%.2f")
				}
				fmt.Fprintf(&sb, "| %s | %s | %d | %s | %s | %s | %s | %s | %s |\n", s.name, body, p,
					span(ns[f], "%.0f"), span(ns[d], "%.0f"), span(ratio(ns[d], ns[f]), "%.1f"),
					span(ratio(cpu[d], cpu[f]), "%.1f"), span(bytes[d], "%.0f"), fl)
			}
		}
	}
	sb.WriteString("\n| shape | body | dag p64 / p2 | dag p64 / p2, CPU time | fair p64 / p2 |\n|---|---|--:|--:|--:|\n")
	for _, s := range fairShapes {
		for _, body := range []string{"noop", "ctx"} {
			d64, d2 := key{s.name, body, "dag", 64}, key{s.name, body, "dag", 2}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s |\n", s.name, body,
				span(ratio(ns[d64], ns[d2]), "%.2f"), span(ratio(cpu[d64], cpu[d2]), "%.2f"),
				span(ratio(ns[key{s.name, body, "fair", 64}], ns[key{s.name, body, "fair", 2}]), "%.2f"))
		}
	}
	sb.WriteString("\n| sleep 1 ms, MaxParallel 64, layered | tasks | dag ms/job | fair ms/job | dag / fair | dag / lower bound |\n|---|--:|--:|--:|--:|--:|\n")
	for _, n := range []int{1000, 10_000} {
		var d, f, bound []float64
		for range *bFair {
			rd := testing.Benchmark(bSleepCase(n, "dag"))
			rf := testing.Benchmark(bSleepCase(n, "fair"))
			d, f, bound = append(d, rd.Extra["ms/job"]), append(f, rf.Extra["ms/job"]), append(bound, rd.Extra["x-bound"])
		}
		fmt.Fprintf(&sb, "| | %d | %s | %s | %s | %s |\n", n, span(d, "%.1f"), span(f, "%.1f"), span(ratio(d, f), "%.3f"), span(bound, "%.2f"))
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
	job, err := dag.Run(context.Background(), tasks, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Wait()
	if err != nil {
		t.Fatal(err)
	}
	ran := time.Since(t0)
	close(stop)
	wg.Wait()
	// What the Result holds once the job's own state is collected: the
	// peak, above, depends on when the collector ran; this does not.
	runtime.GC()
	kept := bHeap() - base
	runtime.KeepAlive(res)
	runtime.KeepAlive(tasks) // as a program that declared them would
	t.Logf("1,000,000 layered tasks: Validate %v; Run+Wait %v (%.0f ns/task); peak heap %d MiB above the %d MiB the task slice holds; the Result holds %d MiB",
		validated.Round(time.Millisecond), ran.Round(time.Millisecond), float64(ran.Nanoseconds())/1e6,
		(peak.Load()-base)>>20, base>>20, kept>>20)
}

// bHeap returns the bytes of live and not yet swept heap objects.
func bHeap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
