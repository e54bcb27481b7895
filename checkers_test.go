package dag_test

// The checkers every job's outcome must pass. checkLegal checks the
// transitions alone, against the table in the doc of dag.State; checkJob
// checks all that must hold of a job's events, Result and Wait's error
// given its tasks and options. Tests of new features call them on every
// job they run.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagrun/dag"
)

// legal reports whether a task may move from one state to another, as the
// table in the doc of dag.State says. Three transitions are only for some
// tasks: Pending -> Running for a group (a task with children, whose
// events name it "group/child"), Pending -> Completed for a task restored
// from an earlier run, and Pending -> Failed for a task whose When
// panicked (which checkJob, knowing the tasks, checks).
func legal(from, to dag.State, group, restored bool) bool {
	switch {
	case to == dag.Canceled:
		return !from.Final()
	case from == dag.Pending:
		switch to {
		case dag.Ready, dag.Skipped, dag.UpstreamFailed:
			return true
		case dag.Failed:
			return true // its When panicked; checkJob checks that it has a When
		case dag.Running:
			return group
		case dag.Completed:
			return restored
		}
	case from == dag.Ready:
		return to == dag.Running
	case from == dag.Running:
		return to == dag.Completed || to == dag.Failed || to == dag.Retrying || to == dag.Skipped
	case from == dag.Retrying:
		return to == dag.Ready
	}
	return false
}

// parentOf returns the group of a task named "group/child", or "".
func parentOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// checkLegal checks the transitions of a job's events, and nothing else:
// the job's first event is its Pending -> Running and its last the move to
// its final state, with no other job event; each task's event starts from
// the state the task's previous event left it in (Pending at first), no
// event follows a task's final one, every task ends before the job does,
// and every transition is in the table of dag.State. A task is a group if
// some event names one of its children ("group/child"); a child leaves
// Pending for Ready or Running only while its group is Running, and a
// group Completes or is Skipped only after all its children ended. The
// tasks named in restored may move Pending -> Completed; no other may.
func checkLegal(t testing.TB, evs []dag.Event, restored ...string) {
	t.Helper()
	if len(evs) < 2 {
		t.Errorf("got %d events; want at least the job's first and final", len(evs))
		return
	}
	if e := evs[0]; e.Task != "" || e.From != dag.Pending || e.To != dag.Running {
		t.Errorf("first event %v; want the job's pending -> running", e)
	}
	if e := evs[len(evs)-1]; e.Task != "" || e.From != dag.Running || (e.To != dag.Completed && e.To != dag.Failed && e.To != dag.Canceled) {
		t.Errorf("last event %v; want the job's move from running to completed, failed or canceled", e)
	}
	isRestored := map[string]bool{}
	for _, name := range restored {
		isRestored[name] = true
	}
	groups := map[string]bool{}
	for _, e := range evs {
		for p := parentOf(e.Task); p != ""; p = parentOf(p) {
			groups[p] = true
		}
	}
	state := map[string]dag.State{}
	children := map[string][]string{} // of each group, in order of their first event
	for i, e := range evs {
		if e.Task == "" {
			if i != 0 && i != len(evs)-1 {
				t.Errorf("event %d (%v) is a job event in the middle of the stream", i, e)
			}
			continue
		}
		from, seen := state[e.Task]
		if !seen {
			if p := parentOf(e.Task); p != "" {
				children[p] = append(children[p], e.Task)
			}
		}
		if e.From != from {
			t.Errorf("event %d (%v): task %q was %v", i, e, e.Task, from)
		}
		if from.Final() {
			t.Errorf("event %d (%v) comes after the task's final event", i, e)
		}
		if !legal(e.From, e.To, groups[e.Task], isRestored[e.Task]) {
			t.Errorf("event %d (%v) is not a legal transition (group %t, restored %t)", i, e, groups[e.Task], isRestored[e.Task])
		}
		if p := parentOf(e.Task); p != "" && e.From == dag.Pending && (e.To == dag.Ready || e.To == dag.Running) && state[p] != dag.Running {
			t.Errorf("event %d (%v): its group %q is %v; want running", i, e, p, state[p])
		}
		if groups[e.Task] && (e.To == dag.Completed || e.To == dag.Skipped) {
			for _, c := range children[e.Task] {
				if !state[c].Final() {
					t.Errorf("event %d (%v): its child %q is still %v", i, e, c, state[c])
				}
			}
		}
		state[e.Task] = e.To
	}
	for name, s := range state {
		if !s.Final() {
			t.Errorf("task %q is %v at the job's end; want a final state", name, s)
		}
	}
}

