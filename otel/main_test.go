package dagotel

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every job's
// recorder must have ended.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
