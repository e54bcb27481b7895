package dag_test

// The errors a job returns: *TaskError, *PanicError, and the "dag: "
// prefix said once.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestRunTaskError checks the error Wait returns for a failed task: a
// *TaskError naming the job and the task, with the attempts made, through
// which errors.Is finds the task's own error.
func TestRunTaskError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		job      string
		retries  int
		err      error
		attempts int
		msg      []string
	}{
		{"named job, retried", "nightly", 2, fmt.Errorf("fetching: %w", errBoom), 3, []string{`job "nightly"`, `task "fetch"`, "3 attempts", "boom"}},
		{"unnamed job, once", "", dag.NoRetries, errBoom, 1, []string{`task "fetch"`, "1 attempt:", "boom"}},
		{"permanent", "nightly", 5, backoff.Permanent(fmt.Errorf("fetching: %w", errBoom)), 1, []string{`job "nightly"`, `task "fetch"`, "1 attempt:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tasks := []dag.Task{
				{Name: "fetch", MaxRetries: tc.retries, Func: func(context.Context, dag.Values) (map[string]any, error) {
					calls.Add(1)
					return nil, tc.err
				}},
				{Name: "after", DependsOn: []string{"fetch"}, Func: noop},
			}
			res, err := runTasks(t, tasks, dag.Options{Name: tc.job, Backoff: func() backoff.BackOff { return &backoff.ZeroBackOff{} }})
			if !errors.Is(err, errBoom) {
				t.Errorf("Wait() = %v; want an error matching the task's %v", err, errBoom)
			}
			var te *dag.TaskError
			if !errors.As(err, &te) {
				t.Fatalf("Wait() = %v; want a *TaskError", err)
			}
			if te.Job != tc.job || te.Task != "fetch" || te.Attempts != tc.attempts || !errors.Is(te.Err, errBoom) {
				t.Errorf("TaskError = {Job: %q, Task: %q, Attempts: %d, Err: %v}; want {%q, %q, %d, boom}", te.Job, te.Task, te.Attempts, te.Err, tc.job, "fetch", tc.attempts)
			}
			if int(calls.Load()) != tc.attempts {
				t.Errorf("Func called %d times; want %d", calls.Load(), tc.attempts)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Wait() = %q; want it to contain %q", err, s)
				}
			}
			if res.State != dag.Failed || res.Tasks["fetch"].State != dag.Failed || res.Tasks["after"].State != dag.Canceled {
				t.Errorf("states: job %v, fetch %v, after %v; want failed, failed, canceled", res.State, res.Tasks["fetch"].State, res.Tasks["after"].State)
			}
		})
	}
}

// TestRunPanicError checks that a panicking task fails with a *PanicError
// carrying the value and the stack, that errors.Is sees through it to an
// error value, and that the job reports it as a TaskError.
func TestRunPanicError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		value any
		isErr bool
	}{
		{"error", fmt.Errorf("wrapped: %w", errBang), true},
		{"string", "not an error", false},
		{"int", 42, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []dag.Task{{Name: "bomb", Func: func(context.Context, dag.Values) (map[string]any, error) {
				panicker(tc.value)
				return nil, nil
			}}}
			res, err := runTasks(t, tasks, dag.Options{Name: "pj"})
			var pe *dag.PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("Wait() = %v; want a *PanicError inside", err)
			}
			if diff := cmp.Diff(tc.value, pe.Value, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("PanicError.Value mismatch (-want +got):\n%s", diff)
			}
			if got := errors.Is(err, errBang); got != tc.isErr {
				t.Errorf("errors.Is(Wait(), bang) = %v; want %v", got, tc.isErr)
			}
			if !bytes.Contains(pe.Stack, []byte("panicker")) {
				t.Errorf("PanicError.Stack does not show the panicking function panicker:\n%s", pe.Stack)
			}
			if bytes.HasPrefix(pe.Stack, []byte("goroutine ")) {
				t.Errorf("PanicError.Stack starts with the goroutine header; want it trimmed")
			}
			if !strings.Contains(pe.Error(), fmt.Sprint(tc.value)) {
				t.Errorf("PanicError.Error() = %q; want it to show the value %v", pe.Error(), tc.value)
			}
			var te *dag.TaskError
			if !errors.As(err, &te) || te.Task != "bomb" || te.Job != "pj" {
				t.Errorf("Wait() = %v; want a *TaskError for task bomb of job pj", err)
			}
			if tr := res.Tasks["bomb"]; tr.State != dag.Failed || !errors.As(tr.Err, &pe) {
				t.Errorf("Result.Tasks[bomb] = %+v; want failed with a *PanicError", tr)
			}
		})
	}
}