// outcome is what one job did.
type outcome struct {
	Res    dag.Result
	Err    error
	Events []dag.Event
}

// checkJob checks what must hold of every job: checkLegal's rules, and
// the events against the tasks and options (attempt numbers, errors,
// trigger rules, MaxParallel, the job's name), the Result's agreement with
// the events, and Wait's error. Children of groups are checked by their
// full names; the children an Expand returns are checked as far as the
// events alone allow.
func checkJob(t *testing.T, tasks []dag.Task, opts dag.Options, out outcome) {
	t.Helper()
	var restored []string
	for name, tr := range out.Res.Tasks {
		if tr.Restored {
			restored = append(restored, name)
		}
	}
	checkLegal(t, out.Events, restored...)
	checkEvents(t, flatten(tasks, ""), opts, out)
	checkWaitErr(t, flatten(tasks, ""), opts, out)
}

// flatten lists tasks and the children of their groups (Task.Sub) by full
// name, with DependsOn in full names too.
func flatten(tasks []dag.Task, prefix string) map[string]dag.Task {
	all := map[string]dag.Task{}
	for _, task := range tasks {
		full := prefix + task.Name
		deps := make([]string, len(task.DependsOn))
		for i, d := range task.DependsOn {
			deps[i] = prefix + d
		}
		task.Name, task.DependsOn = full, deps
		all[full] = task
		for name, c := range flatten(task.Sub, full+"/") {
			all[name] = c
		}
	}
	return all
}

// expandedFrom returns the Expand task that name is a child of, if any.
func expandedFrom(all map[string]dag.Task, name string) (dag.Task, bool) {
	for p := parentOf(name); p != ""; p = parentOf(p) {
		if task, ok := all[p]; ok {
			return task, task.Expand != nil
		}
	}
	return dag.Task{}, false
}

