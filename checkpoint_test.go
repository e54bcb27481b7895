package dag_test

// The crash test of Options.Checkpoint with a FileStore, with a real
// process and a real SIGKILL, and the checkpoint benchmark.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

var (
	crashKills = flag.Int("dag.crashkills", 50, "how many times TestCheckpointCrash kills its child process")
	crashSeed  = flag.Uint64("dag.crashseed", 0, "seed of TestCheckpointCrash's kill times; 0 picks one (logged)")
)

const (
	crashJob   = "crash/job"
	crashTasks = 240
	crashEnv   = "DAG_TEST_CRASH_CHILD"
)

// crashDAG is the crash test's job: a random DAG of fixed seed in which
// each task records that it ran, works for a moment, and writes a value
// computed from its dependencies' values, so that a task that saw a wrong
// or missing value shows in the final context.
func crashDAG(record func(string)) []dag.Task {
	r := rand.New(rand.NewPCG(2024, 9))
	tasks := make([]dag.Task, crashTasks)
	for i := range tasks {
		name := fmt.Sprintf("t%03d", i)
		var deps []string
		for range r.IntN(4) {
			if i > 0 {
				if d := fmt.Sprintf("t%03d", r.IntN(i)); !slices.Contains(deps, d) {
					deps = append(deps, d)
				}
			}
		}
		work := time.Duration(r.IntN(3000)) * time.Microsecond
		tasks[i] = dag.Task{Name: name, DependsOn: deps, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			record("ran " + name)
			sum := i + 1
			for _, d := range deps {
				v, err := dag.Lookup[int](in, "v"+d)
				if err != nil {
					return nil, err
				}
				sum = (sum*31 + v) % 1_000_003
			}
			time.Sleep(work) // the task's work, not a synchronization
			return map[string]any{"v" + name: sum, "s" + name: fmt.Sprint(name, "=", sum)}, nil
		}}
	}
	return tasks
}

// recordingStore is a FileStore that records "saved <task>" in the side
// file once Save has returned: from then on, the task must never run
// again. Lock is the FileStore's, so Run locks the job.
type recordingStore struct {
	*dag.FileStore
	record func(string)
}

func (s recordingStore) Save(ctx context.Context, job, task string, r dag.TaskResult) error {
	err := s.FileStore.Save(ctx, job, task, r)
	if err == nil {
		s.record("saved " + task)
	}
	return err
}

// crashResult is what the child writes when its job completes.
type crashResult struct {
	Context  map[string]any
	Restored []string
}

