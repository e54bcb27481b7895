package dagtest

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/dagrun/dag"
)

// A Call is one call of a Func that a [Recorder] wrapped.
type Call struct {
	// Task is the task's full name: "group/child" inside a group.
	Task string
	// Attempt is the attempt's number: 1 for the first.
	Attempt int
	// Values is everything the attempt could see of the job context.
	Values map[string]any
}

// A Recorder records the calls of the Funcs it wraps, in the order they
// start. Its methods are safe for concurrent use; the zero Recorder is
// ready to use.
type Recorder struct {
	mu    sync.Mutex
	calls []Call         // guarded by mu
	count map[string]int // guarded by mu: calls by task, when ctx has no TaskInfo
}

// Wrap returns a copy of tasks whose Funcs, and those of the tasks in
// their groups (Task.Sub) and of the tasks their Expands return, record
// each call in r before they run. Wrap them after [Stub], so that the
// stubs are recorded.
//
// A call reads the task's name and attempt from its context
// ([dag.TaskInfoFromContext]); a Func called outside a job, as a unit test
// does with [dag.ValuesOf], is recorded under the task's full name, each
// call counting as the next attempt. Recording reads every key the call
// can see ([dag.Values.All]), which costs what All costs.
func (r *Recorder) Wrap(tasks []dag.Task) []dag.Task {
	return r.wrap(tasks, "")
}

func (r *Recorder) wrap(tasks []dag.Task, prefix string) []dag.Task {
	out := slices.Clone(tasks)
	for i := range out {
		task := &out[i]
		name := prefix + task.Name
		if task.Func != nil {
			task.Func = r.record(name, task.Func)
		}
		if task.Sub != nil {
			task.Sub = r.wrap(task.Sub, name+"/")
		}
		if expand := task.Expand; expand != nil {
			task.Expand = func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
				tasks, err := expand(ctx, in)
				return r.wrap(tasks, name+"/"), err
			}
		}
	}
	return out
}

// record returns f, recording each call of it as one of task name.
func (r *Recorder) record(name string, f dag.TaskFunc) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		c := Call{Task: name, Values: maps.Collect(in.All())}
		info, ok := dag.TaskInfoFromContext(ctx)
		if ok {
			c.Task, c.Attempt = info.Task, info.Attempt
		}
		r.mu.Lock()
		if !ok {
			if r.count == nil {
				r.count = map[string]int{}
			}
			r.count[name]++
			c.Attempt = r.count[name]
		}
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		return f(ctx, in)
	}
}

// Calls returns every call recorded so far, in the order they started.
// Calls of tasks that run at once start in an order that depends on
// timing; sort them, or use [Recorder.CallsOf], to compare them.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// CallsOf returns the calls recorded so far of the task with the full
// name task, in the order of their attempts.
func (r *Recorder) CallsOf(task string) []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var calls []Call
	for _, c := range r.calls {
		if c.Task == task {
			calls = append(calls, c)
		}
	}
	slices.SortStableFunc(calls, func(a, b Call) int { return a.Attempt - b.Attempt })
	return calls
}
