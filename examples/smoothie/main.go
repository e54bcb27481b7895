// Command smoothie runs the smoothie job of Daguerreo's README with dag:
// dice a banana and a mango in parallel, blend them with the liquids, and
// garnish the smoothie if that works out. It logs every event, then prints
// the final job context and the job as a Mermaid flowchart with each task's
// state.
//
//	go run ./examples/smoothie
//	go run ./examples/smoothie -mermaid               # only the flowchart
//	go run ./examples/smoothie -mermaid -sugar=false  # the garnish fails, and the job goes on
//	go run ./examples/smoothie -fruit banana          # no mango: the job fails
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dagrun/dag"
)

// shuffle chops something up: its letters, in a random order.
func shuffle(s string) string {
	b := []byte(s)
	rand.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
	return string(b)
}

// work pretends to take some time, and stops early if the job is canceled.
func work(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func dice(fruit, key string) dag.TaskFunc {
	return func(ctx context.Context, in dag.Values) (map[string]any, error) {
		fruits, err := dag.Lookup[[]string](in, "fruit")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(fruits, fruit) {
			return nil, fmt.Errorf("no %s in the kitchen", fruit)
		}
		if err := work(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
		return map[string]any{key: shuffle(fruit)}, nil
	}
}

func blend(ctx context.Context, in dag.Values) (map[string]any, error) {
	banana, err := dag.Lookup[string](in, "diced-banana")
	if err != nil {
		return nil, err
	}
	mango, err := dag.Lookup[string](in, "diced-mango")
	if err != nil {
		return nil, err
	}
	liquids, err := dag.Lookup[[]string](in, "liquids")
	if err != nil {
		return nil, err
	}
	if err := work(ctx, 30*time.Millisecond); err != nil {
		return nil, err
	}
	return map[string]any{"smoothie": shuffle(banana + mango + strings.Join(liquids, ""))}, nil
}

func garnish(ctx context.Context, in dag.Values) (map[string]any, error) {
	s, err := dag.Lookup[string](in, "smoothie")
	if err != nil {
		return nil, err
	}
	if sugar, _ := dag.Lookup[bool](in, "sugar"); !sugar {
		return nil, errors.New("no sugar in the kitchen")
	}
	return map[string]any{"smoothie": "sugar + " + s}, nil
}

func main() {
	fruit := flag.String("fruit", "banana,mango", "the fruit in the kitchen, separated by commas")
	sugar := flag.Bool("sugar", true, "whether there is sugar in the kitchen")
	mermaid := flag.Bool("mermaid", false, "print only the job as a Mermaid flowchart, with its final states")
	flag.Parse()

	tasks := []dag.Task{
		{Name: "dice-banana", Func: dice("banana", "diced-banana")},
		{Name: "dice-mango", Func: dice("mango", "diced-mango")},
		{Name: "blend", Func: blend, DependsOn: []string{"dice-banana", "dice-mango"}},
		// We can do without the garnish.
		{Name: "garnish", Func: garnish, DependsOn: []string{"blend"}, ContinueOnFailure: true},
	}

	opts := dag.Options{
		Name: "smoothie",
		Context: map[string]any{
			"fruit":   strings.Split(*fruit, ","),
			"liquids": []string{"coconut-milk", "water"},
			"sugar":   *sugar,
		},
		Timeout: 3 * time.Second,
	}
	if !*mermaid {
		// Every record is written before Wait returns.
		opts.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	job, err := dag.Run(context.Background(), tasks, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	res, err := job.Wait()

	if !*mermaid {
		fmt.Println()
		fmt.Println("job", res.State)
		for _, k := range slices.Sorted(maps.Keys(res.Context)) {
			fmt.Printf("  %s: %v\n", k, res.Context[k])
		}
		fmt.Println()
		fmt.Println("```mermaid")
	}
	if err := dag.WriteMermaid(os.Stdout, tasks, &res); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if !*mermaid {
		fmt.Println("```")
	}
	var te *dag.TaskError
	if errors.As(err, &te) {
		fmt.Fprintf(os.Stderr, "task %s failed: %v\n", te.Task, te.Err)
		os.Exit(1)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