// crashChild runs the job with a checkpoint in dir, as a child process of
// TestCheckpointCrash. Every line it appends to the side file is one
// write(2) on a file opened with O_APPEND, so lines of successive children
// stay whole and in order.
func crashChild(dir string) error {
	side, err := os.OpenFile(filepath.Join(dir, "side"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer side.Close()
	record := func(line string) {
		if _, err := side.WriteString(line + "\n"); err != nil {
			panic(err)
		}
	}
	fs, err := dag.NewFileStore(filepath.Join(dir, "store"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	if _, err := fs.Load(ctx, crashJob); err != nil && !errors.Is(err, dag.ErrNoCheckpoint) {
		record("load " + strings.ReplaceAll(err.Error(), "\n", " "))
		return err
	}
	record("start")
	fmt.Println("running") // the parent starts its kill timer
	job, err := dag.Run(ctx, crashDAG(record), dag.Options{
		Name: crashJob, MaxParallel: 8, Checkpoint: recordingStore{fs, record},
	})
	if err != nil {
		return err
	}
	res, err := job.Wait()
	if err != nil {
		return err
	}
	out := crashResult{Context: res.Context}
	for name, tr := range res.Tasks {
		if tr.Restored {
			out.Restored = append(out.Restored, name)
		}
	}
	f, err := os.Create(filepath.Join(dir, "result"))
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(f).Encode(out); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	record("done")
	return nil
}

// TestCheckpointCrash runs a checkpointed job of 240 tasks in a child
// process and SIGKILLs it at random moments, 50 times by default
// (-dag.crashkills), starting a new child after each kill until the job
// completes, and then another job until every kill is done. For each job
// it checks that:
//   - no task whose Save had returned ran again;
//   - every task ran at least once;
//   - the final context is the one an uninterrupted run gives;
//   - every task saved before the last child started was restored by it;
//   - Load never reported corruption, and the completed job's checkpoint
//     is cleared.
func TestCheckpointCrash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Println("child:", err)
			os.Exit(3)
		}
		return
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("needs SIGKILL and a flock between processes")
	}
	t.Parallel()

	// What an uninterrupted run gives, in this process.
	job, err := dag.Run(context.Background(), crashDAG(func(string) {}), dag.Options{MaxParallel: 8})
	if err != nil {
		t.Fatal(err)
	}
	res, err := job.Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := res.Context

	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("kill times from seed %d (-dag.crashseed)", seed)
	r := rand.New(rand.NewPCG(seed, 0))

	base := t.TempDir()
	fs, err := dag.NewFileStore(filepath.Join(base, "store"))
	if err != nil {
		t.Fatal(err)
	}
	// The time from a child's start to its kill is drawn up to maxDelay,
	// which grows to twice the longest run of a child that ended before
	// its kill, so that on a slow machine too most kills land mid-job.
	maxDelay := 30 * time.Millisecond
	limit := time.Minute
	if d, ok := t.Deadline(); ok {
		limit = time.Until(d) / 2
	}
	sideName := filepath.Join(base, "side")
	kills, jobs, children, saves := 0, 0, 0, 0
	for {
		jobs++
		children0 := children
		clean := true // the job's last child ended by itself
		for {
			children++
			killAt := time.Duration(-1)
			if kills < *crashKills {
				killAt = time.Duration(r.Int64N(int64(maxDelay)))
			}
			killed, ran, err := runCrashChild(base, killAt, limit)
			if err != nil {
				side, _ := os.ReadFile(sideName)
				t.Fatalf("job %d, child %d: %v\nside file:\n%s", jobs, children, err, tail(side, 20))
			}
			// The kill leaves the log as a crash does: never corrupt.
			_, err = fs.Load(context.Background(), crashJob)
			if err != nil && !errors.Is(err, dag.ErrNoCheckpoint) {
				t.Fatalf("job %d, after child %d: Load = %v", jobs, children, err)
			}
			if !killed {
				maxDelay = max(maxDelay, 2*ran)
				break
			}
			kills++
			// A job whose checkpoint is gone although a Save returned has
			// completed (Run clears the checkpoint then), but its child was
			// killed before it could say so: the next child starts the job
			// afresh.
			if errors.Is(err, dag.ErrNoCheckpoint) && sideHas(t, sideName, "saved ") {
				clean = false
				break
			}
		}
		saves += checkCrashJob(t, fs, base, want, jobs, children-children0, clean)
		if t.Failed() {
			return
		}
		for _, name := range []string{"side", "result"} {
			if err := os.Rename(filepath.Join(base, name), filepath.Join(base, fmt.Sprint(name, ".", jobs))); err != nil && !(name == "result" && errors.Is(err, os.ErrNotExist)) {
				t.Fatal(err)
			}
		}
		if kills >= *crashKills && clean {
			break
		}
	}
	t.Logf("%d kills, %d children, %d jobs, %d Saves recorded", kills, children, jobs, saves)
	if saves == 0 {
		t.Fatal("no Save returned in any child: Run does not save to Options.Checkpoint")
	}
}

// runCrashChild starts a child on the job in dir and kills it killAt after
// it starts running the job, unless the child ends first. It returns
// whether the kill ended it, or how long it ran. A negative killAt lets the
// child finish, within limit.
func runCrashChild(dir string, killAt, limit time.Duration) (killed bool, ran time.Duration, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointCrash$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return false, 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return false, 0, err
	}
	out := bufio.NewReader(stdout)
	line, _ := out.ReadString('\n')
	t0 := time.Now()
	if line != "running\n" {
		rest, _ := out.ReadString(0)
		cmd.Wait()
		return false, 0, fmt.Errorf("child did not start the job: %s%s%s", line, rest, stderr.String())
	}
	// The goroutine ends when the child does, which the kill ensures.
	waited := make(chan error, 1)
	go func() {
		rest, _ := out.ReadString(0)
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s%s", err, rest, stderr.String())
		}
		waited <- err
	}()
	hung := killAt < 0 // a child left to finish that does not: kill it, and fail
	if hung {
		killAt = limit
	}
	timer := time.NewTimer(killAt)
	defer timer.Stop()
	select {
	case <-timer.C:
		cmd.Process.Kill() // SIGKILL
		err = <-waited
		if hung {
			return false, 0, fmt.Errorf("child still running after %v; killed", limit)
		}
	case err = <-waited:
	}
	ran = time.Since(t0)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return true, ran, nil
	}
	return false, ran, err
}

