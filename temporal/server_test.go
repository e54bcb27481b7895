package dagtemporal_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dagrun/dag"
	dagtemporal "github.com/dagrun/dag/temporal"
	"github.com/google/go-cmp/cmp"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

var record = flag.Bool("record", false, "write the histories of the server test's job to testdata, for TestReplay")

// cliInstall is how to install the Temporal CLI, whose dev server the
// server test runs.
const cliInstall = "go install github.com/temporalio/cli/cmd/temporal@v1.5.1"

// The durable job: a, b, then the group g (x, then slow), then a Map and a
// task with a When. The worker started first blocks in g/slow until it is
// killed; the second one lets it finish.
const durableName = "durable"

// sideFile and generation are set in a worker process.
var sideFile, generation string

// record appends "done name" to the side file: a task that completed.
// O_APPEND makes each line one write that no other process interleaves.
func done(ctx context.Context, name string) error {
	f, err := os.OpenFile(sideFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "done %s\n", name)
	return err
}

func durableTasks() []dag.Task {
	step := func(name, key string, v any) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{key: v}, done(ctx, name)
		}
	}
	square := dag.Map("square", "numbers", "squares", func(ctx context.Context, n int) (int, error) {
		return n * n, done(ctx, fmt.Sprintf("square/%d", n))
	})
	square.DependsOn = []string{"g"}
	return []dag.Task{
		{Name: "a", Func: step("a", "numbers", []int{1, 2, 3})},
		{Name: "b", Func: step("b", "b", 2)},
		{Name: "g", DependsOn: []string{"a", "b"}, Sub: []dag.Task{
			{Name: "x", Func: step("g/x", "x", "x")},
			{Name: "slow", DependsOn: []string{"x"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				if generation == "1" {
					fmt.Println("started g/slow")
					<-ctx.Done() // until the process is killed
					return nil, ctx.Err()
				}
				return map[string]any{"slow": true}, done(ctx, "g/slow")
			}},
		}},
		square,
		{Name: "maybe", DependsOn: []string{"square"}, When: func(in dag.Values) bool {
			s, _ := dag.Lookup[[]int](in, "squares")
			return len(s) == 3
		}, Func: step("maybe", "maybe", "yes")},
	}
}

func durableWorkflow() *dagtemporal.Workflow {
	// A short HeartbeatTimeout: the server retries the killed worker's
	// activity within two seconds.
	return &dagtemporal.Workflow{Name: durableName, Tasks: durableTasks(), HeartbeatTimeout: 2 * time.Second}
}

// workerMain runs a worker in this process, for TestServer, until SIGTERM
// or SIGKILL.
func workerMain(spec string) {
	parts := strings.Split(spec, "|") // address|task queue|side file|generation
	addr, queue := parts[0], parts[1]
	sideFile, generation = parts[2], parts[3]
	c, err := client.Dial(client.Options{HostPort: addr, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	w := worker.New(c, queue, worker.Options{})
	if err := durableWorkflow().Register(w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("worker ready")
	if err := w.Run(worker.InterruptCh()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func quietLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

// findCLI finds the temporal binary: $DAGTEMPORAL_CLI, then PATH, then
// where go install puts it.
func findCLI(t *testing.T) string {
	if p := os.Getenv("DAGTEMPORAL_CLI"); p != "" {
		return p
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	dirs := []string{os.Getenv("GOBIN")}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(gp, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "temporal")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("the Temporal CLI (its dev server) is not installed; install it with\n\t%s\nor set DAGTEMPORAL_CLI to its path", cliInstall)
	return ""
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// process is a child process whose stdout lines arrive on a channel.
type process struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func start(t *testing.T, name string, args []string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 100), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for it
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLine waits for a line of p's stdout that starts with prefix.
func (p *process) waitLine(t *testing.T, prefix string, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s ended before printing %q", p.cmd.Path, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-timeout:
			t.Fatalf("%s did not print %q within %v", p.cmd.Path, prefix, within)
		}
	}
}

// TestServer runs a job on a real Temporal server, kills its worker with
// SIGKILL in the middle, starts another, and checks that the job completes
// and that no task that had completed ran again.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	cli := findCLI(t)
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + port
	server := start(t, cli, []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", port,
		"--http-port", freePort(t), "--metrics-port", freePort(t), "--db-filename", filepath.Join(dir, "temporal.db"), "--log-level", "error"})
	server.waitLine(t, "Server:", 2*time.Minute)

	c, err := client.Dial(client.Options{HostPort: addr, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	side := filepath.Join(dir, "side.txt")
	const queue = "dag-test"
	worker := func(gen string) *process {
		p := start(t, os.Args[0], []string{"-test.run=^$"}, "DAGTEMPORAL_TEST_WORKER="+strings.Join([]string{addr, queue, side, gen}, "|"))
		p.waitLine(t, "worker ready", time.Minute)
		return p
	}
	first := worker("1")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := dagtemporal.Start(ctx, c, durableName, client.StartWorkflowOptions{ID: "durable-job", TaskQueue: queue},
		dag.Options{Name: "durable", MaxRetries: 2, MaxParallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	first.waitLine(t, "started g/slow", time.Minute)

	// While g/slow runs: the client reads the job's progress, with the
	// group's tasks from its child workflow.
	states, err := job.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStates := map[string]dag.State{"a": dag.Completed, "b": dag.Completed, "g": dag.Running, "g/x": dag.Completed,
		"g/slow": dag.Running, "square": dag.Pending, "maybe": dag.Pending}
	if diff := cmp.Diff(wantStates, states); diff != "" {
		t.Errorf("States() mid-job (-want +got):\n%s", diff)
	}
	p, err := job.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (dag.Progress{Job: "durable", State: dag.Running, Completed: 3, Running: 2, Pending: 2}); p != want {
		t.Errorf("Progress() mid-job = %+v; want %+v", p, want)
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	worker("2")

	res, err := job.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Context["maybe"] != "yes" || !cmp.Equal(res.Context["squares"], []int{1, 4, 9}) {
		t.Errorf("Context = %v; want maybe: yes and squares: [1 4 9]", res.Context)
	}
	if n := res.Tasks["g/slow"].Attempts; n != 2 {
		t.Errorf("g/slow made %d attempts; want 2 (one on each worker)", n)
	}
	b, err := os.ReadFile(side)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(lines)
	want := []string{"done a", "done b", "done g/slow", "done g/x", "done maybe", "done square/1", "done square/2", "done square/3"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("tasks completed (-want +got): a completed task ran again, or one did not run\n%s", diff)
	}

	if *record {
		for _, id := range []string{"durable-job", "durable-job/g"} {
			recordHistory(t, ctx, c, id)
		}
	}
}

// recordHistory writes the history of workflow id to testdata, as the
// Temporal CLI's "workflow show --output json" does.
func recordHistory(t *testing.T, ctx context.Context, c client.Client, id string) {
	it := c.GetWorkflowHistory(ctx, id, "", false, 0)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: " "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join("testdata", strings.ReplaceAll(id, "/", "_")+".history.json")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", name)
}
