// Package dagtest helps test a job's wiring without its real side effects
// and without real delays: [Stub] replaces the Funcs of named tasks, the
// fakes ([Return], [Fail], [FailTimes], [Panic], [Block]) stand in for
// them, a [Recorder] records every call with the attempt and what it saw,
// and [NoDelay] retries at once.
//
// Everything here works inside a [testing/synctest] bubble: nothing
// starts a goroutine or reads the clock, and [Block] waits on its
// context alone, so a job that times out or backs off takes no wall time
// there.
//
// To test one TaskFunc alone, call it with [dag.ValuesOf]; dagtest is for
// the job around it.
package dagtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cenkalti/backoff/v4"

	"github.com/dagrun/dag"
)

// Stub returns a copy of tasks in which the task named by each key of
// funcs runs that Func instead of its own. The caller's tasks are left as
// they were.
//
// A name is a task's full name, as events and results give it: "fetch"
// for a task of the job, "etl/load" for the task load of the group etl
// (Task.Sub), at any depth. A name under a task with Expand, such as
// "fan/3", is applied when that Expand runs, to the tasks it returns; if
// none has that name, the Expand fails for good with Stub's error. A stub
// for the Expand task itself (or a [dag.Map]) makes it a plain task that
// runs the stub, keeping its name, dependencies and settings.
//
// Every name must match a task that can be stubbed: a name that matches
// no task, or a group (which has no Func of its own), is an error that
// lists what went wrong, and then Stub returns no tasks.
func Stub(tasks []dag.Task, funcs map[string]dag.TaskFunc) ([]dag.Task, error) {
	out, errs := stub(tasks, funcs, "")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// stub applies funcs, whose names are relative to this level, to tasks;
// prefix is the full name of the level, for messages.
func stub(tasks []dag.Task, funcs map[string]dag.TaskFunc, prefix string) ([]dag.Task, []error) {
	// Split the names between this level and the tasks below.
	here := map[string]dag.TaskFunc{}
	below := map[string]map[string]dag.TaskFunc{}
	for name, f := range funcs {
		parent, rest, ok := strings.Cut(name, "/")
		if !ok {
			here[name] = f
			continue
		}
		if below[parent] == nil {
			below[parent] = map[string]dag.TaskFunc{}
		}
		below[parent][rest] = f
	}

	var errs []error
	out := slices.Clone(tasks)
	found := map[string]bool{}
	for i := range out {
		task := &out[i]
		name := task.Name
		if f, ok := here[name]; ok {
			found[name] = true
			switch {
			case task.Sub != nil:
				errs = append(errs, fmt.Errorf("dagtest: task %q is a group (Task.Sub) and has no Func of its own: stub its tasks, such as %q", prefix+name, prefix+name+"/"+task.Sub[0].Name))
			case task.Expand != nil:
				*task = dag.Task{
					Name: task.Name, Func: f, DependsOn: task.DependsOn, Timeout: task.Timeout,
					MaxRetries: task.MaxRetries, ContinueOnFailure: task.ContinueOnFailure,
					Trigger: task.Trigger, When: task.When, Backoff: task.Backoff,
				}
			default:
				task.Func = f
			}
		}
		sub, ok := below[name]
		if !ok {
			continue
		}
		found[name] = true
		switch {
		case task.Sub != nil:
			var subErrs []error
			task.Sub, subErrs = stub(task.Sub, sub, prefix+name+"/")
			errs = append(errs, subErrs...)
		case task.Expand != nil:
			task.Expand = stubExpand(task.Expand, sub, prefix+name+"/")
		default:
			for rest := range sub {
				errs = append(errs, fmt.Errorf("dagtest: no task %q to stub: task %q has no tasks of its own (no Sub, no Expand)", prefix+name+"/"+rest, prefix+name))
			}
		}
	}
	var missing []string
	for name := range here {
		if !found[name] {
			missing = append(missing, name)
		}
	}
	for name := range below {
		if !found[name] {
			for rest := range below[name] {
				missing = append(missing, name+"/"+rest)
			}
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		errs = append(errs, fmt.Errorf("dagtest: no task %q to stub; %s", prefix+name, known(tasks, prefix)))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return out, errs
}

// stubExpand returns an Expand that runs expand and stubs what it returns.
func stubExpand(expand func(context.Context, dag.Values) ([]dag.Task, error), funcs map[string]dag.TaskFunc, prefix string) func(context.Context, dag.Values) ([]dag.Task, error) {
	return func(ctx context.Context, in dag.Values) ([]dag.Task, error) {
		tasks, err := expand(ctx, in)
		if err != nil {
			return tasks, err
		}
		out, errs := stub(tasks, funcs, prefix)
		if len(errs) > 0 {
			return nil, backoff.Permanent(errors.Join(errs...))
		}
		return out, nil
	}
}

// known describes the names of tasks, for an error message.
func known(tasks []dag.Task, prefix string) string {
	const most = 10
	if len(tasks) == 0 {
		return "there are no tasks here"
	}
	names := make([]string, 0, most)
	for _, task := range tasks[:min(len(tasks), most)] {
		names = append(names, fmt.Sprintf("%q", prefix+task.Name))
	}
	s := "the tasks are " + strings.Join(names, ", ")
	if len(tasks) > most {
		s += fmt.Sprintf(" and %d more", len(tasks)-most)
	}
	return s
}