// checkCrashJob checks the side file and the result of a completed job,
// and returns how many Saves the side file recorded.
//
// If the job's last child was killed after the job completed (clean is
// false), only the side file is checked: the child wrote no result.
func checkCrashJob(t *testing.T, fs *dag.FileStore, dir string, want map[string]any, job, children int, clean bool) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "side"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	lastStart := slices.Index(lines, "start")
	for i, l := range lines {
		if l == "start" {
			lastStart = i
		}
	}
	ran := make(map[string]int)
	saved := make(map[string]int) // the line of the first "saved"
	savedBeforeLast := map[string]bool{}
	for i, l := range lines {
		verb, task, _ := strings.Cut(l, " ")
		switch verb {
		case "ran":
			ran[task]++
			if at, ok := saved[task]; ok {
				t.Errorf("job %d: task %s ran again (line %d) after its Save returned (line %d)", job, task, i+1, at+1)
			}
		case "saved":
			if _, ok := saved[task]; !ok {
				saved[task] = i
			}
			if i < lastStart {
				savedBeforeLast[task] = true
			}
		case "load":
			t.Errorf("job %d: a child's Load failed: %s", job, task)
		case "start", "done":
		default:
			t.Errorf("job %d: unexpected line %d in the side file: %q", job, i+1, l)
		}
	}
	for i := range crashTasks {
		if name := fmt.Sprintf("t%03d", i); ran[name] == 0 {
			t.Errorf("job %d: task %s never ran", job, name)
		}
	}

	if !clean {
		t.Logf("job %d: %d children, %d Saves recorded; the last was killed after the job completed", job, children, len(saved))
		return len(saved)
	}
	f, err := os.Open(filepath.Join(dir, "result"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res crashResult
	if err := gob.NewDecoder(f).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, res.Context); d != "" {
		t.Errorf("job %d: final context differs from an uninterrupted run's (-want +got):\n%s", job, d)
	}
	for task := range savedBeforeLast {
		if !slices.Contains(res.Restored, task) {
			t.Errorf("job %d: task %s was saved before the last child started, which did not restore it", job, task)
		}
	}
	if _, err := fs.Load(context.Background(), crashJob); !errors.Is(err, dag.ErrNoCheckpoint) {
		t.Errorf("job %d: Load after the job completed = %v; want ErrNoCheckpoint", job, err)
	}
	t.Logf("job %d: %d children, %d Saves recorded, %d tasks restored by the last", job, children, len(saved), len(res.Restored))
	return len(saved)
}

// sideHas reports whether the side file has a line starting with prefix.
func sideHas(t *testing.T, name, prefix string) bool {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return bytes.HasPrefix(data, []byte(prefix)) || bytes.Contains(data, []byte("\n"+prefix))
}

