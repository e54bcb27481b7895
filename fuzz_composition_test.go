package dag_test

// FuzzComposition decodes the fuzzer's bytes into a composed job (see
// cpGenerate: each choice takes one byte, and a source that has run dry
// makes the simplest choice, so any input is a valid job), runs it twice
// with different MaxParallel in a synctest bubble, and checks it as
// TestPropertyComposition does: against the reference, events, MaxParallel,
// what each task sees, and the same Result.Context on both runs when the
// outcome does not depend on timing. Replay the committed corpus with go
// test; search for more with
//
//	go test -run='^$' -fuzz=FuzzComposition -fuzztime=60s .

import (
	"testing"
)

// cpBytes is a cpSource reading the fuzzer's bytes, then zeros.
type cpBytes struct{ b []byte }

func (c *cpBytes) intn(n int) int {
	if len(c.b) == 0 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

func FuzzComposition(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return // the job is capped anyway; keep each input fast
		}
		j := cpGenerate(&cpBytes{b: data}, 30, false)
		mp := 2
		if len(data) > 0 {
			mp = 2 + int(data[0])%7
		}
		cpCheckJob(t, j, []int{1, mp}, nil)
	})
}
