//go:build unix

package dag_test

import (
	"syscall"
	"time"
)

// bCPU returns the CPU time the process has used, in user and system
// mode, on every thread: the work done, whatever other processes take of
// the machine.
func bCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
