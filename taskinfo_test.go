package dag_test

// TaskInfoFromContext: what an attempt learns of itself from its context.

import (
	"context"
	"sync"
	"testing"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// TestTaskInfoFromContext checks the TaskInfo of every attempt of a task
// in a group that fails once: the job's name, the full name, the attempt's
// number and the time of its Running event; the same from a context the
// Func kept after the job ended; none from a context of no attempt; and
// what ContextWithTaskInfo sets, for other executors.
func TestTaskInfoFromContext(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var infos []dag.TaskInfo
	var kept []context.Context
	calls := 0
	tasks := []dag.Task{{Name: "g", Sub: []dag.Task{{Name: "c", MaxRetries: 1, Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) {
		mu.Lock()
		defer mu.Unlock()
		info, ok := dag.TaskInfoFromContext(ctx)
		if !ok {
			t.Error("TaskInfoFromContext found no TaskInfo in an attempt's context")
		}
		infos, kept = append(infos, info), append(kept, ctx)
		if calls++; calls == 1 {
			return nil, errBoom
		}
		return nil, nil
	}}}}}
	out := runJob(t, tasks, dag.Options{Name: "j", Backoff: zeroBackoff})
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	var want []dag.TaskInfo
	for _, e := range out.Events {
		if e.Task == "g/c" && e.To == dag.Running {
			want = append(want, dag.TaskInfo{Job: "j", Task: "g/c", Attempt: e.Attempt, Started: e.Time})
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, infos); diff != "" || len(want) != 2 {
		t.Errorf("TaskInfo of each attempt mismatch (-Running events +TaskInfo):\n%s", diff)
	}
	for i, ctx := range kept {
		if info, ok := dag.TaskInfoFromContext(ctx); !ok || info != infos[i] {
			t.Errorf("TaskInfo from attempt %d's context after the job ended = %+v, %t; want %+v", i+1, info, ok, infos[i])
		}
	}
	if info, ok := dag.TaskInfoFromContext(context.Background()); ok {
		t.Errorf("TaskInfoFromContext(Background) = %+v, true; want none", info)
	}
	set := dag.TaskInfo{Job: "other", Task: "x", Attempt: 3, Started: infos[0].Started}
	if info, ok := dag.TaskInfoFromContext(dag.ContextWithTaskInfo(context.Background(), set)); !ok || info != set {
		t.Errorf("TaskInfoFromContext(ContextWithTaskInfo(…, %+v)) = %+v, %t", set, info, ok)
	}
}
