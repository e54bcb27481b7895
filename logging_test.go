package dag_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dagrun/dag"
)

// lgChildEnv makes the test binary run TestLoggerChild as the program of
// TestLoggerNeverLoses.
const lgChildEnv = "DAG_LOGGER_CHILD"

// lgTasks is the job of TestLoggerNeverLoses: twenty tasks at once, a join,
// and a last task that fails, so the error is among the last records.
func lgTasks() []dag.Task {
	ok := func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
	var tasks []dag.Task
	var names []string
	for i := range 20 {
		name := fmt.Sprintf("t%02d", i)
		tasks = append(tasks, dag.Task{Name: name, Func: ok})
		names = append(names, name)
	}
	return append(tasks,
		dag.Task{Name: "join", DependsOn: names, Func: ok},
		dag.Task{Name: "last", DependsOn: []string{"join"}, Func: func(context.Context, dag.Values) (map[string]any, error) {
			return nil, errors.New("the last task fails")
		}},
	)
}

// TestLoggerChild is the program TestLoggerNeverLoses runs: it logs a job
// with Options.Logger on stdout, waits for it and exits at once.
func TestLoggerChild(t *testing.T) {
	if os.Getenv(lgChildEnv) != "1" {
		t.Skip("the program of TestLoggerNeverLoses")
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	job, err := dag.Run(context.Background(), lgTasks(), dag.Options{Name: "child", Logger: logger})
	if err != nil {
		os.Exit(3)
	}
	job.Wait()
	os.Exit(0)
}

// TestLoggerNeverLoses runs a program that logs a job with Options.Logger,
// calls Wait and exits at once, 50 times: every run must have logged every
// event, the job's final one last.
func TestLoggerNeverLoses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a program 50 times")
	}
	// The events the job has, counted in this process.
	events := make(chan dag.Event)
	job, err := dag.Run(t.Context(), lgTasks(), dag.Options{Name: "child", Events: events})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for range events {
		want++
	}
	job.Wait()

	const runs, parallel = 50, 4
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	counts := make([]int, runs)
	errs := make([]error, runs)
	for i := range runs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			counts[i], errs[i] = lgRunChild()
		})
	}
	wg.Wait()
	for i := range runs {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
		} else if counts[i] != want {
			t.Errorf("run %d logged %d records; want %d", i, counts[i], want)
		}
	}
}

// lgRunChild runs TestLoggerChild in a new process and counts its records.
func lgRunChild() (int, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoggerChild$", "-test.count=1")
	// The race detector sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), lgChildEnv+"=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, stderr.Bytes())
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	last := ""
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "time=") {
			return 0, fmt.Errorf("not a record: %q", sc.Text())
		}
		n++
		last = sc.Text()
	}
	if !strings.Contains(last, `msg="dag: job" job=child from=running to=failed`) {
		return n, fmt.Errorf("the last record is %q; want the job's final one", last)
	}
	return n, nil
}

// lgHandler is a slog.Handler that keeps "to=state" of each record and can
// hold the record of the job's end until released.
type lgHandler struct {
	mu      sync.Mutex
	records []string
	ending  chan struct{} // closed when the job's final record arrives
	release chan struct{} // the final record is written once this is closed
	written chan struct{} // closed once the final record is written
}

func (h *lgHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *lgHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lgHandler) WithGroup(string) slog.Handler            { return h }
func (h *lgHandler) Handle(_ context.Context, r slog.Record) error {
	var task, to string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "task":
			task = a.Value.String()
		case "to":
			to = a.Value.String()
		}
		return true
	})
	final := task == "" && to != "running"
	if final && h.ending != nil {
		close(h.ending)
		<-h.release
	}
	h.mu.Lock()
	h.records = append(h.records, task+" "+to)
	h.mu.Unlock()
	if final && h.written != nil {
		close(h.written)
	}
	return nil
}

func (h *lgHandler) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}