func checkEvents(t *testing.T, all map[string]dag.Task, opts dag.Options, out outcome) {
	t.Helper()
	evs := out.Events
	if len(evs) < 2 {
		return // checkLegal said so
	}
	wantFirst := dag.Event{Job: opts.Name, From: dag.Pending, To: dag.Running}
	if !sameEvent(wantFirst, evs[0]) {
		t.Errorf("first event mismatch (-want +got):\n%s", cmp.Diff(wantFirst, evs[0], ignoreTimes))
	}
	wantLast := dag.Event{Job: opts.Name, From: dag.Running, To: out.Res.State, Err: out.Err}
	if last := evs[len(evs)-1]; !sameEvent(wantLast, last) {
		t.Errorf("final event mismatch (-want +got):\n%s", cmp.Diff(wantLast, last, ignoreTimes))
	}

	type seq struct {
		state        dag.State
		runs         int
		firstRun     time.Time
		final        *dag.Event
		lastRetryErr error
		dynamic      bool // a child of an Expand: its task is not declared
		group        bool
	}
	seqs := make(map[string]*seq, len(all))
	for name, task := range all {
		seqs[name] = &seq{group: task.Sub != nil}
	}
	for _, e := range evs {
		if p := parentOf(e.Task); p != "" && seqs[p] != nil {
			seqs[p].group = true
		}
	}
	running := 0 // attempts holding a worker
	for i := range evs {
		e := &evs[i]
		if e.Job != opts.Name {
			t.Errorf("event %d (%v) names job %q; want %q", i, e, e.Job, opts.Name)
		}
		if e.Task == "" {
			continue
		}
		task, declared := all[e.Task]
		s := seqs[e.Task]
		if s == nil {
			if _, ok := expandedFrom(all, e.Task); !ok {
				t.Errorf("event %d (%v) names an unknown task", i, e)
				continue
			}
			s = &seq{dynamic: true}
			seqs[e.Task] = s
		}
		wantAttempt := s.runs
		switch e.To {
		case dag.Running:
			// A group of Task.Sub makes no attempt: it holds no worker,
			// and its events and result count 0 attempts.
			if !declared || task.Sub == nil {
				s.runs++
			}
			wantAttempt = s.runs
			if s.firstRun.IsZero() {
				s.firstRun = e.Time
			}
		case dag.Ready:
			wantAttempt = s.runs + 1
		}
		restoredTask := e.From == dag.Pending && e.To == dag.Completed
		if e.Attempt != wantAttempt && !restoredTask {
			t.Errorf("event %d (%v) has attempt %d; want %d", i, e, e.Attempt, wantAttempt)
		}
		if e.To != dag.Skipped {
			if wantErr := e.To == dag.Failed || e.To == dag.Retrying; (e.Err != nil) != wantErr {
				t.Errorf("event %d (%v) has error %v; want an error: %t", i, e, e.Err, wantErr)
			}
		}
		if declared && e.From == dag.Pending && e.To == dag.Failed && task.When == nil {
			t.Errorf("event %d (%v): a task without When failed before it ran", i, e)
		}
		if declared && e.From == dag.Pending && e.To != dag.Canceled && !restoredTask {
			checkTrigger(t, i, e, task, all, seqs[parentOf(e.Task)] == nil || seqs[parentOf(e.Task)].state == dag.Running,
				func(name string) dag.State { return seqs[name].state })
		}
		if !s.group {
			if e.To == dag.Running {
				running++
			}
			if e.From == dag.Running {
				running--
			}
		}
		if opts.MaxParallel > 0 && running > opts.MaxParallel {
			t.Errorf("event %d (%v): %d attempts running; MaxParallel is %d", i, e, running, opts.MaxParallel)
		}
		if e.To == dag.Retrying {
			s.lastRetryErr = e.Err
		}
		s.state = e.To
		if e.To.Final() {
			s.final = e
		}
	}

	for name := range out.Res.Tasks {
		if seqs[name] == nil {
			t.Errorf("Result.Tasks has %q, which no task and no event names", name)
		}
	}
	for name, s := range seqs {
		tr, ok := out.Res.Tasks[name]
		if !ok {
			t.Errorf("Result.Tasks lacks %q", name)
			continue
		}
		if s.final == nil {
			t.Errorf("task %q has no final event; its last state is %v", name, s.state)
			continue
		}
		if tr.State != s.final.To {
			t.Errorf("Result.Tasks[%q].State = %v; its final event says %v", name, tr.State, s.final.To)
		}
		if tr.Restored {
			continue // its attempts and times are those of the run it was restored from
		}
		if tr.Attempts != s.runs {
			t.Errorf("Result.Tasks[%q].Attempts = %d; its events show %d Running", name, tr.Attempts, s.runs)
		}
		var wantErr error
		switch tr.State {
		case dag.Failed:
			wantErr = s.final.Err
		case dag.Canceled:
			wantErr = s.lastRetryErr
		case dag.Skipped:
			wantErr = tr.Err // ErrSkip's error, when an attempt returned it
		}
		if !errors.Is(tr.Err, wantErr) || (tr.Err == nil) != (wantErr == nil) {
			t.Errorf("Result.Tasks[%q].Err = %v; want %v", name, tr.Err, wantErr)
		}
		if !tr.Started.Equal(s.firstRun) {
			t.Errorf("Result.Tasks[%q].Started = %v; its first Running event is at %v", name, tr.Started, s.firstRun)
		}
		if !tr.Finished.Equal(s.final.Time) {
			t.Errorf("Result.Tasks[%q].Finished = %v; its final event is at %v", name, tr.Finished, s.final.Time)
		}
	}
}

// sameEvent reports whether a and b are equal as ignoreTimes compares
// them (times aside, errors matched with errors.Is either way), without
// cmp's cost: checkJob runs on every job of the soak.
func sameEvent(a, b dag.Event) bool {
	return a.Job == b.Job && a.Task == b.Task && a.From == b.From && a.To == b.To && a.Attempt == b.Attempt &&
		(a.Err == nil) == (b.Err == nil) && (a.Err == nil || errors.Is(a.Err, b.Err) || errors.Is(b.Err, a.Err))
}