func tail(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// cpTasks is the layered shape of the benchmarks with n tasks, each
// sleeping d (if not 0) and writing a value, as checkpointed tasks do.
func cpTasks(n int, d time.Duration) []dag.Task {
	tasks := bTasks(bLayered(n), false)
	for i := range tasks {
		key := bKey(int32(i))
		tasks[i].Func = func(context.Context, dag.Values) (map[string]any, error) {
			if d > 0 {
				time.Sleep(d)
			}
			return map[string]any{key: i}, nil
		}
	}
	return tasks
}

// BenchmarkCheckpoint measures what a FileStore as Options.Checkpoint
// costs, beside no store, in the same run: the makespan of 1,000 tasks
// that sleep 10 ms, 64 at a time (ms/job), and the cost per task of
// 1,000 no-op tasks (ns/task). Each task writes one int, so each Save
// encodes a value; the store is in b.TempDir, on this machine's disk.
func BenchmarkCheckpoint(b *testing.B) {
	for _, c := range []struct {
		name  string
		sleep time.Duration
		par   int
	}{
		{"sleep=10ms", 10 * time.Millisecond, 64},
		{"noop", 0, 0},
	} {
		tasks := cpTasks(1000, c.sleep)
		for _, store := range []string{"none", "file"} {
			b.Run(c.name+"/store="+store, func(b *testing.B) {
				opts := dag.Options{Name: "bench", MaxParallel: c.par}
				var saves atomic.Int64
				if store == "file" {
					fs, err := dag.NewFileStore(b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					opts.Checkpoint = countingStore{fs, &saves}
				}
				b.ReportAllocs()
				for b.Loop() {
					bRun(b, tasks, opts)
				}
				per := b.Elapsed() / time.Duration(b.N)
				if c.sleep > 0 {
					b.ReportMetric(float64(per.Microseconds())/1000, "ms/job")
				} else {
					b.ReportMetric(float64(per.Nanoseconds())/float64(len(tasks)), "ns/task")
				}
				if store == "file" {
					b.ReportMetric(float64(saves.Load())/float64(b.N)/float64(len(tasks)), "saves/task")
				}
			})
		}
	}
}

// countingStore counts Saves, so that the benchmark shows the store is
// used.
type countingStore struct {
	*dag.FileStore
	n *atomic.Int64
}

func (s countingStore) Save(ctx context.Context, job, task string, r dag.TaskResult) error {
	s.n.Add(1)
	return s.FileStore.Save(ctx, job, task, r)
}

// TestCheckpointRerunNotRestoredLater checks that a task that runs again
// in a resumed run, and fails, is not restored later from the checkpoint
// of the run before: its saved output was computed from inputs that have
// changed since. Here B runs without A's output (A failed, with
// ContinueOnFailure) in run 1; in run 2, A completes and B runs again and
// fails; in run 3, B must run again and see A's output, as an
// uninterrupted run would.
func TestCheckpointRerunNotRestoredLater(t *testing.T) {
	t.Parallel()
	fs, err := dag.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var run int
	tasks := []dag.Task{
		{Name: "A", ContinueOnFailure: true, Func: func(context.Context, dag.Values) (map[string]any, error) {
			if run == 1 {
				return nil, errors.New("A fails in run 1")
			}
			return map[string]any{"a": run}, nil
		}},
		{Name: "B", DependsOn: []string{"A"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			if run == 2 {
				return nil, errors.New("B fails in run 2")
			}
			a, err := dag.Lookup[int](in, "a")
			if err != nil {
				return map[string]any{"b": "without a"}, nil
			}
			return map[string]any{"b": fmt.Sprint("a=", a)}, nil
		}},
		{Name: "C", DependsOn: []string{"B"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
			if run == 1 {
				return nil, errors.New("C fails in run 1")
			}
			return nil, nil
		}},
	}
	var res dag.Result
	for run = 1; run <= 3; run++ {
		job, err := dag.Run(context.Background(), tasks, dag.Options{Name: "stale", Checkpoint: fs})
		if err != nil {
			t.Fatal(err)
		}
		res, err = job.Wait()
		if (err == nil) != (run == 3) {
			t.Fatalf("run %d: Wait = %v", run, err)
		}
	}
	if got := res.Context["b"]; got != "a=2" || res.Tasks["B"].Restored {
		t.Errorf("run 3: b = %v, B restored %v; want %q from B run again with A's output of run 2", got, res.Tasks["B"].Restored, "a=2")
	}
}
