package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun checks that the example prints one JSON object per span, every
// span of the job among them.
func TestRun(t *testing.T) {
	var buf bytes.Buffer
	if err := run(&buf); err != nil {
		t.Fatalf("run() = %v", err)
	}
	var names []string
	dec := json.NewDecoder(&buf)
	for {
		var span struct{ Name string }
		err := dec.Decode(&span)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decoding the output: %v", err)
		}
		names = append(names, span.Name)
	}
	slices.Sort(names)
	want := []string{
		"GET /orders", "GET /orders",
		"attempt fetch", "attempt fetch",
		"attempt notify", "attempt report",
		"attempt transform/clean", "attempt transform/enrich",
		"job nightly",
		"task fetch", "task notify", "task report",
		"task transform", "task transform/clean", "task transform/enrich",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("spans printed (-want +got):\n%s", diff)
	}
}