// checkTrigger checks event i, which takes a declared task out of Pending
// (to Ready, to Running for a group, to Skipped or UpstreamFailed), against
// the task's dependencies and trigger rule. groupRuns is false when the
// task's group is not running: then its children end without running.
func checkTrigger(t *testing.T, i int, e *dag.Event, task dag.Task, all map[string]dag.Task, groupRuns bool, stateOf func(string) dag.State) {
	t.Helper()
	if !groupRuns && (e.To == dag.Skipped || e.To == dag.UpstreamFailed) {
		return // the group did not run
	}
	states := make([]dag.State, len(task.DependsOn))
	tolerated := make([]bool, len(task.DependsOn))
	for k, d := range task.DependsOn {
		states[k] = stateOf(d)
		tolerated[k] = all[d].ContinueOnFailure
		if !states[k].Final() {
			t.Errorf("event %d (%v): dependency %q is %v; want it ended", i, e, d, states[k])
			return
		}
	}
	decided := task.Trigger.Decide(states, tolerated)
	switch e.To {
	case dag.Ready, dag.Running, dag.Failed: // Failed: its When, asked because the rule said run, panicked
		if decided != dag.Running {
			t.Errorf("event %d (%v): trigger %v on dependencies %v %v says %v; want it to run", i, e, task.Trigger, task.DependsOn, states, decided)
		}
	case dag.Skipped:
		if decided != dag.Skipped && !(decided == dag.Running && task.When != nil) {
			t.Errorf("event %d (%v): trigger %v on dependencies %v %v says %v, and When is nil", i, e, task.Trigger, task.DependsOn, states, decided)
		}
	case dag.UpstreamFailed:
		if decided != dag.UpstreamFailed {
			t.Errorf("event %d (%v): trigger %v on dependencies %v %v says %v", i, e, task.Trigger, task.DependsOn, states, decided)
		}
	}
}

func checkWaitErr(t *testing.T, all map[string]dag.Task, opts dag.Options, out outcome) {
	t.Helper()
	if out.Err != nil && opts.Name != "" && !strings.Contains(out.Err.Error(), opts.Name) {
		t.Errorf("Wait's error %q does not name the job %q", out.Err, opts.Name)
	}
	if out.Err != nil {
		// Each line is a message (KeepGoing joins one per failed task):
		// "dag: " starts the first, and no line says it but at its start.
		msg := out.Err.Error()
		ok := strings.HasPrefix(msg, "dag: ")
		for _, l := range strings.Split(msg, "\n") {
			if n := strings.Count(l, "dag: "); n > 1 || n == 1 && !strings.HasPrefix(l, "dag: ") {
				ok = false
			}
		}
		if !ok {
			t.Errorf("Wait's error %q; want \"dag: \" to start it and no line to say it but at its start", msg)
		}
	}
	switch out.Res.State {
	case dag.Completed:
		if out.Err != nil {
			t.Errorf("Wait() = %v for a completed job; want nil", out.Err)
		}
	case dag.Failed:
		var te *dag.TaskError
		if !errors.As(out.Err, &te) {
			t.Errorf("Wait() = %v for a failed job; want a *dag.TaskError", out.Err)
			return
		}
		tr := out.Res.Tasks[te.Task]
		if errors.Is(out.Err, dag.ErrConflict) {
			// The writer declared later is blamed, though it may have
			// completed before the other writer's output came.
			break
		}
		if tr.State != dag.Failed {
			t.Errorf("Wait's error names task %q, which is %v; want a failed task", te.Task, tr.State)
		}
		if te.Job != opts.Name || te.Attempts != tr.Attempts || !errors.Is(te.Err, tr.Err) {
			t.Errorf("Wait() = %#v; want Job %q, Attempts %d and Err %v, as Result.Tasks says", te, opts.Name, tr.Attempts, tr.Err)
		}
		if all[te.Task].ContinueOnFailure && !errors.Is(out.Err, dag.ErrConflict) {
			t.Errorf("task %q failed the job although it has ContinueOnFailure", te.Task)
		}
	case dag.Canceled:
		if !errors.Is(out.Err, context.Canceled) && !errors.Is(out.Err, context.DeadlineExceeded) {
			t.Errorf("Wait() = %v for a canceled job; want an error matching context.Canceled or context.DeadlineExceeded", out.Err)
		}
	default:
		t.Errorf("Result.State = %v; want Completed, Failed or Canceled", out.Res.State)
	}
}

