package dagtemporal_test

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/dagrun/dag"
	dagtemporal "github.com/dagrun/dag/temporal"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// The smoothie job on Temporal's test environment, which needs no server:
// a worker would register the Workflow the same way, and a client would
// start the job with Start and wait with Job.Wait.
func ExampleWorkflow_Register() {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()

	wf := &dagtemporal.Workflow{Name: "smoothie", Tasks: smoothie()}
	if err := wf.Register(env); err != nil {
		fmt.Println(err)
		return
	}
	in, err := dagtemporal.NewInput(dag.Options{Name: "smoothie", Context: kitchen})
	if err != nil {
		fmt.Println(err)
		return
	}
	env.ExecuteWorkflow("smoothie", in)

	var raw converter.RawValue
	err = env.GetWorkflowError()
	if err == nil {
		err = env.GetWorkflowResult(&raw)
	}
	res, err := dagtemporal.Outcome(raw, err)
	fmt.Println(res.State, err)
	for _, k := range slices.Sorted(maps.Keys(res.Context)) {
		fmt.Printf("%s: %v\n", k, res.Context[k])
	}
	// Output:
	// completed <nil>
	// diced-banana: aaabnn
	// diced-mango: agmno
	// fruit: [banana mango]
	// liquids: [coconut-milk water]
	// smoothie: sugar + -aaaaabccegiklmmnnnnooorttuw
}

// With NewPayloadConverter in the client's data converter, a job's result
// reads straight into a dag.Result.
func ExampleNewPayloadConverter() {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetDataConverter(converter.NewCompositeDataConverter(
		dagtemporal.NewPayloadConverter(),
		converter.NewNilPayloadConverter(),
		converter.NewByteSlicePayloadConverter(),
		converter.NewProtoJSONPayloadConverter(),
		converter.NewProtoPayloadConverter(),
		converter.NewJSONPayloadConverter(),
	))
	wf := &dagtemporal.Workflow{Name: "smoothie", Tasks: smoothie()}
	if err := wf.Register(env); err != nil {
		fmt.Println(err)
		return
	}
	in, _ := dagtemporal.NewInput(dag.Options{Context: kitchen})
	env.ExecuteWorkflow("smoothie", in)

	var res dag.Result
	if err := env.GetWorkflowResult(&res); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Context["smoothie"], res.Tasks["garnish"].State)
	// Output:
	// sugar + -aaaaabccegiklmmnnnnooorttuw completed
}
