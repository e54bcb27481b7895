package dagtemporal

import (
	"context"
	"errors"
	"fmt"

	"github.com/dagrun/dag"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The types of the Temporal ApplicationError that a failed job's workflow
// fails with. [Job.Wait] and [ConvertError] turn it back into dag's
// errors; a program that reads the workflow's error with the Temporal
// client directly can match the type:
//
//	var app *temporal.ApplicationError
//	if errors.As(err, &app) && app.Type() == dagtemporal.ErrorTypeConflict { ... }
const (
	// ErrorTypeTask: tasks failed the job. The error's details are the
	// failed tasks and the job's partial result.
	ErrorTypeTask = "dag.TaskError"
	// ErrorTypeConflict: two tasks that do not depend on each other wrote
	// the same key (dag.ErrConflict); details as for ErrorTypeTask.
	ErrorTypeConflict = "dag.ErrConflict"
)

// Input is the argument of a job's workflow: the settings of one job, from
// dag.Options. [Start] makes it; a program that starts the workflow
// itself, for example as a child workflow of its own, makes it with
// [NewInput].
type Input struct {
	// Job is dag.Options.Name.
	Job string
	// Context is the initial job context, each value encoded with
	// encoding/gob on its own.
	Context map[string][]byte `json:",omitempty"`
	// MaxParallel bounds how many activities the job has pending (started
	// or waiting for a worker) at once, across its groups' child
	// workflows; 0 means no bound. Workers bound what they run with
	// worker.Options.
	MaxParallel int `json:",omitempty"`
	// MaxRetries is dag.Options.MaxRetries.
	MaxRetries int `json:",omitempty"`
	// KeepGoing is dag.Options.KeepGoing.
	KeepGoing bool `json:",omitempty"`
}

// NewInput makes the Input of a job from opts. Name, Context,
// MaxParallel, MaxRetries and KeepGoing carry over. Options that cannot
// cross to Temporal are refused with an error matching
// dag.ErrInvalidOptions rather than dropped: Events (query the workflow
// instead, see [Job.Progress]), Backoff (Temporal's retry policy spaces
// retries), Resume and Checkpoint (Temporal's history makes the job
// durable), and Timeout (set the workflow's run timeout, as [Start] does).
// A value of Context that encoding/gob cannot encode is an error matching
// dag.ErrNotSerializable.
func NewInput(opts dag.Options) (Input, error) {
	var errs []error
	bad := func(field, instead string) {
		errs = append(errs, matchErr(dag.ErrInvalidOptions, "dag: Options.%s cannot be used with Temporal; %s", field, instead))
	}
	if opts.Events != nil {
		bad("Events", "query the workflow's progress and task states instead (Job.Progress, Job.States)")
	}
	if opts.Backoff != nil {
		bad("Backoff", "Temporal's retry policy spaces the retries (100 ms, doubling up to 10 s)")
	}
	if opts.Resume != nil || opts.Checkpoint != nil {
		bad("Resume and Options.Checkpoint", "Temporal's history already makes the job durable")
	}
	if opts.Timeout != 0 {
		bad("Timeout", "set the workflow's run timeout (Start does it for you)")
	}
	if opts.MaxParallel < 0 || opts.MaxRetries < 0 {
		errs = append(errs, matchErr(dag.ErrInvalidOptions, "dag: Options.MaxParallel (%d) and Options.MaxRetries (%d) must not be negative", opts.MaxParallel, opts.MaxRetries))
	}
	ctx, err := encodeMap("Options.Context", opts.Context)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Input{}, err
	}
	return Input{Job: opts.Name, Context: ctx, MaxParallel: opts.MaxParallel, MaxRetries: opts.MaxRetries, KeepGoing: opts.KeepGoing}, nil
}

