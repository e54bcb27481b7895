package dag

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// A FileStore is a [Store] that keeps each job's checkpoint in a file of
// its own in one directory, using the standard library only. It is the
// checkpoint store to use with [Options.Checkpoint] unless the job's state
// must live elsewhere. Its methods are safe for concurrent use.
//
// # Files
//
// A job's checkpoint is an append-only log: each Save appends a record
// with its length and a CRC-32C checksum, and Load reads the log from the
// start, a later record of a task replacing an earlier one. Saves of one
// job that arrive while another is being written are written together as
// one record, with one write and one fsync (group commit); Save returns
// once its record is on disk. Load ignores a last record cut short by a
// crash, and the next Save cuts it off before appending. A damaged record
// that is not the last one makes Load (and Save) fail with an error
// matching [ErrCorruptCheckpoint] that names the file and the offset: it is
// never skipped. Clear removes the log.
//
// Each job name maps to its own file names in the directory: a readable
// part (the name's ASCII letters, digits, '-' and '_', others replaced by
// '_', at most 40 of them) and a hash of the whole name. Any name is safe,
// such as "etl/daily", "../x" or one in Japanese, and nothing is written
// outside the directory. A log ends in ".ckpt"; a lock file in ".lock"
// exists while the job is locked, and is left behind if its owner crashed.
//
// # Values
//
// Output values are encoded with [encoding/gob], each key on its own, so
// that Load gives back values of the types saved and [Lookup] finds them:
// an int stays an int. Each value is encoded as an interface value, so gob
// needs the concrete type of every value, at the top level as well as
// inside a []any, a map[string]any or a struct field of interface type, to
// be registered with [gob.Register] by the program, before it saves or
// loads (in an init function, say), unless it is one of the types gob
// registers itself: bool, the int, uint, float and complex types, string,
// and slices of those ([]byte, []int, []string, ...). So a time.Time, a
// time.Duration, a map[string]int, an []any or a struct needs
// gob.Register(time.Time{}) and so on. Other gob rules apply too: only
// exported struct fields are kept, an empty slice comes back nil and a nil
// map empty, and a T or a *T comes back as whichever of the two was
// registered (gob.Register(T{}) or gob.Register(&T{}), not both).
//
// A value gob cannot encode (an unregistered type, a func, a chan, a
// struct without exported fields, a nil pointer) makes Save fail with an
// error matching [ErrNotSerializable] that names the task, the key and the
// type, and wraps gob's error; nothing is saved, and Run fails the task
// for good. Run checks the values of Options.Context the same way before
// anything runs. A value whose type is not registered in the program that
// loads it makes Load fail with an error matching ErrNotSerializable too.
//
// # Locking
//
// FileStore is a [Locker]. Lock takes an exclusive flock(2) on the job's
// lock file, which the kernel drops when the holding process ends, even by
// SIGKILL, so a crashed owner never blocks the next Run. A second Lock of
// the job, through this FileStore or another one on the same directory, in
// this process or another, fails with an error matching [ErrLocked] until
// unlock is called. On systems without flock (Windows, Plan 9, WebAssembly,
// Solaris, AIX) the lock excludes owners in the same process only.
//
// # Costs
//
// Each Save encodes its values, then waits for one write and one fsync of
// the job's log, shared with the Saves of the same job that arrive
// meanwhile (Saves of different jobs do not share). A job therefore pays
// about one fsync per group of tasks that end together, and each task's
// worker waits for one. BenchmarkFileStoreSave and BenchmarkCheckpoint
// measure it; on a quiet virtual machine with two cores and ext4, a lone
// Save took 0.35 to 1.1 ms, 64 concurrent Saves shared each fsync by 29
// and took 1.3 to 2.8 ms each (24 to 49 ms without sharing), and 1,000
// tasks of 10 ms, 64 at a time, took 4 to 8% longer than without a store.
// While other processes wrote to the same disk, whose data an fsync then
// waits for too, that job took 20 to 40% longer. Load reads and decodes
// the whole log, which grows with every Save until Clear.
type FileStore struct {
	dir string
	// serial turns group commit off: each Save writes and fsyncs its own
	// record. Tests and benchmarks set it to compare.
	serial bool
	// hook, if set, is called by tests when a Save has queued its entry
	// ("queued", under the log's lock) and when a leader is about to write
	// a batch ("write", with the number of entries).
	hook func(event string, entries int)

	mu   sync.Mutex
	logs map[string]*jobLog // guarded by mu: the logs in use, or whose end is known
}

// NewFileStore returns a FileStore that keeps checkpoints in dir, creating
// the directory if it does not exist. Two FileStores on the same
// directory, in one process or several, see the same checkpoints.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("dag: NewFileStore needs a directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dag: checkpoint directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("dag: cannot create the checkpoint directory: %w", err)
	}
	return &FileStore{dir: abs, logs: make(map[string]*jobLog)}, nil
}

// fileName returns the base name, without extension, of job's files: a
// readable part and a hash of the exact name, so that names differing
// anywhere (or only in case, on a file system that ignores case) get
// different files.
func fileName(job string) string {
	const maxReadable = 40
	var b strings.Builder
	for _, r := range job {
		if b.Len() == maxReadable {
			break
		}
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		b.WriteByte('_')
	}
	sum := sha256.Sum256([]byte(job))
	return b.String() + "-" + hex.EncodeToString(sum[:12])
}

func (s *FileStore) logPath(job string) string {
	return filepath.Join(s.dir, fileName(job)+".ckpt")
}

