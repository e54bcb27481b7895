package dag

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestDependsOn checks graph.dependsOn against a plain search on random
// DAGs of many shapes, for every pair of tasks.
func TestDependsOn(t *testing.T) {
	t.Parallel()
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 1 + r.IntN(60)
		p := r.Float64() * 0.3
		tasks := make([]Task, n)
		for i := range tasks {
			tasks[i] = Task{Name: fmt.Sprint(i), Func: func(ctx context.Context, in Values) (map[string]any, error) { return nil, nil }}
			for j := range i {
				if r.Float64() < p {
					tasks[i].DependsOn = append(tasks[i].DependsOn, fmt.Sprint(j))
				}
			}
		}
		// Declare them in a random order: the walk starts from roots in
		// declaration order.
		r.Shuffle(n, func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
		g, err := build(tasks)
		if err != nil {
			t.Fatal(err)
		}
		for a := range int32(n) {
			// Everything a reaches, along dependents.
			reach := make([]bool, n)
			stack := []int32{a}
			for len(stack) > 0 {
				x := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				for _, o := range g.outsOf(x) {
					if !reach[o] {
						reach[o] = true
						stack = append(stack, o)
					}
				}
			}
			for tt := range int32(n) {
				if got := g.dependsOn(tt, a); got != reach[tt] {
					t.Fatalf("seed %d: dependsOn(%s, %s) = %v; want %v", seed, g.names[tt], g.names[a], got, reach[tt])
				}
			}
		}
	}
}

// BenchmarkDependsOnDeep measures the question a read asks when the key's
// writer is far above the reader: on a chain, task 0 asked about by the
// last task. It must not grow with the chain.
func BenchmarkDependsOnDeep(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			tasks := make([]Task, n)
			for i := range tasks {
				tasks[i] = Task{Name: fmt.Sprint(i), Func: func(ctx context.Context, in Values) (map[string]any, error) { return nil, nil }}
				if i > 0 {
					tasks[i].DependsOn = []string{fmt.Sprint(i - 1)}
				}
			}
			g, err := build(tasks)
			if err != nil {
				b.Fatal(err)
			}
			last := int32(n - 1)
			for b.Loop() {
				if !g.dependsOn(last, 0) || g.dependsOn(0, last) {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
