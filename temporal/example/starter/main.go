// Command starter runs one smoothie job on a Temporal server, where a
// worker (example/worker) serves it, and prints its result.
//
//	go run ./example/starter -address 127.0.0.1:7233
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"slices"
	"time"

	"github.com/dagrun/dag"
	dagtemporal "github.com/dagrun/dag/temporal"
	"github.com/dagrun/dag/temporal/example/smoothie"
	"go.temporal.io/sdk/client"
)

func main() {
	address := flag.String("address", client.DefaultHostPort, "the Temporal server, host:port")
	queue := flag.String("queue", "smoothie", "the task queue the workers serve")
	flag.Parse()

	c, err := client.Dial(client.Options{HostPort: *address})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	// The same dag.Options as for dag.Run; Timeout becomes the workflow's
	// run timeout.
	job, err := dagtemporal.Start(ctx, c, smoothie.Name, client.StartWorkflowOptions{TaskQueue: *queue}, dag.Options{
		Name:        "smoothie",
		Context:     smoothie.Kitchen(),
		MaxParallel: 2,
		Timeout:     time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("started workflow", job.ID())

	res, err := job.Wait(ctx)
	fmt.Println(res.State, err)
	for _, k := range slices.Sorted(maps.Keys(res.Context)) {
		fmt.Printf("%s: %v\n", k, res.Context[k])
	}
	for _, name := range slices.Sorted(maps.Keys(res.Tasks)) {
		tr := res.Tasks[name]
		fmt.Printf("task %s: %v after %d attempt(s)\n", name, tr.State, tr.Attempts)
	}
}