// root is the job's workflow.
func (r *registered) root(ctx workflow.Context, in Input) (converter.RawValue, error) {
	exec := workflow.GetInfo(ctx).WorkflowExecution
	initial, err := decodeMap("Options.Context", in.Context)
	var ledger *dag.Ledger
	if err == nil {
		ledger, err = dag.NewLedger(r.tasks, initial)
	}
	if err != nil {
		return converter.RawValue{}, temporal.NewNonRetryableApplicationError(err.Error(), errorType(err), nil)
	}
	lv := r.newLevel(ctx, levelConfig{job: in.Job, run: exec.ID + "\x00" + exec.RunID, specs: r.specs, ledger: ledger,
		slots: in.MaxParallel, maxRetries: in.MaxRetries, keepGoing: in.KeepGoing})
	state := dag.Running
	if err := lv.setQueries(&state); err != nil {
		return converter.RawValue{}, err
	}
	lv.loop()
	state = lv.outcome()
	final, err := encodeMap("job context", lv.ledger.Context())
	if err != nil {
		return converter.RawValue{}, temporal.NewNonRetryableApplicationError(err.Error(), errorType(err), nil)
	}
	res, err := encodeResult(resultWire{Job: in.Job, State: state, Context: sortedKV(anys(final)), Tasks: lv.tasks()})
	if err != nil {
		return converter.RawValue{}, err
	}
	switch state {
	case dag.Failed:
		typ := ErrorTypeTask
		if lv.conflict {
			typ = ErrorTypeConflict
		}
		return converter.RawValue{}, temporal.NewNonRetryableApplicationError(jobMessage(in.Job, lv.failures), typ, nil, jobFailures{in.Job, lv.failures}, res)
	case dag.Canceled:
		return converter.RawValue{}, temporal.NewCanceledError(res)
	}
	return res, nil
}

// Start starts a job of the workflow registered as name (see
// [Workflow.Register]) on c, with opts as dag.Run takes them (see
// [NewInput] for which fields apply), and returns at once. sopts are the
// Temporal options of the workflow: its ID, task queue and so on.
// Options.Timeout, if set, becomes sopts.WorkflowRunTimeout.
func Start(ctx context.Context, c client.Client, name string, sopts client.StartWorkflowOptions, opts dag.Options) (*Job, error) {
	if opts.Timeout != 0 {
		sopts.WorkflowRunTimeout = opts.Timeout
		opts.Timeout = 0
	}
	in, err := NewInput(opts)
	if err != nil {
		return nil, err
	}
	run, err := c.ExecuteWorkflow(ctx, sopts, name, in)
	if err != nil {
		return nil, err
	}
	return &Job{c: c, id: run.GetID(), runID: run.GetRunID()}, nil
}

// A Job is a job running as a Temporal workflow, seen from a client. Its
// methods are safe for concurrent use; each makes calls to the Temporal
// server.
type Job struct {
	c         client.Client
	id, runID string
}

// NewJob returns the Job of a workflow started earlier, possibly by
// another process, from its workflow ID and run ID ("" for the latest
// run).
func NewJob(c client.Client, workflowID, runID string) *Job {
	return &Job{c: c, id: workflowID, runID: runID}
}

// ID returns the job's workflow ID.
func (j *Job) ID() string { return j.id }

// RunID returns the job's workflow run ID.
func (j *Job) RunID() string { return j.runID }

// Wait blocks until the job ends, or ctx does, and returns its result and
// nil or why the job did not complete, as dag's Job.Wait does: an error
// that errors.As finds a *dag.TaskError in (one per failed task, joined),
// whose Err is a *RemoteError; an error matching dag.ErrConflict for a
// conflict; context.Canceled if the job was cancelled;
// context.DeadlineExceeded if it ran past Options.Timeout (its Result is
// then empty: Temporal ends such a workflow without a word from it). The
// error also holds the Temporal error, for errors.As.
func (j *Job) Wait(ctx context.Context) (dag.Result, error) {
	var raw converter.RawValue
	err := j.c.GetWorkflow(ctx, j.id, j.runID).Get(ctx, &raw)
	if err != nil && ctx.Err() != nil {
		return dag.Result{}, err
	}
	return Outcome(raw, err)
}

// Outcome turns what the Temporal client gives for a job's workflow, its
// raw result (read into a converter.RawValue) and its error, into a
// dag.Result and an error, as [Job.Wait] returns them. It is for programs
// that run the workflow with the Temporal client or its test suite
// directly.
func Outcome(raw converter.RawValue, err error) (dag.Result, error) {
	if err != nil {
		return convert(err)
	}
	if raw.Payload() == nil {
		return dag.Result{}, fmt.Errorf("dag: the workflow returned no result: is it a dag job?")
	}
	return decodeResult(raw.Payload())
}

