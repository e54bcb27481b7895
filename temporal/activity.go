package dagtemporal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// taskInput is what an activity receives: which task to run, and what it
// sees of the job context, encoded.
type taskInput struct {
	Job        string
	Run        string // the job's workflow run: keys the Expand cache
	Path       []string
	Values     map[string][]byte `json:",omitempty"`
	Expansions []expansion       `json:",omitempty"`
}

// taskOutput is what an activity returns.
type taskOutput struct {
	Attempt int
	Output  map[string][]byte `json:",omitempty"`
	// Skipped is the error of a task that returned dag.ErrSkip.
	Skipped *RemoteError `json:",omitempty"`
	// Children are an Expand task's tasks.
	Children []spec `json:",omitempty"`
	Expanded bool   `json:",omitempty"`
}

// attemptDetail rides on a failed attempt's error, so that the workflow
// knows how many attempts the task made.
type attemptDetail struct {
	Attempt int
}

// activity runs one attempt of a task: its Func, or its Expand.
func (r *registered) activity(ctx context.Context, in taskInput) (taskOutput, error) {
	info := activity.GetInfo(ctx)
	attempt := int(info.Attempt)
	name := strings.Join(in.Path, "/")
	fail := func(err error, retry bool) (taskOutput, error) {
		rerr := remote(err)
		opts := temporal.ApplicationErrorOptions{NonRetryable: !retry, Details: []any{attemptDetail{attempt}}}
		return taskOutput{}, temporal.NewApplicationErrorWithOptions(rerr.Message, rerr.Type, opts)
	}
	t, err := r.lookup(ctx, in.Run, in.Path, in.Expansions)
	if err != nil {
		return fail(err, false)
	}
	vals, err := decodeMap(fmt.Sprintf("input of task %q", name), in.Values)
	if err != nil {
		return fail(err, false)
	}
	defer heartbeat(ctx, r.heartbeat/3)()
	ctx = dag.ContextWithTaskInfo(ctx, dag.TaskInfo{Job: in.Job, Task: name, Attempt: attempt, Started: info.StartedTime})

	out := taskOutput{Attempt: attempt}
	if t.Expand != nil {
		children, err := callExpand(ctx, t.Expand, dag.ValuesOf(vals))
		if err == nil {
			if err = dag.Validate(children); err != nil {
				// Invalid children fail the task for good, as in dag.Run.
				err = backoff.Permanent(fmt.Errorf("dag: task %q: its Expand returned tasks that are not a valid DAG: %w", name, err))
			} else if m := findMap(children, name+"/"); m != "" {
				err = backoff.Permanent(matchErr(dag.ErrInvalidTask, "dag: task %q: its Expand returned %q, a dag.Map; on Temporal a Map must be declared among the workflow's tasks (or a Sub of them), since the workflow knows the tasks an Expand returns by their names only and a Map's gathering step is in its Task", name, m))
			}
		}
		if err != nil {
			return r.taskError(out, err, fail)
		}
		r.cache.put(cacheKey(in.Run, in.Path), children)
		out.Children, out.Expanded = specsOf(children), true
		return out, nil
	}
	if t.Func == nil {
		return fail(matchErr(dag.ErrInvalidTask, "dag: task %q has no Func on this worker; every worker of a workflow must hold the same tasks", name), false)
	}
	res, err := callFunc(ctx, t.Func, dag.ValuesOf(vals))
	if err != nil {
		return r.taskError(out, err, fail)
	}
	if out.Output, err = encodeMap(fmt.Sprintf("output of task %q", name), res); err != nil {
		return fail(err, false)
	}
	return out, nil
}

// findMap returns the name of a Map among tasks and their Subs, or "".
func findMap(tasks []dag.Task, prefix string) string {
	for _, t := range tasks {
		if isMap(t) {
			return prefix + t.Name
		}
		if m := findMap(t.Sub, prefix+t.Name+"/"); m != "" {
			return m
		}
	}
	return ""
}

// taskError turns the error of a Func or an Expand into the activity's
// result: a skip, or a failure, retryable unless it is permanent.
func (r *registered) taskError(out taskOutput, err error, fail func(error, bool) (taskOutput, error)) (taskOutput, error) {
	if errors.Is(err, dag.ErrSkip) {
		out.Skipped = remote(err)
		return out, nil
	}
	if perm, ok := err.(*backoff.PermanentError); ok {
		// As in dag.Run: the error inside, unless Func wrapped the
		// permanent error in its own.
		return fail(perm.Err, false)
	}
	var perm *backoff.PermanentError
	return fail(err, !errors.As(err, &perm))
}

// heartbeat records a heartbeat every interval until the returned func is
// called; that func waits for the heartbeat goroutine to end.
func heartbeat(ctx context.Context, every time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// panicError is the error of a Func that panicked: its value and stack, as
// text, since it leaves the process.
func panicError(v any) error {
	stack := debug.Stack()
	if i := bytes.IndexByte(stack, '\n'); i >= 0 {
		stack = stack[i+1:]
	}
	if err, ok := v.(error); ok {
		return fmt.Errorf("panic: %w\n\n%s", err, stack)
	}
	return fmt.Errorf("panic: %v\n\n%s", v, stack)
}

// callFunc runs f, turning a panic into an error.
func callFunc(ctx context.Context, f dag.TaskFunc, in dag.Values) (out map[string]any, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, panicError(v)
		}
	}()
	return f(ctx, in)
}

// callExpand runs f, turning a panic into an error.
func callExpand(ctx context.Context, f func(context.Context, dag.Values) ([]dag.Task, error), in dag.Values) (out []dag.Task, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, panicError(v)
		}
	}()
	return f(ctx, in)
}

// whenInput asks a task's When.
type whenInput = taskInput

// when runs a task's When, as a local activity: it is the task's code, so
// it runs outside the workflow, and Temporal records its answer.
func (r *registered) when(ctx context.Context, in whenInput) (ok bool, err error) {
	name := strings.Join(in.Path, "/")
	t, err := r.lookup(ctx, in.Run, in.Path, in.Expansions)
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError(err.Error(), errorType(err), nil)
	}
	vals, err := decodeMap(fmt.Sprintf("input of task %q", name), in.Values)
	if err != nil {
		return false, temporal.NewNonRetryableApplicationError(err.Error(), errorType(err), nil)
	}
	if t.When == nil {
		return true, nil
	}
	defer func() {
		if v := recover(); v != nil {
			perr := fmt.Errorf("dag: task %q: its When panicked: %w", name, panicError(v))
			ok, err = false, temporal.NewNonRetryableApplicationError(perr.Error(), "dag.PanicError", nil)
		}
	}()
	return t.When(dag.ValuesOf(vals)), nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
