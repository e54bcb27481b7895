//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package dag

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on the file at path, creating it.
// It returns busy if another open file holds the lock: flock locks belong
// to open files, not processes, so this holds within one process too. The
// kernel drops the lock when the holder's process ends, however it ends.
//
// release removes the file, then unlocks it. The remove keeps the
// directory free of lock files; it is safe because a locker checks, once
// it holds the lock, that the path still names the file it locked, and
// starts over if not (the holder before it removed the file in between).
func lockFile(path string) (release func() error, busy bool, err error) {
	for tries := 0; ; tries++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, false, err
		}
		err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, true, nil
		}
		if err != nil {
			f.Close()
			return nil, false, err
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			return func() error {
				err := os.Remove(path)
				if errors.Is(err, os.ErrNotExist) {
					err = nil
				}
				return errors.Join(err, f.Close()) // closing the file unlocks it
			}, false, nil
		}
		f.Close()
		if err1 != nil || err2 != nil && !errors.Is(err2, os.ErrNotExist) || tries == 100 {
			// Not a race with a releasing holder: something is wrong with
			// the directory, or it is being churned without end.
			return nil, false, errors.Join(err1, err2, errors.New("the lock file keeps being replaced"))
		}
	}
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	return errors.Join(err, ferr)
}

// flockLocks reports that Lock excludes other processes here.
const flockLocks = true
