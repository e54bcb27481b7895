package dagtest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine of the jobs run here outlives
// the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
