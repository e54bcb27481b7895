package dag

import "fmt"

// A Trigger is the rule that decides, once every dependency of a task has
// ended, whether the task runs. A task that does not run ends Skipped or
// UpstreamFailed without taking a worker. A dependency that Failed with
// ContinueOnFailure is a tolerated failure; one that Failed without it is a
// failure. A dependency Canceled (by its group's Timeout) counts as a
// failure too.
//
// The zero Trigger is AllSucceeded.
type Trigger uint8

const (
	// AllSucceeded runs the task when every dependency Completed or had a
	// tolerated failure. Otherwise the task ends UpstreamFailed if a
	// dependency failed or is UpstreamFailed, and Skipped if not.
	AllSucceeded Trigger = iota
	// NoneFailed runs the task unless a dependency failed or is
	// UpstreamFailed: Skipped dependencies are fine. Otherwise the task ends
	// UpstreamFailed. It is the rule for a join after a branch.
	NoneFailed
	// AllDone runs the task once every dependency has ended, however.
	AllDone
	// AnyFailed runs the task when at least one dependency Failed (tolerated
	// or not) or is UpstreamFailed, and ends it Skipped otherwise: for
	// alerts and clean-up.
	AnyFailed
	// AnySucceeded runs the task when at least one dependency Completed.
	// Otherwise the task ends UpstreamFailed if a dependency failed or is
	// UpstreamFailed, and Skipped if not.
	AnySucceeded
	numTriggers
)

var triggerNames = [...]string{"all_succeeded", "none_failed", "all_done", "any_failed", "any_succeeded"}

// String returns the rule's name, such as "none_failed".
func (t Trigger) String() string {
	if t < numTriggers {
		return triggerNames[t]
	}
	return fmt.Sprintf("Trigger(%d)", uint8(t))
}

// tally counts how a task's dependencies ended, as the rules see them.
type tally struct {
	completed, tolerated, failed, upstream, skipped int
}

func (c *tally) add(s State, tolerated bool) {
	switch s {
	case Completed:
		c.completed++
	case Failed:
		if tolerated {
			c.tolerated++
		} else {
			c.failed++
		}
	case UpstreamFailed:
		c.upstream++
	case Canceled:
		c.failed++
	default: // Skipped
		c.skipped++
	}
}

// decide applies rule t to the tally: Running if the task runs, else
// Skipped or UpstreamFailed.
func (t Trigger) decide(c tally) State {
	total := c.completed + c.tolerated + c.failed + c.upstream + c.skipped
	if total == 0 {
		return Running
	}
	bad := c.failed + c.upstream
	switch t {
	case NoneFailed:
		if bad == 0 {
			return Running
		}
		return UpstreamFailed
	case AllDone:
		return Running
	case AnyFailed:
		if c.failed+c.tolerated+c.upstream > 0 {
			return Running
		}
		return Skipped
	case AnySucceeded:
		if c.completed > 0 {
			return Running
		}
	default: // AllSucceeded
		if c.completed+c.tolerated == total {
			return Running
		}
	}
	if bad > 0 {
		return UpstreamFailed
	}
	return Skipped
}

// Decide applies the rule to how a task's dependencies ended: states[i]
// is the final state of dependency i, and tolerated[i] says that it had
// ContinueOnFailure. It returns Running if the task runs, or the state it
// ends in: Skipped or UpstreamFailed. A state that is not final is taken as
// Skipped.
//
// Run applies the rules itself. Decide is exported so that other executors
// of the same tasks, such as the temporal module, apply exactly the same
// rules rather than a copy of them.
func (t Trigger) Decide(states []State, tolerated []bool) State {
	var c tally
	for i, s := range states {
		c.add(s, i < len(tolerated) && tolerated[i])
	}
	return t.decide(c)
}
