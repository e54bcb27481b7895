// Command worker serves the smoothie job on a Temporal server: it runs the
// job's workflow and its tasks' activities until interrupted. Run as many
// as you like, on as many machines.
//
//	go run ./example/worker -address 127.0.0.1:7233
package main

import (
	"flag"
	"log"

	dagtemporal "github.com/dagrun/dag/temporal"
	"github.com/dagrun/dag/temporal/example/smoothie"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

func main() {
	address := flag.String("address", client.DefaultHostPort, "the Temporal server, host:port")
	queue := flag.String("queue", "smoothie", "the task queue to serve")
	flag.Parse()

	c, err := client.Dial(client.Options{HostPort: *address})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	w := worker.New(c, *queue, worker.Options{})
	wf := &dagtemporal.Workflow{Name: smoothie.Name, Tasks: smoothie.Tasks()}
	if err := wf.Register(w); err != nil {
		log.Fatal(err)
	}
	if err := w.Run(worker.InterruptCh()); err != nil {
		log.Fatal(err)
	}
}
