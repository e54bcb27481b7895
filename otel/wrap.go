package dagotel

import (
	"context"

	"github.com/dagrun/dag"
	"go.opentelemetry.io/otel/trace"
)

// wrap returns a copy of tasks, named under prefix, whose Funcs and Expands
// run under their attempt's span, and records which tasks are groups. The
// caller's tasks and Sub slices are left unchanged.
func (r *recorder) wrap(prefix string, tasks []dag.Task) []dag.Task {
	if tasks == nil {
		return nil
	}
	out := make([]dag.Task, len(tasks))
	for i, t := range tasks {
		name := prefix + t.Name
		if t.Func != nil {
			t.Func = r.wrapFunc(t.Func)
		}
		if t.Sub != nil || t.Expand != nil {
			r.mu.Lock()
			r.groups[name] = true
			r.mu.Unlock()
		}
		if t.Sub != nil {
			t.Sub = r.wrap(name+"/", t.Sub)
		}
		if t.Expand != nil {
			t.Expand = r.wrapExpand(name, t.Expand)
		}
		out[i] = t
	}
	return out
}

func (r *recorder) wrapFunc(f dag.TaskFunc) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		ctx, _ = r.attemptContext(ctx)
		return f(ctx, in)
	}
}

// wrapExpand wraps the Expand of the task named name: the tasks it returns
// are wrapped in turn, as the group's children.
func (r *recorder) wrapExpand(name string, f func(context.Context, dag.Values) ([]dag.Task, error)) func(context.Context, dag.Values) ([]dag.Task, error) {
	return func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
		ctx, a := r.attemptContext(ctx)
		tasks, err := f(ctx, in)
		if err != nil {
			return tasks, err
		}
		if a != nil {
			r.expanded(a)
		}
		return r.wrap(name+"/", tasks), nil
	}
}

// attemptContext returns ctx holding the span of the attempt whose context
// ctx is, and that attempt's record; ctx and nil if there is none. It waits
// until the recorder has handled the attempt's Running event, which dag
// sends before it calls the Func, or until ctx ends.
func (r *recorder) attemptContext(ctx context.Context) (context.Context, *attemptSpan) {
	info, ok := dag.TaskInfoFromContext(ctx)
	if !ok || info.Job != r.job {
		return ctx, nil
	}
	return r.attemptContextOf(ctx, info)
}

// attemptContextOf is attemptContext for the attempt info.
func (r *recorder) attemptContextOf(ctx context.Context, info dag.TaskInfo) (context.Context, *attemptSpan) {
	r.mu.Lock()
	a := r.attempt(attemptKey{info.Task, info.Attempt})
	a.claimed = true
	r.drop(a)
	r.mu.Unlock()
	select {
	case <-a.ready:
	case <-ctx.Done():
		// The attempt is over before it began; the span, if it comes, is
		// not worth waiting for.
		return ctx, nil
	}
	if a.span == nil { // set before ready was closed, if ever
		return ctx, nil
	}
	return trace.ContextWithSpan(ctx, a.span), a
}