func (s *FileStore) lockPath(job string) string {
	return filepath.Join(s.dir, fileName(job)+".lock")
}

// Load returns the job's checkpoint, as [Store] says. It takes no lock, so
// it may be called while the job runs: it then sees the Saves that had
// returned when it started, and perhaps some that had not.
func (s *FileStore) Load(ctx context.Context, job string) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.logPath(job)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noCheckpoint(job, s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("dag: cannot load the checkpoint of job %s: %w", quote(job), err)
	}
	tasks := make(map[string]TaskResult)
	_, err = scanLog(path, data, func(off int, payload []byte) error {
		err := readEntries(job, payload, tasks)
		if err == errMalformed {
			return corruptError(path, off, err.Error())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(tasks) == 0 { // only a torn first record
		return nil, noCheckpoint(job, s.dir)
	}
	return &Result{Tasks: tasks}, nil
}

func noCheckpoint(job, dir string) error {
	return &wrapError{msg: fmt.Sprintf("dag: no checkpoint of job %s in %s", quote(job), dir), err: ErrNoCheckpoint}
}

// Save appends the task's result to the job's log and returns once it is
// on disk, as [Store] says. ctx is checked when Save is called: once its
// record is queued, Save waits for the write whatever ctx does.
func (s *FileStore) Save(ctx context.Context, job, task string, r TaskResult) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entry, err := appendEntry(nil, task, r)
	if err != nil {
		return err
	}
	if len(entry) > maxFrame {
		return fmt.Errorf("dag: task %s: its output (%d bytes encoded) is too large for a checkpoint; the limit is %d bytes",
			quote(task), len(entry), maxFrame)
	}
	l := s.acquire(job)
	defer s.release(job, l)
	if err := l.commit(entry, !s.serial); err != nil {
		if errors.Is(err, ErrCorruptCheckpoint) {
			return err
		}
		return fmt.Errorf("dag: task %s of job %s: checkpoint not saved: %w", quote(task), quote(job), err)
	}
	return nil
}

// Clear removes the job's log, as [Store] says. A Save of the job that
// runs at the same time is written before or after, not lost halfway.
func (s *FileStore) Clear(ctx context.Context, job string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := s.acquire(job)
	defer s.release(job, l)
	l.mu.Lock()
	for l.writing {
		l.cond.Wait()
	}
	l.writing = true
	l.mu.Unlock()

	err := os.Remove(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	} else if err == nil {
		err = syncDir(s.dir) // so that a crash does not bring the log back
	}

	l.mu.Lock()
	l.end = -1
	l.writing = false
	l.cond.Broadcast()
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("dag: cannot clear the checkpoint of job %s: %w", quote(job), err)
	}
	return nil
}

// Lock makes the caller the job's only owner, as [Locker] says, until
// unlock is called or the process ends. It does not wait: if the job is
// locked, by this process or another, it returns an error matching
// [ErrLocked]. unlock removes the lock file and releases the lock.
func (s *FileStore) Lock(ctx context.Context, job string) (unlock func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := s.lockPath(job)
	// flock alone would do on Unix, since a second open file conflicts
	// even within one process; the in-process guard makes the promise
	// hold where there is no flock, and costs one map lookup.
	if !heldLocks.take(path) {
		return nil, lockedError(job, path)
	}
	release, busy, err := lockFile(path)
	if err != nil || busy {
		heldLocks.drop(path)
		if busy {
			return nil, lockedError(job, path)
		}
		return nil, fmt.Errorf("dag: cannot lock job %s: %w", quote(job), err)
	}
	var once sync.Once
	var uerr error
	return func() error {
		once.Do(func() {
			uerr = release()
			heldLocks.drop(path)
			s.forget(job)
		})
		return uerr
	}, nil
}

func lockedError(job, path string) error {
	return &wrapError{
		msg: fmt.Sprintf("dag: checkpointed job %s is being run by another owner (lock %s is held): wait for it to end", quote(job), path),
		err: ErrLocked,
	}
}

// heldLocks is the set of lock files that this process holds, by path.
var heldLocks = lockSet{paths: make(map[string]bool)}

type lockSet struct {
	mu    sync.Mutex
	paths map[string]bool
}

func (ls *lockSet) take(path string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.paths[path] {
		return false
	}
	ls.paths[path] = true
	return true
}

func (ls *lockSet) drop(path string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	delete(ls.paths, path)
}

// acquire returns the job's log, counting one more user of it.
func (s *FileStore) acquire(job string) *jobLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[job]
	if l == nil {
		l = &jobLog{path: s.logPath(job), end: -1, hook: s.hook}
		l.cond.L = &l.mu
		l.cur = new(batch)
		s.logs[job] = l
	}
	l.refs++
	return l
}

// release counts one user of the job's log less. A log that no one uses
// and whose end is not known is forgotten: keeping it would save nothing.
func (s *FileStore) release(job string, l *jobLog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		l.mu.Lock()
		unknown := l.end < 0
		l.mu.Unlock()
		if unknown {
			delete(s.logs, job)
		}
	}
}

// forget drops the job's log if no one uses it, when its owner unlocks the
// job: the next owner may be another process, so the end is re-read then.
func (s *FileStore) forget(job string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.logs[job]; l != nil && l.refs == 0 {
		delete(s.logs, job)
	}
}

// syncDir makes the creation or removal of a file in dir durable. Windows,
// Plan 9 and WebAssembly offer no way to sync a directory, so there it does
// nothing, and a crash of the machine (not of the process) may undo a new
// log or a Clear.
func syncDir(dir string) error {
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
