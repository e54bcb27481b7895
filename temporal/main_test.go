package dagtemporal_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestServer runs workers in child processes: this test binary again.
	if spec := os.Getenv("DAGTEMPORAL_TEST_WORKER"); spec != "" {
		workerMain(spec)
		return
	}
	goleak.VerifyTestMain(m)
}
