package dag

import (
	"context"
	"fmt"
	"strconv"

	"github.com/cenkalti/backoff/v4"
)

// Map returns a task that runs fn once per item of the []T at key from,
// known only when the task runs, and writes the []R of their results, in
// item order, at key to.
//
// It is an Expand task: its tasks are named name/0, name/1, … and run in
// parallel within MaxParallel, each with the retries, Timeout and Backoff of
// the returned Task (set them, and DependsOn, on it). The items' results
// stay out of the job context until all are done (each is in its task's
// TaskResult.Output); then the list is written at to. A missing key, a value
// that is not a []T, or an item that fails for good fails the task.
func Map[T, R any](name, from, to string, fn func(ctx context.Context, item T) (R, error)) Task {
	return Task{
		Name: name,
		Expand: func(ctx context.Context, in Values) ([]Task, error) {
			items, err := Lookup[[]T](in, from)
			if err != nil {
				return nil, backoff.Permanent(wrap(err, "dag: Map %s reads its items at key %q", quote(name), from))
			}
			tasks := make([]Task, len(items))
			for i, item := range items {
				tasks[i] = Task{
					Name: strconv.Itoa(i),
					Func: func(ctx context.Context, _ Values) (map[string]any, error) {
						r, err := fn(ctx, item)
						if err != nil {
							return nil, err
						}
						return map[string]any{to: r}, nil
					},
				}
			}
			return tasks, nil
		},
		collect: func(outs []map[string]any) (map[string]any, error) {
			rs := make([]R, len(outs))
			for i, out := range outs {
				r, ok := out[to].(R)
				if !ok && out[to] != nil {
					return nil, fmt.Errorf("dag: Map %s: item %d's result is a %T, not a %T", quote(name), i, out[to], r)
				}
				rs[i] = r
			}
			return map[string]any{to: rs}, nil
		},
	}
}