// fakeT records what a checker reports, to test the checker.
type fakeT struct {
	testing.TB // nil: only Helper and Errorf are called
	errs       []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

// TestCheckLegal feeds checkLegal streams that break one rule each, and
// legal ones: it must be exactly as strict as the table of dag.State.
func TestCheckLegal(t *testing.T) {
	t.Parallel()
	job := func(from, to dag.State) dag.Event { return dag.Event{From: from, To: to} }
	ev := func(task string, from, to dag.State) dag.Event { return dag.Event{Task: task, From: from, To: to} }
	start, done := job(dag.Pending, dag.Running), job(dag.Running, dag.Completed)
	ok := func(task string) []dag.Event {
		return []dag.Event{ev(task, dag.Pending, dag.Ready), ev(task, dag.Ready, dag.Running), ev(task, dag.Running, dag.Completed)}
	}
	stream := func(parts ...any) []dag.Event {
		evs := []dag.Event{start}
		for _, p := range parts {
			switch p := p.(type) {
			case dag.Event:
				evs = append(evs, p)
			case []dag.Event:
				evs = append(evs, p...)
			}
		}
		return append(evs, done)
	}
	for _, tc := range []struct {
		name     string
		evs      []dag.Event
		restored []string
		legal    bool
	}{
		{"a task that runs", stream(ok("a")), nil, true},
		{"a retry", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Ready, dag.Running), ev("a", dag.Running, dag.Retrying),
			ev("a", dag.Retrying, dag.Ready), ev("a", dag.Ready, dag.Running), ev("a", dag.Running, dag.Failed)), nil, true},
		{"Retrying -> Running", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Ready, dag.Running), ev("a", dag.Running, dag.Retrying),
			ev("a", dag.Retrying, dag.Running), ev("a", dag.Running, dag.Completed)), nil, false},
		{"Pending -> Skipped", stream(ev("a", dag.Pending, dag.Skipped)), nil, true},
		{"Pending -> UpstreamFailed", stream(ev("a", dag.Pending, dag.UpstreamFailed)), nil, true},
		{"Running -> Skipped", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Ready, dag.Running), ev("a", dag.Running, dag.Skipped)), nil, true},
		{"Ready -> Canceled", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Ready, dag.Canceled)), nil, true},
		{"Retrying -> Canceled", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Ready, dag.Running), ev("a", dag.Running, dag.Retrying), ev("a", dag.Retrying, dag.Canceled)), nil, true},
		{"Completed -> Canceled", stream(ok("a"), ev("a", dag.Completed, dag.Canceled)), nil, false},
		{"Pending -> Running, not a group", stream(ev("a", dag.Pending, dag.Running), ev("a", dag.Running, dag.Completed)), nil, false},
		{"a group", stream(ev("g", dag.Pending, dag.Running), ok("g/c"), ev("g", dag.Running, dag.Completed)), nil, true},
		{"a child before its group runs", stream(ev("g/c", dag.Pending, dag.Ready), ev("g", dag.Pending, dag.Running), ev("g/c", dag.Ready, dag.Running),
			ev("g/c", dag.Running, dag.Completed), ev("g", dag.Running, dag.Completed)), nil, false},
		{"a group completing before its child", stream(ev("g", dag.Pending, dag.Running), ev("g/c", dag.Pending, dag.Ready),
			ev("g", dag.Running, dag.Completed), ev("g/c", dag.Ready, dag.Running), ev("g/c", dag.Running, dag.Completed)), nil, false},
		{"children of a group that did not run", stream(ev("g", dag.Pending, dag.UpstreamFailed), ev("g/c", dag.Pending, dag.UpstreamFailed)), nil, true},
		{"Pending -> Failed (a When that panicked)", stream(ev("a", dag.Pending, dag.Failed)), nil, true},
		{"Pending -> Completed, restored", stream(ev("a", dag.Pending, dag.Completed)), []string{"a"}, true},
		{"Pending -> Completed, not restored", stream(ev("a", dag.Pending, dag.Completed)), []string{"b"}, false},
		{"Ready -> Completed", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Ready, dag.Completed)), nil, false},
		{"a wrong From", stream(ev("a", dag.Pending, dag.Ready), ev("a", dag.Pending, dag.Ready)), nil, false},
		{"an event after the final one", stream(ok("a"), ev("a", dag.Completed, dag.Failed)), nil, false},
		{"a task that never ends", stream(ev("a", dag.Pending, dag.Ready)), nil, false},
		{"a job event in the middle", []dag.Event{start, done, ev("a", dag.Pending, dag.Skipped), done}, nil, false},
		{"no final job event", []dag.Event{start, ev("a", dag.Pending, dag.Skipped)}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeT{}
			checkLegal(f, tc.evs, tc.restored...)
			if got := len(f.errs) == 0; got != tc.legal {
				t.Errorf("checkLegal reported %q; want legal %t", f.errs, tc.legal)
			}
		})
	}
}

