package dag_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// ledgerRun runs tasks one at a time in declaration order of readiness,
// through a Ledger, as another executor would: it checks that the Ledger
// gives each task what Run's Values would.
func ledgerRun(t *testing.T, tasks []dag.Task, initial map[string]any) (map[string]any, error) {
	t.Helper()
	l, err := dag.NewLedger(tasks, initial)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for len(done) < len(tasks) {
		progress := false
		for _, tk := range tasks {
			if done[tk.Name] {
				continue
			}
			ready := true
			for _, d := range tk.DependsOn {
				ready = ready && done[d]
			}
			if !ready {
				continue
			}
			in, err := l.Values(tk.Name)
			if err != nil {
				return nil, err
			}
			out, err := tk.Func(context.Background(), in)
			if err != nil {
				return nil, err
			}
			if err := l.Put(tk.Name, out); err != nil {
				return nil, err
			}
			done[tk.Name] = true
			progress = true
		}
		if !progress {
			t.Fatal("no task could run")
		}
	}
	return l.Context(), nil
}

func TestLedgerMatchesRun(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 30
		tasks := make([]dag.Task, n)
		for i := range tasks {
			name := fmt.Sprintf("t%d", i)
			var deps []string
			for j := range i {
				if rng.IntN(5) == 0 {
					deps = append(deps, fmt.Sprintf("t%d", j))
				}
			}
			key := fmt.Sprintf("k%d", rng.IntN(4))
			tasks[i] = dag.Task{Name: name, DependsOn: deps, Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				sum := 0
				for _, v := range in.All() {
					if x, ok := v.(int); ok {
						sum += x
					}
				}
				return map[string]any{name: sum + 1, key: sum}, nil
			}}
		}
		got, lerr := ledgerRun(t, tasks, map[string]any{"init": 1})
		job, err := dag.Run(context.Background(), tasks, dag.Options{Context: map[string]any{"init": 1}})
		if err != nil {
			t.Fatal(err)
		}
		res, werr := job.Wait()
		if errors.Is(werr, dag.ErrConflict) != errors.Is(lerr, dag.ErrConflict) {
			t.Fatalf("seed %d: Run says %v, the ledger %v", seed, werr, lerr)
		}
		if werr == nil {
			if diff := cmp.Diff(res.Context, got); diff != "" {
				t.Errorf("seed %d: contexts differ (-Run +Ledger):\n%s", seed, diff)
			}
		}
	}
}

func TestLedgerExpandAndMap(t *testing.T) {
	t.Parallel()
	m := dag.Map("m", "in", "out", func(ctx context.Context, x int) (int, error) { return x * 10, nil })
	m.DependsOn = []string{"src"}
	tasks := []dag.Task{
		{Name: "src", Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
			return map[string]any{"in": []int{1, 2}}, nil
		}},
		m,
		{Name: "e", Expand: func(ctx context.Context, in dag.Values) ([]dag.Task, error) { return nil, nil }},
	}
	l, err := dag.NewLedger(tasks, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put("src", map[string]any{"in": []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
	in, _ := l.Values("m")
	children, err := tasks[1].Expand(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Expand("m", children); err != nil {
		t.Fatal(err)
	}
	for i, c := range children {
		cin, err := l.Values(fmt.Sprintf("m/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := c.Func(context.Background(), cin)
		if err := l.Put(fmt.Sprintf("m/%d", i), out); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Context()["out"]; !cmp.Equal(got, []int{10, 20}) {
		t.Errorf("out = %v", got)
	}
	if _, err := l.Values("nope"); err == nil {
		t.Error("Values of an unknown task: no error")
	}
	if err := l.Expand("e", []dag.Task{{Name: "x", DependsOn: []string{"x"}, Func: succeed(map[string]any{"x": 1})}}); !errors.Is(err, dag.ErrCycle) {
		t.Errorf("Expand of a cycle = %v", err)
	}
	l2, _ := dag.NewLedger([]dag.Task{{Name: "a", Func: succeed(map[string]any{"k": 1})}, {Name: "b", Func: succeed(map[string]any{"k": 2})}}, nil)
	_ = l2.Put("a", map[string]any{"k": 1})
	if err := l2.Put("b", map[string]any{"k": 2}); !errors.Is(err, dag.ErrConflict) {
		t.Errorf("unordered writers: %v", err)
	}
}
