package dagtemporal_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/nexus-rpc/sdk-go/nexus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// replayRegistry lets Workflow.Register register on a WorkflowReplayer,
// which replays workflows only: activities are dropped.
type replayRegistry struct{ worker.WorkflowReplayer }

func (replayRegistry) RegisterActivity(any)                                         {}
func (replayRegistry) RegisterActivityWithOptions(any, activity.RegisterOptions)    {}
func (replayRegistry) RegisterDynamicActivity(any, activity.DynamicRegisterOptions) {}
func (replayRegistry) RegisterNexusService(*nexus.Service)                          {}

// TestReplay replays the histories that TestServer recorded (go test
// -run TestServer -record) through the workflow's code: a change that
// makes the workflow take other steps fails it, as it would fail a worker
// that picks up a running job.
func TestReplay(t *testing.T) {
	t.Parallel()
	histories := map[string]string{"durable-job": "testdata/durable-job.history.json", "durable-job/g": "testdata/durable-job_g.history.json"}
	// The workflow ID must be the original one: groups' child workflows
	// are named from it.
	replay := func(w interface{ Register(worker.Registry) error }, id string) error {
		f, err := os.Open(histories[id])
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := worker.NewWorkflowReplayer()
		if err := w.Register(replayRegistry{r}); err != nil {
			t.Fatal(err)
		}
		return r.ReplayWorkflowHistoryWithOptions(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), h, worker.ReplayWorkflowHistoryOptions{
			OriginalExecution: workflow.Execution{ID: id}})
	}
	for _, id := range []string{"durable-job", "durable-job/g"} {
		if err := replay(durableWorkflow(), id); err != nil {
			t.Errorf("replaying %s: %v", id, err)
		}
	}

	// The same history with different tasks must not replay: here b
	// depends on a, so the workflow schedules one activity where the
	// history has two.
	changed := durableWorkflow()
	changed.Tasks[1].DependsOn = []string{"a"}
	if err := replay(changed, "durable-job"); err == nil {
		t.Error("a history replayed on tasks with another graph; want a nondeterminism error")
	}
}
