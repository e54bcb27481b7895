package dag_test

// Values, ValuesOf and Lookup.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestValuesOf checks Get, Len, All (sorted) and String of ValuesOf, and
// that it holds a copy of the map.
func TestValuesOf(t *testing.T) {
	t.Parallel()
	src := map[string]any{"b": 2, "a": "one", "c": nil, "d": []int{4}}
	v := dag.ValuesOf(src)
	src["a"] = "changed"
	src["e"] = 5
	delete(src, "b")

	want := wantView(map[string]any{"a": "one", "b": 2, "c": nil, "d": []int{4}})
	if diff := cmp.Diff(want, see(v, []string{"a", "b", "c", "d", "e", "missing"})); diff != "" {
		t.Errorf("ValuesOf(…) after changing the source mismatch (-want +got):\n%s", diff)
	}
	if val, ok := v.Get("c"); !ok || val != nil {
		t.Errorf("Get(%q) = %v, %v; want nil, true: a nil value is still present", "c", val, ok)
	}
	if val, ok := v.Get("missing"); ok || val != nil {
		t.Errorf("Get(%q) = %v, %v; want nil, false", "missing", val, ok)
	}
	if got, want := v.String(), "map[a:one b:2 c:<nil> d:[4]]"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}

	// All stops when the loop breaks.
	var first []string
	for k := range v.All() {
		first = append(first, k)
		if len(first) == 2 {
			break
		}
	}
	if diff := cmp.Diff([]string{"a", "b"}, first); diff != "" {
		t.Errorf("All() with a break after two keys mismatch (-want +got):\n%s", diff)
	}

	// Many keys come out sorted whatever the map's order.
	big := map[string]any{}
	for i := range 200 {
		big[fmt.Sprintf("k%03d", (i*37)%200)] = i
	}
	keys := valuesKeys(dag.ValuesOf(big))
	if !slices.IsSorted(keys) || len(keys) != 200 {
		t.Errorf("All() yields %d keys, sorted %v; want 200, sorted", len(keys), slices.IsSorted(keys))
	}
}

// TestValuesEmpty checks the zero Values and ValuesOf of nil and empty
// maps: usable, empty.
func TestValuesEmpty(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    dag.Values
	}{
		{"zero", dag.Values{}},
		{"ValuesOf(nil)", dag.ValuesOf(nil)},
		{"ValuesOf(empty)", dag.ValuesOf(map[string]any{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := tc.v.Len(); n != 0 {
				t.Errorf("Len() = %d; want 0", n)
			}
			if val, ok := tc.v.Get("x"); ok || val != nil {
				t.Errorf("Get(%q) = %v, %v; want nil, false", "x", val, ok)
			}
			for k, val := range tc.v.All() {
				t.Errorf("All() yielded %q: %v; want nothing", k, val)
			}
			if s := tc.v.String(); s != "map[]" {
				t.Errorf("String() = %q; want %q", s, "map[]")
			}
			if _, err := dag.Lookup[int](tc.v, "x"); !errors.Is(err, dag.ErrMissingKey) {
				t.Errorf("Lookup[int](…, %q) = %v; want ErrMissingKey", "x", err)
			}
		})
	}
}

type stringerValue struct{}

func (stringerValue) String() string { return "stringerValue" }

