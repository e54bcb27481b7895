//go:build !unix

package dag_test

import "time"

// bCPU returns 0 where the process's CPU time cannot be read.
func bCPU() time.Duration { return 0 }
