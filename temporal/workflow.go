package dagtemporal

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dagrun/dag"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// A Workflow is a job's tasks as a Temporal workflow type. Every worker
// that serves the workflow registers it with the same Name and the same
// Tasks: the workflow's code reads the graph from them, and the activities
// look their Funcs up by task name.
//
// The zero Workflow is not valid: it needs a Name and Tasks.
type Workflow struct {
	// Name is the workflow type. The activity of task "t" is named
	// Name+"/t" ("Name/g/t" for task t of group g), Expand tasks' children
	// run as Name+":expanded" and groups as child workflows of type
	// Name+":group".
	Name string

	// Tasks are the job's tasks, as dag.Run takes them.
	Tasks []dag.Task

	// HeartbeatTimeout is how long the Temporal server waits for a running
	// activity's heartbeat before it takes its worker for lost and retries
	// the attempt elsewhere (which costs the task an attempt). Activities
	// heartbeat at a third of it. 0 means 10 seconds.
	HeartbeatTimeout time.Duration
}

// defaultHeartbeat is HeartbeatTimeout's default: a lost worker's task
// moves on within it, and heartbeats every few seconds cost little.
const defaultHeartbeat = 10 * time.Second

// noTimeout is the StartToCloseTimeout of a task without a Timeout:
// Temporal needs one, and heartbeats find lost workers anyway.
const noTimeout = 10 * 365 * 24 * time.Hour

// kind is what a task does.
type kind uint8

const (
	kindFunc kind = iota
	kindSub
	kindExpand
)

// spec is what the workflow knows of a task: everything but its code.
// Expand activities return their children as specs.
type spec struct {
	Name       string
	DependsOn  []string      `json:",omitempty"`
	Timeout    time.Duration `json:",omitempty"`
	MaxRetries int           `json:",omitempty"`
	Continue   bool          `json:",omitempty"`
	Trigger    dag.Trigger   `json:",omitempty"`
	When       bool          `json:",omitempty"`
	Kind       kind          `json:",omitempty"`
	Map        bool          `json:",omitempty"` // made by dag.Map: gathers its tasks' outputs
	Sub        []spec        `json:",omitempty"`
}

func specsOf(tasks []dag.Task) []spec {
	out := make([]spec, len(tasks))
	for i, t := range tasks {
		s := spec{Name: t.Name, DependsOn: t.DependsOn, Timeout: t.Timeout, MaxRetries: t.MaxRetries,
			Continue: t.ContinueOnFailure, Trigger: t.Trigger, When: t.When != nil}
		switch {
		case t.Sub != nil:
			s.Kind, s.Sub = kindSub, specsOf(t.Sub)
		case t.Expand != nil:
			s.Kind, s.Map = kindExpand, isMap(t)
		}
		out[i] = s
	}
	return out
}

// isMap reports whether t was made by dag.Map, whose gathering step is in
// an unexported field of the Task: the workflow needs to know, to report
// the Map task's Output, and it can only read whether the field is set.
func isMap(t dag.Task) bool {
	f := reflect.ValueOf(t).FieldByName("collect")
	return f.IsValid() && f.Kind() == reflect.Func && !f.IsNil()
}

func stubFunc(context.Context, dag.Values) (map[string]any, error) { return nil, nil }
func stubExpand(context.Context, dag.Values) ([]dag.Task, error)   { return nil, nil }
func stubWhen(dag.Values) bool                                     { return true }

// stubs makes tasks of specs for a ledger, which needs the graph only.
func stubs(specs []spec) []dag.Task {
	out := make([]dag.Task, len(specs))
	for i, s := range specs {
		t := dag.Task{Name: s.Name, DependsOn: s.DependsOn, Timeout: s.Timeout, MaxRetries: s.MaxRetries,
			ContinueOnFailure: s.Continue, Trigger: s.Trigger}
		if s.When {
			t.When = stubWhen
		}
		switch s.Kind {
		case kindSub:
			t.Sub = stubs(s.Sub)
		case kindExpand:
			t.Expand = stubExpand
		default:
			t.Func = stubFunc
		}
		out[i] = t
	}
	return out
}