// Cancel asks Temporal to cancel the job: running activities are
// cancelled (a Func sees its context done when its worker next sends a
// heartbeat, which the SDK does at most every 0.8 of the
// HeartbeatTimeout), nothing new starts, and the job ends Canceled. It
// does not wait; use Wait.
func (j *Job) Cancel(ctx context.Context) error {
	return j.c.CancelWorkflow(ctx, j.id, j.runID)
}

// States returns each task's state now, by full name, including the tasks
// of groups that run now, read from their child workflows. A Retrying
// task shows as Running: Temporal retries it within one activity.
func (j *Job) States(ctx context.Context) (map[string]dag.State, error) {
	out := map[string]dag.State{}
	if err := j.states(ctx, j.id, j.runID, "", out); err != nil {
		return nil, err
	}
	return out, nil
}

func (j *Job) states(ctx context.Context, id, runID, prefix string, out map[string]dag.State) error {
	var m map[string]dag.State
	if err := query(ctx, j.c, id, runID, QueryStates, &m); err != nil {
		return err
	}
	for k, s := range m {
		out[prefix+k] = s
	}
	var groups []string
	if err := query(ctx, j.c, id, runID, queryGroups, &groups); err != nil {
		return err
	}
	for _, g := range groups {
		// A group that has not reached the server yet shows as Running.
		err := j.states(ctx, id+"/"+g, "", prefix+g+"/", out)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return err
		}
	}
	return nil
}

// Progress returns how many of the job's tasks are in each state now,
// counted from States.
func (j *Job) Progress(ctx context.Context) (dag.Progress, error) {
	var p dag.Progress
	if err := query(ctx, j.c, j.id, j.runID, QueryProgress, &p); err != nil {
		return dag.Progress{}, err
	}
	states, err := j.States(ctx)
	if err != nil {
		return dag.Progress{}, err
	}
	return progress(p.Job, p.State, states), nil
}

func query(ctx context.Context, c client.Client, id, runID, typ string, v any) error {
	enc, err := c.QueryWorkflow(ctx, id, runID, typ)
	if err != nil {
		return err
	}
	return enc.Get(v)
}

// ConvertError turns the error of a job's workflow, as the Temporal client
// returns it, into dag's errors, as [Job.Wait] returns them; it returns
// any other error unchanged.
func ConvertError(err error) error {
	_, err = convert(err)
	return err
}

// convert turns the error of a job's workflow into its partial result and
// dag's errors.
func convert(err error) (dag.Result, error) {
	var app *temporal.ApplicationError
	var canceled *temporal.CanceledError
	var timeout *temporal.TimeoutError
	var res dag.Result
	switch {
	case errors.As(err, &app) && (app.Type() == ErrorTypeTask || app.Type() == ErrorTypeConflict):
		var fails jobFailures
		var raw converter.RawValue
		if derr := app.Details(&fails, &raw); derr != nil {
			return res, err
		}
		if raw.Payload() != nil {
			res, _ = decodeResult(raw.Payload())
		}
		errs := make([]error, len(fails.Failures))
		for k, f := range fails.Failures {
			errs[k] = taskError(fails.Job, f)
		}
		if len(errs) == 1 {
			return res, &jobError{errs[0], err}
		}
		return res, &jobError{errors.Join(errs...), err}
	case errors.As(err, &canceled):
		var raw converter.RawValue
		if canceled.HasDetails() && canceled.Details(&raw) == nil && raw.Payload() != nil {
			res, _ = decodeResult(raw.Payload())
		}
		res.State = dag.Canceled
		return res, &jobError{matchErr(context.Canceled, "dag: job canceled"), err}
	case errors.As(err, &timeout):
		return dag.Result{State: dag.Canceled}, &jobError{matchErr(context.DeadlineExceeded, "dag: job ran past Options.Timeout (the workflow's run timeout)"), err}
	}
	return res, err
}

// jobFailures are the details of a failed job's error, with its result.
type jobFailures struct {
	Job      string
	Failures []failure
}

// jobError is a dag error that also holds the Temporal error it came from.
type jobError struct {
	err, temporal error
}

func (e *jobError) Error() string   { return e.err.Error() }
func (e *jobError) Unwrap() []error { return []error{e.err, e.temporal} }
