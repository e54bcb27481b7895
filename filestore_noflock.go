//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package dag

// lockFile is where other systems take a lock that other processes see.
// Without flock(2) there is none that the kernel drops when its holder
// crashes, and a lock file that outlived its owner would block the job
// for good, so here FileStore.Lock relies on its in-process guard alone:
// it excludes owners in the same process, not in others.
func lockFile(path string) (release func() error, busy bool, err error) {
	return func() error { return nil }, false, nil
}

// flockLocks reports that Lock excludes only this process here.
const flockLocks = false