// width bounds how many activities a group can have pending at once; -1
// when it has an Expand, whose children are not known yet.
func width(s *spec) int {
	switch s.Kind {
	case kindFunc:
		return 1
	case kindExpand:
		return -1
	}
	n := 0
	for i := range s.Sub {
		w := width(&s.Sub[i])
		if w < 0 {
			return -1
		}
		n += w
	}
	return n
}

// registered is a Workflow as Register made it: a copy, with its specs.
type registered struct {
	name      string
	tasks     []dag.Task
	specs     []spec
	heartbeat time.Duration
	cache     expandCache
}

// Register validates the tasks and registers on r the workflow, the
// activity of each task that has a Func or an Expand, the activity that
// runs Expand tasks' children, and the child workflow of groups. r is a
// worker.Worker, or a testsuite.TestWorkflowEnvironment in tests.
//
// Register copies w: later changes to it do not reach r. It returns an
// error, and registers nothing, if the tasks are not valid (see
// dag.Validate) or if two tasks would make activities of the same name
// (a task named "g/t" beside a group "g" with a task "t").
func (w *Workflow) Register(r worker.Registry) error {
	if w.Name == "" {
		return matchErr(dag.ErrInvalidOptions, "dag: the Workflow has no Name; give it the workflow type to register")
	}
	if w.HeartbeatTimeout < 0 {
		return matchErr(dag.ErrInvalidOptions, "dag: workflow %q has a negative HeartbeatTimeout (%v); use 0 for the default", w.Name, w.HeartbeatTimeout)
	}
	if err := dag.Validate(w.Tasks); err != nil {
		return err
	}
	reg := &registered{name: w.Name, tasks: append([]dag.Task(nil), w.Tasks...), specs: specsOf(w.Tasks), heartbeat: w.HeartbeatTimeout}
	if reg.heartbeat == 0 {
		reg.heartbeat = defaultHeartbeat
	}
	names := map[string]string{}
	var walk func(prefix []string, tasks []dag.Task) error
	walk = func(prefix []string, tasks []dag.Task) error {
		for _, t := range tasks {
			path := append(prefix[:len(prefix):len(prefix)], t.Name)
			if t.Sub != nil {
				if err := walk(path, t.Sub); err != nil {
					return err
				}
				continue
			}
			name := reg.activityName(path)
			if other, ok := names[name]; ok {
				return matchErr(dag.ErrDuplicateTask, "dag: tasks %q and %q would both run as activity %q; rename one", other, strings.Join(path, "/"), name)
			}
			names[name] = strings.Join(path, "/")
		}
		return nil
	}
	if err := walk(nil, w.Tasks); err != nil {
		return err
	}
	r.RegisterWorkflowWithOptions(reg.root, workflow.RegisterOptions{Name: reg.name})
	r.RegisterWorkflowWithOptions(reg.group, workflow.RegisterOptions{Name: reg.groupName()})
	for _, name := range sortedKeys(names) {
		r.RegisterActivityWithOptions(reg.activity, activity.RegisterOptions{Name: name})
	}
	r.RegisterActivityWithOptions(reg.activity, activity.RegisterOptions{Name: reg.expandedName()})
	return nil
}

func (r *registered) activityName(path []string) string {
	return r.name + "/" + strings.Join(path, "/")
}
func (r *registered) expandedName() string { return r.name + ":expanded" }
func (r *registered) groupName() string    { return r.name + ":group" }

// static returns the registered task at path when no Expand is on the
// way to it.
func (r *registered) static(path []string) (dag.Task, bool) {
	tasks := r.tasks
	for i, seg := range path {
		k := slices.IndexFunc(tasks, func(t dag.Task) bool { return t.Name == seg })
		if k < 0 {
			return dag.Task{}, false
		}
		if i == len(path)-1 {
			return tasks[k], true
		}
		tasks = tasks[k].Sub
	}
	return dag.Task{}, false
}