// panicker panics with v; its name shows in the stack.
//
//go:noinline
func panicker(v any) { panic(v) }

// TestErrorPrefixOnce triggers every error a job can end with, and every
// error dag records for an attempt, and checks that each message starts
// with "dag: " and says it once: an error that dag shows inside another
// drops its own prefix (see errors.go). Each case also names what the
// message must say.
func TestErrorPrefixOnce(t *testing.T) {
	t.Parallel()
	block := func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	lookup := func(key string) dag.TaskFunc {
		return func(_ context.Context, in dag.Values) (map[string]any, error) {
			_, err := dag.Lookup[int](in, key)
			return nil, err
		}
	}
	cases := []struct {
		name  string
		tasks []dag.Task
		opts  dag.Options
		stop  func(job *dag.Job) // at 1s of fake time
		want  []string           // in Wait's error
		is    error
	}{
		{
			name:  "task error",
			tasks: []dag.Task{{Name: "a", Func: fail(errBoom)}},
			want:  []string{`task "a" failed after 1 attempt: boom`},
			is:    errBoom,
		},
		{
			name:  "attempt timeout",
			tasks: []dag.Task{{Name: "slow", Timeout: time.Second, MaxRetries: 1, Func: block}},
			opts:  dag.Options{Backoff: zeroBackoff},
			want:  []string{`task "slow" failed after 2 attempts: task "slow" timed out after 1s`},
			is:    context.DeadlineExceeded,
		},
		{
			name:  "missing key",
			tasks: []dag.Task{{Name: "reader", Func: lookup("n")}},
			want:  []string{`task "reader" failed after 1 attempt: key "n"`},
			is:    dag.ErrMissingKey,
		},
		{
			name:  "wrong type",
			tasks: []dag.Task{{Name: "reader", Func: lookup("n")}},
			opts:  dag.Options{Context: map[string]any{"n": "seven"}},
			want:  []string{`task "reader" failed after 1 attempt: key "n" holds a value of type string, not int`},
		},
		{
			name: "conflict",
			tasks: []dag.Task{
				{Name: "p", Func: succeed(map[string]any{"k": 1})},
				{Name: "q", Func: succeed(map[string]any{"k": 2})},
			},
			want: []string{`"p"`, `"q"`, `key "k"`},
			is:   dag.ErrConflict,
		},
		{
			name:  "Goexit",
			tasks: []dag.Task{{Name: "g", Func: func(context.Context, dag.Values) (map[string]any, error) { runtime.Goexit(); return nil, nil }}},
			want:  []string{`task "g" failed after 1 attempt: task called runtime.Goexit`},
		},
		{
			name:  "panic",
			tasks: []dag.Task{{Name: "p", Func: func(context.Context, dag.Values) (map[string]any, error) { panic("oops") }}},
			want:  []string{`task "p" failed after 1 attempt: panic: oops`},
		},
		{
			name:  "a task's error that is a sentinel",
			tasks: []dag.Task{{Name: "a", Func: fail(dag.ErrMissingKey)}},
			want:  []string{`task "a" failed after 1 attempt: key not in the job context`},
			is:    dag.ErrMissingKey,
		},
		{
			name:  "a backoff that panics",
			tasks: []dag.Task{{Name: "a", MaxRetries: 1, Func: fail(errBoom)}},
			opts:  dag.Options{Backoff: func() backoff.BackOff { panic("no policy") }},
			want:  []string{"failed after 1 attempt: boom\nBackoff panicked: no policy"},
			is:    errBoom,
		},
		{
			name:  "Job.Cancel",
			tasks: []dag.Task{{Name: "a", Func: block}},
			stop:  func(job *dag.Job) { job.Cancel() },
			want:  []string{"canceled"},
			is:    context.Canceled,
		},
		{
			name:  "Options.Timeout",
			tasks: []dag.Task{{Name: "a", Func: block}},
			opts:  dag.Options{Timeout: time.Second},
			want:  []string{"Timeout of 1s"},
			is:    context.DeadlineExceeded,
		},
	}
	for _, tc := range cases {
		for _, job := range []string{"", "nightly"} {
			t.Run(fmt.Sprintf("%s/job=%q", tc.name, job), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					opts := tc.opts
					opts.Name = job
					j, rec := startJob(t, t.Context(), tc.tasks, opts)
					if tc.stop != nil {
						time.Sleep(time.Second)
						tc.stop(j)
					}
					out := finishJob(t, j, rec, tc.tasks, opts) // checkJob checks the prefix of Wait's error
					if out.Err == nil {
						t.Fatal("Wait() = nil; want an error")
					}
					msg := out.Err.Error()
					for _, s := range tc.want {
						if !strings.Contains(msg, s) {
							t.Errorf("Wait() = %q; want it to contain %q", msg, s)
						}
					}
					if tc.is != nil && !errors.Is(out.Err, tc.is) {
						t.Errorf("Wait() = %v; want it to match %v", out.Err, tc.is)
					}
					if job != "" && !strings.HasPrefix(msg, fmt.Sprintf("dag: job %q", job)) {
						t.Errorf("Wait() = %q; want it to start with the job's name", msg)
					}
					// Every error dag recorded on its own starts with the
					// prefix once, and so does its event's String (less
					// the prefix, which String drops).
					for name, tr := range out.Res.Tasks {
						if tr.Err == nil || errors.Is(tr.Err, errBoom) || errors.As(tr.Err, new(*dag.PanicError)) {
							continue // the task's own error, not dag's
						}
						if m := tr.Err.Error(); !strings.HasPrefix(m, "dag: ") || strings.Count(m, "dag: ") != 1 {
							t.Errorf("Result.Tasks[%q].Err = %q; want it to start with \"dag: \" once", name, m)
						}
					}
					for _, e := range out.Events {
						if s := e.String(); strings.Contains(s, "dag: ") {
							t.Errorf("Event.String() = %q; want no \"dag: \" inside", s)
						}
					}
				})
			})
		}
	}
}