// TestCheckJobComposed runs jobs with groups, nested groups, Expand, Map,
// When, trigger rules, ErrSkip and KeepGoing through checkJob, with each
// MaxParallel: the checkers must accept what the documented rules allow,
// and the scheduler must keep them.
func TestCheckJobComposed(t *testing.T) {
	t.Parallel()
	put := func(key string) dag.TaskFunc { return succeed(map[string]any{key: key}) }
	skip := fail(fmt.Errorf("nothing to do: %w", dag.ErrSkip))
	double := func(_ context.Context, n int) (int, error) { return 2 * n, nil }
	cases := []struct {
		name  string
		tasks []dag.Task
		opts  dag.Options
	}{
		{"groups", []dag.Task{
			{Name: "a", Func: put("a")},
			{Name: "g", DependsOn: []string{"a"}, Sub: []dag.Task{
				{Name: "x", Func: put("x")},
				{Name: "h", DependsOn: []string{"x"}, Sub: []dag.Task{{Name: "y", Func: put("y")}}},
			}},
			{Name: "b", DependsOn: []string{"g"}, Func: put("b")},
		}, dag.Options{}},
		{"a failing group", []dag.Task{
			{Name: "g", Sub: []dag.Task{
				{Name: "x", Func: fail(errBoom)},
				{Name: "y", DependsOn: []string{"x"}, Func: put("y")},
				{Name: "z", Func: put("z")},
			}},
			{Name: "after", DependsOn: []string{"g"}, Func: put("after")},
		}, dag.Options{}},
		{"a group that does not run", []dag.Task{
			{Name: "a", Func: fail(errBoom)},
			{Name: "g", DependsOn: []string{"a"}, Sub: []dag.Task{{Name: "x", Func: put("x")}, {Name: "y", DependsOn: []string{"x"}, Func: put("y")}}},
			{Name: "cleanup", DependsOn: []string{"g"}, Trigger: dag.AllDone, Func: put("cleanup")},
		}, dag.Options{KeepGoing: true}},
		{"a group after a tolerated failure", []dag.Task{
			{Name: "a", Func: fail(errBoom), ContinueOnFailure: true},
			{Name: "g", DependsOn: []string{"a"}, Trigger: dag.NoneFailed, Sub: []dag.Task{{Name: "x", Func: put("x")}}},
		}, dag.Options{}},
		{"a group that times out", []dag.Task{
			{Name: "g", Timeout: time.Second, Sub: []dag.Task{
				{Name: "x", Func: put("x")},
				{Name: "slow", Func: func(ctx context.Context, _ dag.Values) (map[string]any, error) { <-ctx.Done(); return nil, ctx.Err() }},
				{Name: "y", DependsOn: []string{"slow"}, Func: put("y")},
			}},
			{Name: "after", DependsOn: []string{"g"}, Trigger: dag.AllDone, Func: put("after")},
		}, dag.Options{KeepGoing: true}},
		{"Expand and Map", []dag.Task{
			{Name: "list", Func: succeed(map[string]any{"xs": []int{1, 2, 3}})},
			func() dag.Task { m := dag.Map("doubles", "xs", "ys", double); m.DependsOn = []string{"list"}; return m }(),
			{Name: "fan", DependsOn: []string{"list"}, Expand: func(context.Context, dag.Values) ([]dag.Task, error) {
				return []dag.Task{{Name: "p", Func: put("p")}, {Name: "q", DependsOn: []string{"p"}, Func: put("q")}}, nil
			}},
		}, dag.Options{}},
		{"When, triggers and ErrSkip", []dag.Task{
			{Name: "m", Func: put("m")},
			{Name: "no", DependsOn: []string{"m"}, When: func(dag.Values) bool { return false }, Func: put("no")},
			{Name: "skips", DependsOn: []string{"m"}, Func: skip},
			{Name: "join", DependsOn: []string{"no", "skips"}, Trigger: dag.NoneFailed, Func: put("join")},
			{Name: "strict", DependsOn: []string{"no"}, Func: put("strict")},
			{Name: "any", DependsOn: []string{"m", "no"}, Trigger: dag.AnySucceeded, Func: put("any")},
		}, dag.Options{}},
		{"KeepGoing", []dag.Task{
			{Name: "bad", Func: fail(errBoom)},
			{Name: "good", Func: put("good")},
			{Name: "after-bad", DependsOn: []string{"bad"}, Func: put("after-bad")},
			{Name: "alert", DependsOn: []string{"bad", "good"}, Trigger: dag.AnyFailed, Func: put("alert")},
		}, dag.Options{KeepGoing: true}},
	}
	for _, tc := range cases {
		for _, mp := range parallels {
			t.Run(fmt.Sprintf("%s/MaxParallel=%d", tc.name, mp), func(t *testing.T) {
				opts := tc.opts
				opts.Name, opts.MaxParallel = "composed", mp
				synctest.Test(t, func(t *testing.T) {
					runJob(t, tc.tasks, opts) // checkJob fails the test on a broken rule
				})
			})
		}
	}
}