// expansion is the input an Expand task ran with, so that a worker can
// run the Expand again to find its children's Funcs.
type expansion struct {
	Path   []string
	Values map[string][]byte `json:",omitempty"`
}

// lookup finds the task at path, running Expands on the way as needed.
func (r *registered) lookup(ctx context.Context, run string, path []string, exps []expansion) (dag.Task, error) {
	tasks := r.tasks
	for i, seg := range path {
		var t *dag.Task
		for j := range tasks {
			if tasks[j].Name == seg {
				t = &tasks[j]
				break
			}
		}
		here := strings.Join(path[:i+1], "/")
		if t == nil {
			if i > 0 && isExpanded(path[:i], exps) {
				return dag.Task{}, matchErr(dag.ErrInvalidTask, "dag: task %q: the Expand of %q on this worker returned no task %q; an Expand must return the same tasks for the same input, since each worker runs it again to find its children's Funcs", here, strings.Join(path[:i], "/"), seg)
			}
			return dag.Task{}, matchErr(dag.ErrInvalidTask, "dag: task %q is not among the tasks this worker registered as %q; every worker of a workflow must hold the same tasks", here, r.name)
		}
		if i == len(path)-1 {
			return *t, nil
		}
		switch {
		case t.Sub != nil:
			tasks = t.Sub
		case t.Expand != nil:
			var in map[string][]byte
			for _, e := range exps {
				if equalPath(e.Path, path[:i+1]) {
					in = e.Values
				}
			}
			children, err := r.expanded(ctx, run, path[:i+1], t, in)
			if err != nil {
				return dag.Task{}, err
			}
			tasks = children
		default:
			return dag.Task{}, matchErr(dag.ErrInvalidTask, "dag: task %q has no tasks of its own, yet the workflow names its task %q; every worker of a workflow must hold the same tasks", here, path[i+1])
		}
	}
	return dag.Task{}, matchErr(dag.ErrInvalidTask, "dag: empty task path")
}

func isExpanded(path []string, exps []expansion) bool {
	for _, e := range exps {
		if equalPath(e.Path, path) {
			return true
		}
	}
	return false
}

func equalPath(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// expandCache keeps the children an Expand returned on this worker, so
// that running its children here does not run the Expand again. It holds
// the last expandCacheSize expansions.
type expandCache struct {
	mu      sync.Mutex
	entries map[string][]dag.Task // guarded by mu
	order   []string              // guarded by mu: keys, oldest first
}

const expandCacheSize = 256

func (c *expandCache) get(key string) ([]dag.Task, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.entries[key]
	return t, ok
}

func (c *expandCache) put(key string, tasks []dag.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string][]dag.Task)
	}
	if _, ok := c.entries[key]; !ok {
		c.order = append(c.order, key)
	}
	c.entries[key] = tasks
	if len(c.order) > expandCacheSize {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
}

func cacheKey(run string, path []string) string {
	return run + "\x00" + strings.Join(path, "\x00")
}

// expanded returns the children of Expand task t at path, from the cache
// or by running the Expand with the input it had in the workflow.
func (r *registered) expanded(ctx context.Context, run string, path []string, t *dag.Task, in map[string][]byte) ([]dag.Task, error) {
	key := cacheKey(run, path)
	if children, ok := r.cache.get(key); ok {
		return children, nil
	}
	name := strings.Join(path, "/")
	vals, err := decodeMap(fmt.Sprintf("input of task %q", name), in)
	if err != nil {
		return nil, err
	}
	children, err := callExpand(ctx, t.Expand, dag.ValuesOf(vals))
	if err != nil {
		return nil, fmt.Errorf("dag: task %q: running its Expand again on this worker, to find its children's Funcs, failed: %w", name, err)
	}
	if err := dag.Validate(children); err != nil {
		return nil, err
	}
	r.cache.put(key, children)
	return children, nil
}
