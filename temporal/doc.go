// Package dagtemporal runs the tasks of a dag job as a Temporal workflow,
// for jobs that must survive the loss of their machine, run for days, or
// spread their steps over many workers.
//
// The tasks are the same []dag.Task that dag.Run takes, with the same
// meaning: dependencies, trigger rules, When, groups (Sub), Expand and
// Map, retries, timeouts, ContinueOnFailure, KeepGoing and the job
// context. What changes is where they run: each task's Func runs as a
// Temporal activity on whichever worker takes it, the order between them
// is kept by a workflow, and Temporal's history makes the job durable: a
// worker that dies loses only the attempts it was running.
//
// # Workers and clients
//
// A worker registers a [Workflow]: a name and the tasks. Every worker of
// the workflow holds the same tasks, since activities find a task's Func
// by its name:
//
//	w := worker.New(c, "queue", worker.Options{})
//	wf := &dagtemporal.Workflow{Name: "smoothie", Tasks: tasks}
//	if err := wf.Register(w); err != nil { ... } // the tasks are not a valid DAG
//	err = w.Run(worker.InterruptCh())
//
// A client starts jobs by name, with dag.Options, and waits for a
// dag.Result, which needs no tasks at all:
//
//	job, err := dagtemporal.Start(ctx, c, "smoothie",
//		client.StartWorkflowOptions{TaskQueue: "queue"}, dag.Options{Context: initial})
//	res, err := job.Wait(ctx)
//
// # Values
//
// The job context crosses processes, so its values are encoded, each on
// its own, with encoding/gob: an int stays an int, a []string a []string,
// which Temporal's JSON would not keep. A value whose type is not one of
// gob's basic types travels in an interface and must be registered with
// gob.Register, in the workers and in the clients, before it is sent. A
// value gob cannot encode fails its task for good with an error matching
// dag.ErrNotSerializable that names the key and the type.
//
// # How tasks map to Temporal
//
//   - A task's Func or Expand is an activity named Name+"/"+task ("Name/g/t"
//     inside group g). Its Timeout is the activity's StartToCloseTimeout
//     (none: ten years); its retries are the retry policy's MaximumAttempts
//     minus one, spaced as dag.Run's default backoff is (100 ms, doubling
//     up to 10 s, no jitter); Task.Backoff and Options.Backoff are not used.
//     An error wrapped with backoff.Permanent is a non-retryable
//     ApplicationError; a panic is an error with its stack.
//   - Activities heartbeat, so that the server retries the attempt of a
//     worker that died within Workflow.HeartbeatTimeout, and so that a
//     cancelled job reaches the Funcs' contexts. A lost attempt costs the
//     task one attempt: give tasks retries if workers may die.
//   - A group (Sub) and the tasks an Expand returned run as a child
//     workflow of type Name+":group", whose ID is the job's workflow ID, a
//     "/" and the group's full name. An Expand's tasks are known to the
//     workflow by their names only: a worker that runs one of them finds its
//     Func by running the Expand again with the input it had (it keeps the
//     last 256 expansions), so an Expand must return the same tasks for the
//     same input. A dag.Map returned by an Expand is refused.
//   - When runs in a local activity, whose answer the history records; a
//     task it turns down takes no activity.
//   - Options.MaxParallel bounds the activities pending at once across the
//     job, its groups included: a group's child workflow is lent free slots,
//     up to what it can use, and keeps them until it ends. 0 means no bound
//     (the workers' own limits still apply). Options.Timeout is the
//     workflow's run timeout. Options.Events, Resume and Checkpoint are
//     refused: query the job instead, and Temporal's history already makes
//     it durable.
//   - Inside a Func run by a worker, TaskInfoFromContext reports the job's
//     name, the task's full path, Temporal's attempt number and the
//     attempt's start.
//
// # Errors
//
// A job that fails ends its workflow with a Temporal ApplicationError of
// type [ErrorTypeTask] or [ErrorTypeConflict]; [Job.Wait] turns it back
// into what dag's Job.Wait returns: *dag.TaskError values, whose Err is a
// [*RemoteError] that errors.Is still matches against dag's and context's
// sentinels (dag.ErrConflict, dag.ErrSkip, context.DeadlineExceeded, …).
// [ConvertError] and [Outcome] do the same for programs that use the
// Temporal client or its test suite directly.
//
// # Progress
//
// The workflows answer the queries [QueryProgress] and [QueryStates] while
// they run and after; [Job.Progress] and [Job.States] ask them, merging in
// the tasks of groups that run at the time.
//
// # Determinism
//
// Temporal replays a workflow's code against its history, so that code
// takes the same steps every time. Here it is a loop over the validated
// graph in one coroutine: it waits on one workflow.Selector, reads the
// time only through workflow.Now, visits tasks in declaration order and
// ready tasks by the longest chain ahead then declaration order (as
// dag.Run does), and runs none of the tasks' code: Funcs and Expands run
// in activities and When in a local activity. Validation, trigger rules
// and the job context with its conflict check are the core's
// (dag.Validate, dag.Trigger.Decide, dag.Ledger), whose answers depend
// only on the calls made. Test a change against recorded histories with
// worker.WorkflowReplayer, replaying with the original workflow ID (groups'
// child workflows are named from it).
package dagtemporal
