package dagtemporal

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dagrun/dag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// How the workflow stays deterministic. Temporal replays a workflow's code
// against its recorded history, so that code must take the same steps
// every time. The code here:
//   - runs in one coroutine: it waits on a single workflow.Selector and
//     starts no goroutine;
//   - reads time only through workflow.Now, and waits only on Temporal
//     timers, activities and child workflows;
//   - walks tasks in declaration order, and ready tasks in a fixed order
//     (longest chain ahead first, then declaration order), never a map;
//   - runs no task code: Funcs and Expands run in activities, When in a
//     local activity, whose results the history records;
//   - keeps the job context in the core's dag.Ledger, whose answers
//     depend only on the calls made; values are decoded from the
//     activities' results with gob, which is deterministic, and what the
//     workflow does depends on keys, never on values (the bytes it sends
//     may differ between replays, since gob writes a map in Go's random
//     order, but Temporal does not compare inputs on replay).

// level runs one level of a job's tasks in a workflow: the top level in the
// job's workflow, or a group's tasks in the group's child workflow.
type level struct {
	r    *registered
	ctx  workflow.Context // the workflow's
	tctx workflow.Context // parent of every activity and child workflow
	stop workflow.CancelFunc
	sel  workflow.Selector

	job        string
	run        string   // the job's root run: keys the Expand cache
	path       []string // the group's path; nil at the top
	base       string   // the prefix of the level's tasks' names in its ledger
	exps       []expansion
	ledger     *dag.Ledger
	nodes      []node
	maxRetries int
	keepGoing  bool
	slots      int // activities pending at most, 0 for no bound
	used       int // slots taken
	ready      readyHeap
	pending    int // activities, local activities and child workflows not resolved yet

	stopping bool
	canceled bool   // the workflow was cancelled
	timeout  string // why the group timed out, if it did
	conflict bool
	failures []failure // tasks that fail the level, in the order they failed

	// Tasks of groups that ended, by full name relative to this level,
	// and what went into the ledger, in order, for the parent's ledger.
	extra []taskWire
	ops   []ledgerOp
}

// ledgerOp is one change to a ledger, which a group's child workflow
// reports so that its parent's ledger makes it too: the tasks an Expand
// returned, or the output of a task that completed. Task is the name in
// the child's ledger.
type ledgerOp struct {
	Task     string
	Children []spec            `json:",omitempty"`
	Expand   bool              `json:",omitempty"`
	Output   map[string][]byte `json:",omitempty"`
}

// node is the workflow's record of one task.
type node struct {
	spec              *spec
	outs              []int
	deps              []int
	waiting           int // dependencies not ended yet
	height            int // tasks on the longest chain from here to the end
	state             dag.State
	attempts          int
	err               *RemoteError
	started, finished time.Time
	output            map[string][]byte
	in                map[string][]byte // an Expand's input
	children          []spec            // an Expand's children, once it ran
	expanded          bool
	lent              int                          // slots lent to the group's child workflow
	child             workflow.ChildWorkflowFuture // the group's, while it runs
	childStarted      bool                         // the group's child workflow has started
}

// failure is a task that failed a level, with its name relative to it.
type failure struct {
	Task     string
	Attempts int
	Err      *RemoteError
	node     int // the level's task it came from
}

// readyHeap orders ready tasks: the longest chain ahead first, as in
// dag.Run, then declaration order.
type readyHeap struct {
	idx   []int
	nodes []node
}

