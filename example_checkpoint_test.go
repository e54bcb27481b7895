package dag_test

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/dagrun/dag"
)

// tableStats is what the transform step of ExampleFileStore hands to the
// load step. A FileStore saves it with encoding/gob, which must know the
// type.
type tableStats struct {
	Rows  int
	Table string
}

func init() { gob.Register(tableStats{}) }

// A job checkpointed in a FileStore fails at its last step. The second Run
// of the job, with the same store, restores the steps that completed, with
// their outputs, and runs only the last one; then the checkpoint is gone.
func ExampleFileStore() {
	dir, err := os.MkdirTemp("", "checkpoints")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := dag.NewFileStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}

	databaseUp := false
	tasks := []dag.Task{
		{Name: "extract", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			fmt.Println("extracting")
			return map[string]any{"rows": []string{"a", "b", "c"}}, nil
		}},
		{Name: "transform", DependsOn: []string{"extract"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			fmt.Println("transforming")
			rows, err := dag.Lookup[[]string](in, "rows")
			if err != nil {
				return nil, err
			}
			return map[string]any{"stats": tableStats{Rows: len(rows), Table: "sales"}}, nil
		}},
		{Name: "load", DependsOn: []string{"transform"}, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			stats, err := dag.Lookup[tableStats](in, "stats")
			if err != nil {
				return nil, err
			}
			fmt.Printf("loading %d rows into %s\n", stats.Rows, stats.Table)
			if !databaseUp {
				return nil, errors.New("database is down")
			}
			return nil, nil
		}},
	}
	opts := dag.Options{Name: "etl/daily", Checkpoint: store}
	run := func() dag.Result {
		job, err := dag.Run(context.Background(), tasks, opts)
		if err != nil {
			fmt.Println(err)
			return dag.Result{}
		}
		res, err := job.Wait()
		fmt.Println("job", res.State, err)
		return res
	}

	run()
	cp, err := store.Load(context.Background(), "etl/daily")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("checkpoint:", slices.Sorted(func(yield func(string) bool) {
		for name := range cp.Tasks {
			if !yield(name) {
				return
			}
		}
	}))

	databaseUp = true
	res := run()
	for _, name := range []string{"extract", "transform", "load"} {
		fmt.Printf("%s restored: %v\n", name, res.Tasks[name].Restored)
	}
	_, err = store.Load(context.Background(), "etl/daily")
	fmt.Println("checkpoint cleared:", errors.Is(err, dag.ErrNoCheckpoint))
	// Output:
	// extracting
	// transforming
	// loading 3 rows into sales
	// job failed dag: job "etl/daily": task "load" failed after 1 attempt: database is down
	// checkpoint: [extract transform]
	// loading 3 rows into sales
	// job completed <nil>
	// extract restored: true
	// transform restored: true
	// load restored: false
	// checkpoint cleared: true
}