// TestLoggerWaitsForHandler checks that neither Done nor Wait ends while
// the Handler still writes the job's last record.
func TestLoggerWaitsForHandler(t *testing.T) {
	t.Parallel()
	h := &lgHandler{ending: make(chan struct{}), release: make(chan struct{})}
	job, err := dag.Run(t.Context(), lgTasks()[:3], dag.Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	<-h.ending // the job has ended; its last record is being written
	select {
	case <-job.Done():
		t.Fatal("Done is closed while the Handler writes the last record")
	default:
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		job.Wait()
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned while the Handler writes the last record")
	default:
	}
	close(h.release)
	<-waited
	<-job.Done()
	got := h.got()
	if len(got) != 1+3*3+1 || got[len(got)-1] != " completed" {
		t.Errorf("records %q; want 11, the job's completion last", got)
	}
}

// TestLoggerWithEvents checks that Logger and Events together both see
// every event in the same order, and that Wait waits for the log but not
// for the Events reader.
func TestLoggerWithEvents(t *testing.T) {
	t.Parallel()
	h := &lgHandler{}
	events := make(chan dag.Event) // nobody reads until Wait returns
	job, err := dag.Run(t.Context(), lgTasks(), dag.Options{Logger: slog.New(h), Events: events, MaxParallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	job.Wait()
	logged := h.got()
	var read []string
	for e := range events {
		read = append(read, e.Task+" "+e.To.String())
	}
	if diff := cmp.Diff(read, logged); diff != "" {
		t.Errorf("the log and Events differ (-events +log):\n%s", diff)
	}
	if len(logged) != 1+22*3+1 {
		t.Errorf("%d records; want %d", len(logged), 1+22*3+1)
	}
}

// TestLogEventsReused checks that Run refuses a LogEvents channel that a
// job used, while that job runs and after it ended, and leaves it to the
// job that owns it.
func TestLogEventsReused(t *testing.T) {
	t.Parallel()
	h := &lgHandler{written: make(chan struct{})}
	logs := dag.LogEvents(slog.New(h))
	block := make(chan struct{})
	first, err := dag.Run(t.Context(), []dag.Task{{Name: "a", Func: func(context.Context, dag.Values) (map[string]any, error) {
		<-block
		return nil, nil
	}}}, dag.Options{Name: "first", Events: logs})
	if err != nil {
		t.Fatal(err)
	}
	tasks := []dag.Task{{Name: "b", Func: func(context.Context, dag.Values) (map[string]any, error) { return nil, nil }}}
	_, err = dag.Run(t.Context(), tasks, dag.Options{Name: "second", Events: logs})
	if !errors.Is(err, dag.ErrInvalidOptions) || !strings.Contains(err.Error(), `job "first"`) {
		t.Errorf("Run with a LogEvents channel in use = %v; want ErrInvalidOptions naming job \"first\"", err)
	}
	close(block)
	first.Wait()
	<-h.written // the first job's events were all logged: the channel stayed open
	if got := h.got(); len(got) != 5 {
		t.Errorf("the first job logged %q; want its 5 events", got)
	}
	_, err = dag.Run(t.Context(), tasks, dag.Options{Name: "third", Events: logs})
	if !errors.Is(err, dag.ErrInvalidOptions) {
		t.Errorf("Run with a used LogEvents channel = %v; want ErrInvalidOptions", err)
	}
	// A new channel from LogEvents, and a plain channel, are accepted.
	job, err := dag.Run(t.Context(), tasks, dag.Options{Events: dag.LogEvents(slog.New(&lgHandler{}))})
	if err != nil {
		t.Fatalf("Run with a new LogEvents channel = %v", err)
	}
	job.Wait()
}

// A program that logs with Options.Logger may exit as soon as Wait
// returns: every record has been written.
func ExampleOptions_logger() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	job, err := dag.Run(context.Background(), []dag.Task{{
		Name: "hello",
		Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return nil, errors.New("no one is listening")
		},
	}}, dag.Options{Name: "greeter", Logger: logger})
	if err != nil {
		fmt.Println(err)
		return
	}
	job.Wait()
	// The logger's level is Info: the debug records (ready, running) are
	// left out.

	// Output:
	// level=INFO msg="dag: job" job=greeter from=pending to=running
	// level=ERROR msg="dag: task" job=greeter task=hello from=running to=failed attempt=1 err="no one is listening"
	// level=ERROR msg="dag: job" job=greeter from=running to=failed err="dag: job \"greeter\": task \"hello\" failed after 1 attempt: no one is listening"
}