func (h *readyHeap) Len() int { return len(h.idx) }
func (h *readyHeap) Less(a, b int) bool {
	na, nb := &h.nodes[h.idx[a]], &h.nodes[h.idx[b]]
	if na.height != nb.height {
		return na.height > nb.height
	}
	return h.idx[a] < h.idx[b]
}
func (h *readyHeap) Swap(a, b int) { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *readyHeap) Push(x any)    { h.idx = append(h.idx, x.(int)) }
func (h *readyHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// levelConfig is what a level needs from its workflow's input.
type levelConfig struct {
	job, run   string
	path       []string
	specs      []spec
	ledger     *dag.Ledger
	base       string
	exps       []expansion
	slots      int
	maxRetries int
	keepGoing  bool
}

func (r *registered) newLevel(ctx workflow.Context, c levelConfig) *level {
	lv := &level{r: r, ctx: ctx, job: c.job, run: c.run, path: c.path, base: c.base, exps: c.exps, ledger: c.ledger,
		nodes: make([]node, len(c.specs)), maxRetries: c.maxRetries, keepGoing: c.keepGoing, slots: c.slots}
	lv.tctx, lv.stop = workflow.WithCancel(ctx)
	lv.sel = workflow.NewSelector(ctx)
	lv.ready.nodes = lv.nodes
	index := make(map[string]int, len(c.specs))
	for i := range c.specs {
		index[c.specs[i].Name] = i
		lv.nodes[i].spec = &c.specs[i]
	}
	for i := range lv.nodes {
		seen := map[int]bool{}
		for _, d := range lv.nodes[i].spec.DependsOn {
			j := index[d]
			if !seen[j] {
				seen[j] = true
				lv.nodes[i].deps = append(lv.nodes[i].deps, j)
				lv.nodes[j].outs = append(lv.nodes[j].outs, i)
			}
		}
		lv.nodes[i].waiting = len(lv.nodes[i].deps)
	}
	// Heights, from the last task up: dependents come after a task in a
	// topological order, so walk one backwards.
	order := make([]int, 0, len(lv.nodes))
	waiting := make([]int, len(lv.nodes))
	for i := range lv.nodes {
		if waiting[i] = lv.nodes[i].waiting; waiting[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, o := range lv.nodes[order[k]].outs {
			if waiting[o]--; waiting[o] == 0 {
				order = append(order, o)
			}
		}
	}
	for k := len(order) - 1; k >= 0; k-- {
		n := &lv.nodes[order[k]]
		n.height = 1
		for _, o := range n.outs {
			n.height = max(n.height, lv.nodes[o].height+1)
		}
	}
	// Cancelling the workflow stops the level. The case stays ready
	// until what it holds is received.
	lv.sel.AddReceive(ctx.Done(), func(c workflow.ReceiveChannel, more bool) {
		c.ReceiveAsync(nil)
		lv.canceled = true
		lv.halt()
	})
	return lv
}

// name is task i's name relative to the level; full, relative to the job.
func (lv *level) name(i int) string { return lv.nodes[i].spec.Name }

func (lv *level) pathOf(i int) []string {
	return append(lv.path[:len(lv.path):len(lv.path)], lv.name(i))
}

// loop runs the level until every task has ended or it stopped and nothing
// is pending any more.
func (lv *level) loop() {
	for i := range lv.nodes {
		if lv.nodes[i].waiting == 0 {
			lv.consider(i)
		}
	}
	for {
		lv.startReady()
		lv.grant()
		if lv.pending == 0 {
			break
		}
		lv.sel.Select(lv.ctx)
	}
	now := workflow.Now(lv.ctx)
	for i := range lv.nodes {
		if n := &lv.nodes[i]; !n.state.Final() {
			n.state, n.finished = dag.Canceled, now
		}
	}
}

// consider decides, once task i's dependencies have ended, whether it runs.
func (lv *level) consider(i int) {
	if lv.stopping {
		return
	}
	n := &lv.nodes[i]
	states := make([]dag.State, len(n.deps))
	tolerated := make([]bool, len(n.deps))
	for k, d := range n.deps {
		states[k] = lv.nodes[d].state
		tolerated[k] = lv.nodes[d].spec.Continue
	}
	switch d := n.spec.Trigger.Decide(states, tolerated); d {
	case dag.Running:
		if n.spec.When {
			lv.askWhen(i)
			return
		}
		lv.makeReady(i)
	default:
		lv.end(i, d, nil, nil)
	}
}

func (lv *level) makeReady(i int) {
	if lv.nodes[i].spec.Kind == kindFunc || (lv.nodes[i].spec.Kind == kindExpand && !lv.nodes[i].expanded) {
		lv.nodes[i].state = dag.Ready
	}
	heap.Push(&lv.ready, i)
}

// values encodes what task i sees, for its activity.
func (lv *level) values(i int) (map[string][]byte, *RemoteError) {
	v, err := lv.ledger.Values(lv.full(i))
	if err != nil {
		return nil, remote(err)
	}
	m := make(map[string]any, v.Len())
	for k, val := range v.All() {
		m[k] = val
	}
	b, err := encodeMap(fmt.Sprintf("input of task %q", strings.Join(lv.pathOf(i), "/")), m)
	if err != nil {
		return nil, remote(err)
	}
	return b, nil
}

// askWhen runs task i's When in a local activity.
func (lv *level) askWhen(i int) {
	vals, rerr := lv.values(i)
	if rerr != nil {
		lv.nodes[i].attempts = 1
		lv.end(i, dag.Failed, rerr, nil)
		return
	}
	in := whenInput{Job: lv.job, Run: lv.run, Path: lv.pathOf(i), Values: vals, Expansions: lv.exps}
	ctx := workflow.WithLocalActivityOptions(lv.tctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	f := workflow.ExecuteLocalActivity(ctx, lv.r.when, in)
	lv.pending++
	lv.sel.AddFuture(f, func(f workflow.Future) {
		lv.pending--
		var ok bool
		err := f.Get(lv.ctx, &ok)
		switch {
		case lv.stopping:
			// The task stays Pending and ends Canceled.
		case err != nil:
			lv.nodes[i].attempts = 1
			lv.end(i, dag.Failed, lv.activityErr(i, err), nil)
		case ok:
			lv.makeReady(i)
		default:
			lv.end(i, dag.Skipped, nil, nil)
		}
	})
}

// full is task i's name in the level's ledger.
func (lv *level) full(i int) string { return lv.base + lv.name(i) }

// startReady starts ready tasks while slots are free.
func (lv *level) startReady() {
	for lv.ready.Len() > 0 && !lv.stopping && (lv.slots == 0 || lv.used < lv.slots) {
		i := heap.Pop(&lv.ready).(int)
		n := &lv.nodes[i]
		if n.spec.Kind == kindSub || n.expanded {
			lv.startGroup(i)
		} else {
			lv.startActivity(i)
		}
	}
}

// retries is how many retries task i has.
func (lv *level) retries(i int) int {
	switch r := lv.nodes[i].spec.MaxRetries; {
	case r == dag.NoRetries:
		return 0
	case r == 0:
		return lv.maxRetries
	default:
		return r
	}
}

func (lv *level) startActivity(i int) {
	n := &lv.nodes[i]
	now := workflow.Now(lv.ctx)
	n.state, n.started = dag.Running, now
	vals, rerr := lv.values(i)
	if rerr != nil {
		n.attempts = 1
		lv.end(i, dag.Failed, rerr, nil)
		return
	}
	in := taskInput{Job: lv.job, Run: lv.run, Path: lv.pathOf(i), Values: vals, Expansions: lv.exps}
	if n.spec.Kind == kindExpand {
		n.in = in.Values
	}
	timeout := n.spec.Timeout
	if timeout == 0 {
		timeout = noTimeout
	}
	ctx := workflow.WithActivityOptions(lv.tctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    lv.r.heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			// dag.Run's default backoff, without its jitter: Temporal's
			// retry policy has none.
			InitialInterval:    100 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    int32(lv.retries(i) + 1),
		},
	})
	typ := lv.r.expandedName()
	if len(lv.exps) == 0 {
		typ = lv.r.activityName(in.Path)
	}
	f := workflow.ExecuteActivity(ctx, typ, in)
	lv.used++
	lv.pending++
	lv.sel.AddFuture(f, func(f workflow.Future) {
		lv.used--
		lv.pending--
		lv.activityDone(i, f)
	})
}

func (lv *level) activityDone(i int, f workflow.Future) {
	n := &lv.nodes[i]
	var out taskOutput
	if err := f.Get(lv.ctx, &out); err != nil {
		rerr := lv.activityErr(i, err)
		if lv.stopping && rerr.Type == "context.Canceled" {
			lv.end(i, dag.Canceled, nil, nil)
			return
		}
		lv.end(i, dag.Failed, rerr, nil)
		return
	}
	n.attempts = out.Attempt
	switch {
	case out.Skipped != nil:
		lv.end(i, dag.Skipped, out.Skipped, nil)
	case out.Expanded:
		if n.spec.Map {
			// As in dag.Run, a Map's tasks have the Map's retries, and
			// its Timeout unless they set their own.
			for k := range out.Children {
				c := &out.Children[k]
				c.MaxRetries = n.spec.MaxRetries
				if c.Timeout == 0 {
					c.Timeout = n.spec.Timeout
				}
			}
		}
		if err := lv.ledger.Expand(lv.full(i), stubs(out.Children)); err != nil {
			lv.end(i, dag.Failed, remote(err), nil)
			return
		}
		lv.ops = append(lv.ops, ledgerOp{Task: lv.full(i), Expand: true, Children: out.Children})
		n.children, n.expanded = out.Children, true
		switch {
		case len(out.Children) == 0:
			lv.end(i, dag.Completed, nil, nil)
		case lv.stopping:
			lv.end(i, dag.Canceled, nil, nil)
		default:
			heap.Push(&lv.ready, i) // the group waits for slots, Running
		}
	default:
		if err := lv.put(lv.full(i), out.Output); err != nil {
			lv.end(i, dag.Failed, err, nil)
			return
		}
		n.output = out.Output
		lv.end(i, dag.Completed, nil, nil)
	}
}

// put decodes a task's output and puts it in the ledger. The ledger holds
// Go values, so that a Map's gathering step sees its tasks' results as
// they were returned.
func (lv *level) put(task string, out map[string][]byte) *RemoteError {
	m, err := decodeMap(fmt.Sprintf("output of task %q", task), out)
	if err == nil {
		err = lv.ledger.Put(task, m)
	}
	if err != nil {
		return remote(err)
	}
	lv.ops = append(lv.ops, ledgerOp{Task: task, Output: out})
	return nil
}

// activityErr turns the error of task i's activity into its RemoteError,
// and counts its attempts.
func (lv *level) activityErr(i int, err error) *RemoteError {
	n := &lv.nodes[i]
	name := strings.Join(lv.pathOf(i), "/")
	var app *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	var canceled *temporal.CanceledError
	var act *temporal.ActivityError
	most := lv.retries(i) + 1
	switch {
	case errors.As(err, &app):
		var d attemptDetail
		if app.HasDetails() && app.Details(&d) == nil && d.Attempt > 0 {
			n.attempts = d.Attempt
		} else {
			n.attempts = most
		}
		return &RemoteError{Type: app.Type(), Message: app.Message()}
	case errors.As(err, &timeout):
		if errors.As(err, &act) && act.RetryState() == enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED {
			n.attempts = most
		} else {
			n.attempts = max(n.attempts, 1)
		}
		what := "its attempt ran past the task's Timeout"
		if timeout.TimeoutType() == enumspb.TIMEOUT_TYPE_HEARTBEAT {
			what = "its worker stopped answering (no heartbeat within the Workflow's HeartbeatTimeout)"
		}
		return &RemoteError{Type: "context.DeadlineExceeded", Message: fmt.Sprintf("dag: task %q: %s", name, what)}
	case errors.As(err, &canceled):
		n.attempts = max(n.attempts, 1)
		return &RemoteError{Type: "context.Canceled", Message: fmt.Sprintf("dag: task %q was canceled", name)}
	}
	n.attempts = max(n.attempts, 1)
	return remote(err)
}

// startGroup starts group i (a Sub, or an Expand that ran) as a child
// workflow. It lends the group as many slots as are free, up to what the
// group can use, and takes them back when the group ends, so that the
// job's bound holds across workflows.
func (lv *level) startGroup(i int) {
	n := &lv.nodes[i]
	if n.started.IsZero() {
		n.started = workflow.Now(lv.ctx)
	}
	n.state = dag.Running
	children, exps, timeout := n.spec.Sub, lv.exps, n.spec.Timeout
	if n.expanded {
		children, timeout = n.children, 0 // an Expand's Timeout bounds its attempts
		exps = append(exps[:len(exps):len(exps)], expansion{Path: lv.pathOf(i), Values: n.in})
	}
	if lv.slots > 0 {
		w := width(&spec{Kind: kindSub, Sub: children})
		n.lent = lv.slots - lv.used
		if w >= 0 {
			n.lent = min(n.lent, max(w, 1))
		}
	}
	vals, rerr := lv.values(i)
	if rerr != nil {
		lv.end(i, dag.Failed, rerr, nil)
		return
	}
	in := groupInput{Job: lv.job, Run: lv.run, Path: lv.pathOf(i), Tasks: children, Expanded: n.expanded,
		Values: vals, Expansions: exps, MaxParallel: n.lent,
		MaxRetries: lv.maxRetries, KeepGoing: lv.keepGoing, Timeout: timeout}
	ctx := workflow.WithChildOptions(lv.tctx, workflow.ChildWorkflowOptions{
		WorkflowID:          workflow.GetInfo(lv.ctx).WorkflowExecution.ID + "/" + lv.name(i),
		WaitForCancellation: true,
	})
	f := workflow.ExecuteChildWorkflow(ctx, lv.r.groupName(), in)
	n.child = f
	lv.used += n.lent
	lv.pending += 2
	lv.sel.AddFuture(f.GetChildWorkflowExecution(), func(f workflow.Future) {
		lv.pending--
		n.childStarted = f.Get(lv.ctx, nil) == nil
	})
	lv.sel.AddFuture(f, func(f workflow.Future) {
		lv.used -= n.lent
		lv.pending--
		n.child, n.childStarted = nil, false
		lv.groupDone(i, f)
	})
}

// grant lends slots that nothing at this level can use to groups that run
// and could use more, by a signal to their child workflows: a group started
// when few slots were free would otherwise stay narrow. A group keeps what
// it was lent until it ends.
func (lv *level) grant() {
	if lv.slots == 0 || lv.stopping || lv.ready.Len() > 0 {
		return
	}
	for i := range lv.nodes {
		free := lv.slots - lv.used
		if free == 0 {
			return
		}
		n := &lv.nodes[i]
		if n.child == nil || !n.childStarted {
			continue
		}
		children := n.spec.Sub
		if n.expanded {
			children = n.children
		}
		want := free
		if w := width(&spec{Kind: kindSub, Sub: children}); w >= 0 {
			want = w - n.lent
		}
		if g := min(free, want); g > 0 {
			n.lent += g
			lv.used += g
			// The child has started, so this does not block. Its
			// result does not matter: a group that ended meanwhile
			// gives the slots back when its end is seen.
			n.child.SignalChildWorkflow(lv.ctx, signalGrant, g)
		}
	}
}

// signalGrant lends a group's child workflow more slots: its value is how
// many.
const signalGrant = "dag.grant"

func (lv *level) groupDone(i int, f workflow.Future) {
	var gr groupResult
	if err := f.Get(lv.ctx, &gr); err != nil {
		var app *temporal.ApplicationError
		var canceled *temporal.CanceledError
		switch {
		case errors.As(err, &app) && app.HasDetails() && app.Details(&gr) == nil:
		case errors.As(err, &canceled) && canceled.HasDetails() && canceled.Details(&gr) == nil:
		case errors.As(err, &canceled):
			gr = groupResult{State: dag.Canceled}
		default:
			gr = groupResult{State: dag.Failed, Failures: []failure{{Err: remote(err)}}}
		}
	}
	prefix := lv.name(i) + "/"
	for _, t := range gr.Tasks {
		t.Name = prefix + t.Name
		lv.extra = append(lv.extra, t)
	}
	// The group's ledger named its tasks from the group's short name, as
	// this ledger does from its base.
	var conflict *failure
	for _, op := range gr.Ops {
		var rerr *RemoteError
		if op.Expand {
			if err := lv.ledger.Expand(lv.base+op.Task, stubs(op.Children)); err != nil {
				rerr = remote(err)
			} else {
				lv.ops = append(lv.ops, ledgerOp{Task: lv.base + op.Task, Expand: true, Children: op.Children})
			}
		} else {
			rerr = lv.put(lv.base+op.Task, op.Output)
		}
		if rerr != nil {
			conflict = &failure{Task: strings.TrimPrefix(op.Task, lv.name(i)+"/"), Attempts: 1, Err: rerr}
			conflict.Task = prefix + conflict.Task
			break
		}
	}
	fails := make([]failure, len(gr.Failures))
	for k, f := range gr.Failures {
		f.Task = strings.TrimSuffix(prefix+f.Task, "/")
		fails[k] = f
	}
	n := &lv.nodes[i]
	if n.spec.Map && conflict == nil {
		// A Map's Output is the list it gathered: the keys its tasks
		// wrote, as the ledger has them now.
		final := lv.ledger.Context()
		out := map[string]any{}
		for _, op := range gr.Ops {
			if !op.Expand && strings.HasPrefix(op.Task, lv.name(i)+"/") && !strings.Contains(op.Task[len(lv.name(i))+1:], "/") {
				for k := range op.Output {
					out[k] = final[k]
				}
			}
		}
		if b, err := encodeMap(fmt.Sprintf("output of task %q", lv.name(i)), out); err == nil {
			n.output = b
		}
	}
	switch {
	case conflict != nil:
		lv.end(i, dag.Failed, conflict.Err, []failure{*conflict})
	case gr.Conflict:
		// A conflict fails the job whatever ContinueOnFailure says.
		err := &RemoteError{Type: "dag.ErrConflict", Message: "dag: conflict in group " + lv.name(i)}
		for _, f := range fails {
			if isConflict(f.Err) {
				err = f.Err
				break
			}
		}
		lv.end(i, dag.Failed, err, fails)
	case gr.State == dag.Failed:
		// As in dag.Run, a group's error is its first failed task's
		// TaskError.
		var err *RemoteError
		if len(fails) > 0 && fails[0].Err != nil {
			err = &RemoteError{Type: fails[0].Err.Type, Message: fails[0].Err.Message}
			if fails[0].Task != lv.name(i) {
				f := fails[0]
				f.Task = strings.Join(append(lv.path[:len(lv.path):len(lv.path)], f.Task), "/")
				err.Message = taskError(lv.job, f).Error()
			}
		}
		lv.end(i, dag.Failed, err, fails)
	default:
		lv.end(i, gr.State, nil, nil)
	}
}

// end ends task i in state s. A failure that is not tolerated fails the
// level with fails (for a group: its tasks' failures), or with the task's
// own.
func (lv *level) end(i int, s dag.State, err *RemoteError, fails []failure) {
	n := &lv.nodes[i]
	n.state, n.err, n.finished = s, err, workflow.Now(lv.ctx)
	if isConflict(err) {
		lv.conflict = true
	}
	if s == dag.Failed && (!n.spec.Continue || isConflict(err)) {
		if fails == nil {
			fails = []failure{{Task: lv.name(i), Attempts: n.attempts, Err: err}}
		}
		for _, f := range fails {
			f.node = i
			lv.failures = append(lv.failures, f)
		}
		// As in dag.Run, failures are reported in declaration order.
		slices.SortStableFunc(lv.failures, func(a, b failure) int { return cmp.Compare(a.node, b.node) })
		if lv.conflict || !lv.keepGoing {
			lv.halt()
		}
	}
	for _, o := range n.outs {
		if lv.nodes[o].waiting--; lv.nodes[o].waiting == 0 {
			lv.consider(o)
		}
	}
}

func isConflict(err *RemoteError) bool { return err != nil && err.Type == "dag.ErrConflict" }

// halt stops the level: nothing new starts, and pending activities and
// child workflows are cancelled. Their futures still resolve.
func (lv *level) halt() {
	if lv.stopping {
		return
	}
	lv.stopping = true
	lv.stop()
	for lv.ready.Len() > 0 {
		heap.Pop(&lv.ready)
	}
}

// outcome is how the level ended.
func (lv *level) outcome() dag.State {
	switch {
	case len(lv.failures) > 0 || lv.timeout != "":
		return dag.Failed
	case lv.canceled:
		return dag.Canceled
	}
	return dag.Completed
}

// tasks lists every task of the level and of its groups, by name relative
// to it.
func (lv *level) tasks() []taskWire {
	out := make([]taskWire, 0, len(lv.nodes)+len(lv.extra))
	for i := range lv.nodes {
		n := &lv.nodes[i]
		t := taskWire{Name: lv.name(i), State: n.state, Attempts: n.attempts, Err: n.err, Started: n.started, Finished: n.finished}
		if n.state == dag.Completed && (n.spec.Kind == kindFunc || n.spec.Map) {
			t.Output = n.output
			if t.Output == nil {
				t.Output = map[string][]byte{}
			}
		}
		out = append(out, t)
	}
	return append(out, lv.extra...)
}

// states is what the states query answers: every task known so far.
func (lv *level) states() map[string]dag.State {
	m := make(map[string]dag.State, len(lv.nodes)+len(lv.extra))
	var pending func(prefix string, specs []spec)
	pending = func(prefix string, specs []spec) {
		for _, s := range specs {
			m[prefix+s.Name] = dag.Pending
			pending(prefix+s.Name+"/", s.Sub)
		}
	}
	for i := range lv.nodes {
		n := &lv.nodes[i]
		m[lv.name(i)] = n.state
		if n.spec.Kind == kindSub && n.state == dag.Pending {
			pending(lv.name(i)+"/", n.spec.Sub)
		}
	}
	for _, t := range lv.extra {
		m[t.Name] = t.State
	}
	return m
}

// running lists the groups whose child workflows run now.
func (lv *level) running() []string {
	var out []string
	for i := range lv.nodes {
		n := &lv.nodes[i]
		if n.state == dag.Running && (n.spec.Kind == kindSub || n.expanded) {
			out = append(out, lv.name(i))
		}
	}
	return out
}

// progress counts states as dag.Progress does.
func progress(job string, state dag.State, states map[string]dag.State) dag.Progress {
	p := dag.Progress{Job: job, State: state}
	for _, s := range states {
		switch s {
		case dag.Pending:
			p.Pending++
		case dag.Ready:
			p.Ready++
		case dag.Running:
			p.Running++
		case dag.Retrying:
			p.Retrying++
		case dag.Completed:
			p.Completed++
		case dag.Failed:
			p.Failed++
		case dag.Canceled:
			p.Canceled++
		case dag.Skipped:
			p.Skipped++
		case dag.UpstreamFailed:
			p.UpstreamFailed++
		}
	}
	return p
}

// setQueries answers the queries of a level's workflow.
func (lv *level) setQueries(state *dag.State) error {
	if err := workflow.SetQueryHandler(lv.ctx, QueryStates, func() (map[string]dag.State, error) {
		return lv.states(), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandler(lv.ctx, QueryProgress, func() (dag.Progress, error) {
		return progress(lv.job, *state, lv.states()), nil
	}); err != nil {
		return err
	}
	return workflow.SetQueryHandler(lv.ctx, queryGroups, func() ([]string, error) {
		return lv.running(), nil
	})
}

// Query types the job's workflow and its groups' child workflows answer,
// while they run and after. The Temporal CLI can send them too:
//
//	temporal workflow query --workflow-id ID --type dag.progress
const (
	// QueryProgress answers a dag.Progress of the workflow's tasks.
	QueryProgress = "dag.progress"
	// QueryStates answers a map[string]dag.State: each task's state, by
	// name relative to the workflow ("group/task" for a group's tasks). A
	// group's tasks show as Pending before it starts and with their final
	// states once it ended; while it runs they are missing, and their
	// live states are in the group's child workflow, whose ID is the
	// workflow's ID, "/" and the group's name. [Job.States] merges them.
	QueryStates = "dag.states"
	// queryGroups answers the names of the groups running now.
	queryGroups = "dag.groups"
)

// groupInput is the input of a group's child workflow.
type groupInput struct {
	Job         string
	Run         string
	Path        []string
	Tasks       []spec
	Expanded    bool              // the group is an Expand's
	Values      map[string][]byte `json:",omitempty"`
	Expansions  []expansion       `json:",omitempty"`
	MaxParallel int
	MaxRetries  int
	KeepGoing   bool
	Timeout     time.Duration
}

// groupResult is what a group's child workflow returns, or carries in its
// error's details when it fails or is cancelled.
type groupResult struct {
	State    dag.State
	Tasks    []taskWire
	Ops      []ledgerOp
	Failures []failure `json:",omitempty"`
	Conflict bool      `json:",omitempty"`
}

// group is the workflow of a group: it runs the group's tasks.
func (r *registered) group(ctx workflow.Context, in groupInput) (groupResult, error) {
	name := strings.Join(in.Path, "/")
	ledger, err := r.groupLedger(in)
	if err != nil {
		gr := groupResult{State: dag.Failed, Failures: []failure{{Attempts: 1, Err: remote(err)}}}
		return gr, temporal.NewNonRetryableApplicationError(err.Error(), errorType(err), nil, gr)
	}
	short := in.Path[len(in.Path)-1]
	lv := r.newLevel(ctx, levelConfig{job: in.Job, run: in.Run, path: in.Path, specs: in.Tasks, ledger: ledger, base: short + "/",
		exps: in.Expansions, slots: in.MaxParallel, maxRetries: in.MaxRetries, keepGoing: in.KeepGoing})
	state := dag.Running
	if err := lv.setQueries(&state); err != nil {
		return groupResult{}, err
	}
	lv.sel.AddReceive(workflow.GetSignalChannel(ctx, signalGrant), func(c workflow.ReceiveChannel, more bool) {
		var g int
		c.Receive(ctx, &g)
		lv.slots += g
	})
	if in.Timeout > 0 {
		tctx, cancel := workflow.WithCancel(ctx)
		defer cancel()
		lv.sel.AddFuture(workflow.NewTimer(tctx, in.Timeout), func(f workflow.Future) {
			if f.Get(ctx, nil) == nil && !lv.stopping {
				lv.timeout = fmt.Sprintf("dag: group %q timed out after %v: %v", name, in.Timeout, context.DeadlineExceeded)
				lv.halt()
			}
		})
	}
	lv.loop()
	gr := groupResult{State: lv.outcome(), Tasks: lv.tasks(), Ops: lv.ops, Failures: lv.failures, Conflict: lv.conflict}
	if lv.timeout != "" {
		gr.Failures = append(gr.Failures, failure{Attempts: 1, Err: &RemoteError{Type: "context.DeadlineExceeded", Message: lv.timeout}})
	}
	if gr.State == dag.Completed && len(lv.nodes) > 0 {
		gr.State = dag.Skipped
		for i := range lv.nodes {
			if lv.nodes[i].state != dag.Skipped {
				gr.State = dag.Completed
			}
		}
	}
	state = gr.State
	switch gr.State {
	case dag.Failed:
		typ := ErrorTypeTask
		if gr.Conflict {
			typ = ErrorTypeConflict
		}
		return gr, temporal.NewNonRetryableApplicationError(jobMessage(in.Job, gr.Failures), typ, nil, gr)
	case dag.Canceled:
		return gr, temporal.NewCanceledError(gr)
	}
	return gr, nil
}

// groupLedger makes the ledger of a group's child workflow: the group as
// its one task, with what the group sees as the initial context, so that
// the ledger names the group's tasks as its parent's ledger does, from the
// group's short name. The group's own task is the registered one when its
// path has no Expand on the way, so that a Map's gathering step is there;
// else one made from its spec.
func (r *registered) groupLedger(in groupInput) (*dag.Ledger, error) {
	name := strings.Join(in.Path, "/")
	initial, err := decodeMap(fmt.Sprintf("input of group %q", name), in.Values)
	if err != nil {
		return nil, err
	}
	short := in.Path[len(in.Path)-1]
	t, ok := r.static(in.Path)
	switch {
	case ok:
		t.DependsOn, t.When, t.Trigger = nil, nil, dag.AllSucceeded
	case in.Expanded:
		t = dag.Task{Name: short, Expand: stubExpand}
	default:
		t = dag.Task{Name: short, Sub: stubs(in.Tasks)}
	}
	ledger, err := dag.NewLedger([]dag.Task{t}, initial)
	if err != nil {
		return nil, err
	}
	if in.Expanded {
		if err := ledger.Expand(short, stubs(in.Tasks)); err != nil {
			return nil, err
		}
	}
	return ledger, nil
}

// jobMessage is the text of the error of a job that failures failed: the
// text of their dag.TaskErrors.
func jobMessage(job string, fails []failure) string {
	msgs := make([]string, len(fails))
	for k, f := range fails {
		msgs[k] = taskError(job, f).Error()
	}
	return strings.Join(msgs, "\n")
}

func taskError(job string, f failure) *dag.TaskError {
	te := &dag.TaskError{Job: job, Task: f.Task, Attempts: f.Attempts}
	if f.Err != nil {
		te.Err = f.Err
	}
	return te
}
