package dag_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every job's
// workers, timers and event deliverers must be gone.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