// TestLookup checks Lookup's success and each way it fails.
func TestLookup(t *testing.T) {
	t.Parallel()
	var nilPtr *int
	v := dag.ValuesOf(map[string]any{
		"int":    42,
		"string": "s",
		"nil":    nil,
		"nilptr": nilPtr,
		"err":    errBoom,
		"str":    stringerValue{},
	})
	for _, tc := range []struct {
		name   string
		lookup func() (any, error)
		want   any
		is     error    // the sentinel the error must match, if any
		msg    []string // substrings of the error; none if nil
		reason string
	}{
		{"int", func() (any, error) { return dag.Lookup[int](v, "int") }, 42, nil, nil, "the value has the type asked for"},
		{"string", func() (any, error) { return dag.Lookup[string](v, "string") }, "s", nil, nil, "the value has the type asked for"},
		{"any", func() (any, error) { return dag.Lookup[any](v, "int") }, 42, nil, nil, "any holds everything"},
		{"interface", func() (any, error) { return dag.Lookup[fmt.Stringer](v, "str") }, stringerValue{}, nil, nil, "the value implements the interface"},
		{"error", func() (any, error) { return dag.Lookup[error](v, "err") }, errBoom, nil, nil, "an error value is an error"},
		{"nil into error", func() (any, error) { return dag.Lookup[error](v, "nil") }, nil, nil, nil, "nil is a valid interface value"},
		{"nil into any", func() (any, error) { return dag.Lookup[any](v, "nil") }, nil, nil, nil, "nil is a valid interface value"},
		{"typed nil pointer", func() (any, error) { return dag.Lookup[*int](v, "nilptr") }, nilPtr, nil, nil, "a nil *int is a *int"},
		{"missing", func() (any, error) { return dag.Lookup[int](v, "absent") }, 0, dag.ErrMissingKey, []string{`"absent"`}, "the key is not there"},
		{"wrong type", func() (any, error) { return dag.Lookup[int](v, "string") }, 0, nil, []string{`"string"`, "string", "int"}, "a string is not an int"},
		{"wrong interface", func() (any, error) { return dag.Lookup[fmt.Stringer](v, "int") }, nil, nil, []string{`"int"`, "int", "fmt.Stringer"}, "an int has no String method"},
		{"nil into int", func() (any, error) { return dag.Lookup[int](v, "nil") }, 0, nil, []string{`"nil"`, "int"}, "nil is not an int"},
		{"nil into pointer", func() (any, error) { return dag.Lookup[*int](v, "nil") }, nilPtr, nil, []string{`"nil"`, "*int"}, "an untyped nil is a *int only through an interface type, as the doc says"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.lookup()
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("Lookup value mismatch (-want +got):\n%s", diff)
			}
			if tc.msg == nil && tc.is == nil {
				if err != nil {
					t.Errorf("Lookup error = %v; want nil (%s)", err, tc.reason)
				}
				return
			}
			if err == nil {
				t.Fatalf("Lookup error = nil; want one (%s)", tc.reason)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Lookup error = %v; want it to match %v (%s)", err, tc.is, tc.reason)
			}
			if tc.is == nil && errors.Is(err, dag.ErrMissingKey) {
				t.Errorf("Lookup error = %v; want no ErrMissingKey: the key is present", err)
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Lookup error = %q; want it to contain %q", err, s)
				}
			}
		})
	}
}

// TestLookupInTask checks Lookup on the Values a task gets, for a key from
// the initial context and one from a dependency.
func TestLookupInTask(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var errs []error
	var got []any
	tasks := []dag.Task{
		{Name: "a", Func: succeed(map[string]any{"n": 7})},
		{Name: "b", DependsOn: []string{"a"}, Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
			n, err1 := dag.Lookup[int](in, "n")
			s, err2 := dag.Lookup[string](in, "s")
			_, err3 := dag.Lookup[string](in, "n")
			_, err4 := dag.Lookup[int](in, "nope")
			mu.Lock()
			defer mu.Unlock()
			got = []any{n, s}
			errs = []error{err1, err2, err3, err4}
			return nil, nil
		}},
	}
	if _, err := runTasks(t, tasks, dag.Options{Context: map[string]any{"s": "init"}}); err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]any{7, "init"}, got); diff != "" {
		t.Errorf("Lookup values mismatch (-want +got):\n%s", diff)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("Lookup errors = %v, %v; want nil, nil", errs[0], errs[1])
	}
	if errs[2] == nil || errors.Is(errs[2], dag.ErrMissingKey) || !strings.Contains(errs[2].Error(), "string") {
		t.Errorf("Lookup[string](…, %q) = %v; want a type error naming string", "n", errs[2])
	}
	if !errors.Is(errs[3], dag.ErrMissingKey) || !strings.Contains(errs[3].Error(), `"nope"`) {
		t.Errorf("Lookup[int](…, %q) = %v; want ErrMissingKey naming the key", "nope", errs[3])
	}
}
