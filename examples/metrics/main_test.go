package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// observer must have ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