// TestErrorPrefixValidation checks the errors Run and Validate return:
// each line, one problem, starts with "dag: " once.
func TestErrorPrefixValidation(t *testing.T) {
	t.Parallel()
	tasks := []dag.Task{
		{Name: "a", Func: noop, DependsOn: []string{"b", "ghost"}},
		{Name: "b", Func: noop, DependsOn: []string{"a"}},
		{Name: "b", Func: noop},
		{Name: "", Func: noop},
		{Name: "lazy"},
	}
	_, err := dag.Run(t.Context(), tasks, dag.Options{MaxParallel: -1, Timeout: -1})
	if err == nil {
		t.Fatal("Run(…) = nil; want the problems")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) < 6 {
		t.Errorf("Run(…) = %q; want one line per problem", err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "dag: ") || strings.Count(l, "dag: ") != 1 {
			t.Errorf("line %q; want it to start with \"dag: \" once", l)
		}
	}
}

// TestTaskErrorDropsInnerPrefixes checks TaskError.Error on errors built by
// hand: the "dag: " that starts the inner error, or any of its lines, is
// dropped; one in the middle of a line is the task's own text and stays.
func TestTaskErrorDropsInnerPrefixes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"plain", errBoom, `dag: task "t" failed after 1 attempt: boom`},
		{"prefixed", errors.New("dag: inner"), `dag: task "t" failed after 1 attempt: inner`},
		{"joined", errors.Join(errors.New("dag: one"), errors.New("two"), errors.New("dag: three")), "dag: task \"t\" failed after 1 attempt: one\ntwo\nthree"},
		{"wrapped by the task", fmt.Errorf("load: %w", dag.ErrMissingKey), `dag: task "t" failed after 1 attempt: load: dag: key not in the job context`},
		{"nested TaskError", &dag.TaskError{Job: "j", Task: "g/c", Attempts: 2, Err: errBoom}, `dag: task "t" failed after 1 attempt: job "j": task "g/c" failed after 2 attempts: boom`},
		{"nil", nil, `dag: task "t" failed after 1 attempt: <nil>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := &dag.TaskError{Task: "t", Attempts: 1, Err: tc.err}
			if got := te.Error(); got != tc.want {
				t.Errorf("TaskError.Error() = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestPanicStackStartsAtPanic checks that PanicError.Stack starts at the
// function that panicked, with none of the recovery's frames
// (debug.Stack, newPanicError, the deferred recover, the runtime's
// panic), for a plain panic, a runtime error, and a panic raised while
// recovering another.
func TestPanicStackStartsAtPanic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fn    func()
		first string // the function of the first frame
		also  string // a function further down
	}{
		{"panic", func() { panicker("v") }, "github.com/dagrun/dag_test.panicker(", "TestPanicStackStartsAtPanic"},
		{"nil map", writeNilMap, "github.com/dagrun/dag_test.writeNilMap(", "TestPanicStackStartsAtPanic"},
		{"panic while recovering", repanic, "github.com/dagrun/dag_test.repanic.func1(", "github.com/dagrun/dag_test.panicker("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks := []dag.Task{{Name: "p", Func: func(context.Context, dag.Values) (map[string]any, error) {
				tc.fn()
				return nil, nil
			}}}
			_, err := runTasks(t, tasks, dag.Options{})
			var pe *dag.PanicError
			if !errors.As(err, &pe) {
				t.Fatalf("Wait() = %v; want a *PanicError", err)
			}
			first, _, _ := bytes.Cut(pe.Stack, []byte("\n"))
			if !bytes.HasPrefix(first, []byte(tc.first)) {
				t.Errorf("PanicError.Stack starts with %q; want the frame of %s. The stack:\n%s", first, tc.first, pe.Stack)
			}
			for _, frame := range []string{"runtime/debug.Stack", "newPanicError", "dag.call.func", "runtime/panic.go", "goroutine "} {
				if i := bytes.Index(pe.Stack, []byte(frame)); i >= 0 && i < bytes.Index(pe.Stack, []byte(tc.first)) {
					t.Errorf("PanicError.Stack shows %q before the panicking frame:\n%s", frame, pe.Stack)
				}
			}
			if !bytes.Contains(pe.Stack, []byte(tc.also)) {
				t.Errorf("PanicError.Stack lacks %s further down:\n%s", tc.also, pe.Stack)
			}
		})
	}
}

// writeNilMap panics with a runtime error.
//
//go:noinline
func writeNilMap() {
	var m map[string]int
	m["k"] = 1
}

// repanic panics while recovering from panicker's panic.
//
//go:noinline
func repanic() {
	defer func() {
		r := recover()
		panic(fmt.Sprint("again: ", r))
	}()
	panicker("first")
}

// prefixStore is a Store (and Locker) whose calls fail with the errors
// given, to reach the checkpoint's error paths.
type prefixStore struct {
	lock, load, save error
}

func (s prefixStore) Lock(context.Context, string) (func() error, error) {
	return func() error { return nil }, s.lock
}

func (s prefixStore) Load(context.Context, string) (*dag.Result, error) {
	if s.load != nil {
		return nil, s.load
	}
	return nil, dag.ErrNoCheckpoint
}

func (s prefixStore) Save(context.Context, string, string, dag.TaskResult) error { return s.save }
func (s prefixStore) Clear(context.Context, string) error                        { return nil }

// TestErrorPrefixOnceComposed covers the error paths of groups, Map and
// checkpoints: each message starts with "dag: " once and keeps what the
// inner error says.
func TestErrorPrefixOnceComposed(t *testing.T) {
	t.Parallel()
	double := func(_ context.Context, n int) (int, error) { return 2 * n, nil }
	cases := []struct {
		name  string
		tasks []dag.Task
		opts  dag.Options
		want  string
		is    error
	}{
		{
			name:  "Map without its items",
			tasks: []dag.Task{dag.Map("doubles", "xs", "ys", double)},
			want:  `Map "doubles" reads its items at key "xs": key "xs" is not in the job context`,
			is:    dag.ErrMissingKey,
		},
		{
			name: "Expand returning an invalid DAG",
			tasks: []dag.Task{{Name: "e", Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
				return []dag.Task{{Name: "a", Func: noop, DependsOn: []string{"ghost"}}, {Name: "b"}}, nil
			}}},
			want: `the tasks that Expand of task "e" returned are not a valid DAG: `,
			is:   dag.ErrMissingDependency,
		},
		{
			name:  "checkpoint locked",
			tasks: []dag.Task{{Name: "a", Func: noop}},
			opts:  dag.Options{Checkpoint: prefixStore{lock: dag.ErrLocked}},
			want:  `cannot lock its checkpoint: checkpointed job is running elsewhere`,
			is:    dag.ErrLocked,
		},
		{
			name:  "checkpoint corrupt",
			tasks: []dag.Task{{Name: "a", Func: noop}},
			opts:  dag.Options{Checkpoint: prefixStore{load: fmt.Errorf("%w: record 3 of 7", dag.ErrCorruptCheckpoint)}},
			want:  `cannot load its checkpoint: corrupt checkpoint: record 3 of 7`,
			is:    dag.ErrCorruptCheckpoint,
		},
		{
			name:  "checkpoint save fails",
			tasks: []dag.Task{{Name: "a", Func: succeed(map[string]any{"a": 1})}},
			opts:  dag.Options{Checkpoint: prefixStore{save: errors.New("dag: disk full")}},
			want:  `saving task "a" in the checkpoint of job "nightly" failed: disk full`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Name = "nightly"
			job, err := dag.Run(t.Context(), tc.tasks, opts)
			if err == nil {
				_, err = waitJob(t, job)
			}
			if err == nil {
				t.Fatal("Run(…) and Wait() = nil; want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "dag: ") || strings.Count(msg, "dag: ") != 1 {
				t.Errorf("error %q; want it to start with \"dag: \" and say it once", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q; want it to contain %q", msg, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v; want it to match %v", err, tc.is)
			}
		})
	}
}
