package dag

import (
	"fmt"
	"strings"
)

// Progress is a snapshot of a running job: how many tasks are in each
// state.
type Progress struct {
	// Job is Options.Name, and State the job's state.
	Job   string
	State State
	// Tasks by state.
	Pending, Ready, Running, Retrying, Completed, Failed, Canceled, Skipped, UpstreamFailed int
	// Abandoned counts attempts that were abandoned (their context ended
	// and the job moved on) and whose Func has not returned yet.
	Abandoned int
}

// Progress returns how many tasks are in each state now. It is safe to
// call at any time, also after the job ended.
func (j *Job) Progress() Progress {
	s := j.s
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.counts
	return Progress{
		Job: s.opts.Name, State: s.state,
		Pending: c[Pending], Ready: c[Ready], Running: c[Running], Retrying: c[Retrying],
		Completed: c[Completed], Failed: c[Failed], Canceled: c[Canceled],
		Skipped: c[Skipped], UpstreamFailed: c[UpstreamFailed],
		Abandoned: s.abandoned,
	}
}

// Count returns how many tasks are in state s.
func (p Progress) Count(s State) int {
	switch s {
	case Pending:
		return p.Pending
	case Ready:
		return p.Ready
	case Running:
		return p.Running
	case Retrying:
		return p.Retrying
	case Completed:
		return p.Completed
	case Failed:
		return p.Failed
	case Canceled:
		return p.Canceled
	case Skipped:
		return p.Skipped
	case UpstreamFailed:
		return p.UpstreamFailed
	}
	return 0
}

// Total returns the number of tasks the job has so far, children of
// groups included. It grows when an Expand adds tasks.
func (p Progress) Total() int {
	n := 0
	for s := range numStates {
		n += p.Count(s)
	}
	return n
}

// Done returns the number of tasks in a final state.
func (p Progress) Done() int {
	return p.Completed + p.Failed + p.Canceled + p.Skipped + p.UpstreamFailed
}

// Percent returns the share of the tasks in state s, from 0 to 100; 0 for
// a job without tasks.
func (p Progress) Percent(s State) float64 {
	t := p.Total()
	if t == 0 {
		return 0
	}
	return 100 * float64(p.Count(s)) / float64(t)
}

// String reads like "37/120 done: 30 completed, 2 failed, 5 skipped; 4
// running, 6 ready". States with no task are left out, and so is the part
// after the semicolon when nothing is under way.
func (p Progress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d done", p.Done(), p.Total())
	sep := ": "
	for _, s := range [...]State{Completed, Failed, Skipped, UpstreamFailed, Canceled} {
		if n := p.Count(s); n > 0 {
			fmt.Fprintf(&b, "%s%d %s", sep, n, stateWords[s])
			sep = ", "
		}
	}
	sep = "; "
	for _, s := range [...]State{Running, Retrying, Ready} {
		if n := p.Count(s); n > 0 {
			fmt.Fprintf(&b, "%s%d %s", sep, n, stateWords[s])
			sep = ", "
		}
	}
	if p.Abandoned > 0 {
		fmt.Fprintf(&b, "%s%d abandoned", sep, p.Abandoned)
	}
	return b.String()
}

// stateWords names states in prose.
var stateWords = [...]string{"pending", "ready", "running", "retrying", "completed", "failed", "canceled", "skipped", "upstream failed"}
