// Package smoothie is the smoothie job of dag's README, as the example's
// worker and starter share it: the worker runs its tasks, the starter
// starts jobs of it by name.
package smoothie

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dagrun/dag"
)

// Name is the workflow type the worker registers the job under.
const Name = "smoothie"

// Kitchen is the job's initial context.
func Kitchen() map[string]any {
	return map[string]any{
		"fruit":   []string{"banana", "mango"},
		"liquids": []string{"coconut-milk", "water"},
	}
}

// dice chops a fruit: its letters, sorted.
func dice(fruit string) string {
	b := []byte(fruit)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	return string(b)
}

// Tasks are the job's tasks, the same as dag.Run would take: dice two
// fruits in parallel, blend them with the liquids, and garnish if that
// works out.
func Tasks() []dag.Task {
	diceTask := func(fruit, key string) dag.TaskFunc {
		return func(ctx context.Context, in dag.Values) (map[string]any, error) {
			fruits, err := dag.Lookup[[]string](in, "fruit")
			if err != nil {
				return nil, err
			}
			if !slices.Contains(fruits, fruit) {
				return nil, fmt.Errorf("no %s in the kitchen", fruit)
			}
			return map[string]any{key: dice(fruit)}, nil
		}
	}
	return []dag.Task{
		{Name: "dice-banana", Func: diceTask("banana", "diced-banana")},
		{Name: "dice-mango", Func: diceTask("mango", "diced-mango")},
		{
			Name:      "blend",
			DependsOn: []string{"dice-banana", "dice-mango"},
			Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				banana, _ := dag.Lookup[string](in, "diced-banana")
				mango, _ := dag.Lookup[string](in, "diced-mango")
				liquids, _ := dag.Lookup[[]string](in, "liquids")
				return map[string]any{"smoothie": dice(banana + mango + strings.Join(liquids, ""))}, nil
			},
		},
		{
			Name:              "garnish",
			DependsOn:         []string{"blend"},
			ContinueOnFailure: true, // a smoothie without sugar is still a smoothie
			Func: func(ctx context.Context, in dag.Values) (map[string]any, error) {
				s, err := dag.Lookup[string](in, "smoothie")
				if err != nil {
					return nil, err
				}
				return map[string]any{"smoothie": "sugar + " + s}, nil
			},
		},
	}
}
