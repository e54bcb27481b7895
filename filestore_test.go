package dag

// Internal tests of FileStore: the log format under damage, group commit,
// file names and locks. The promises of the Store interface are checked by
// package storetest (storetest_test.go runs it on FileStore).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type noExported struct{ x int }

type panicky struct{ X int }

func (panicky) GobEncode() ([]byte, error) { panic("no encoding today") }
func (*panicky) GobDecode([]byte) error    { return nil }

func init() {
	gob.Register(noExported{})
	gob.Register(panicky{})
}

var bg = context.Background()

func newTestStore(t testing.TB) (*FileStore, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// result is the TaskResult saved for task i of the damage tests.
func result(i int) TaskResult {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return TaskResult{State: Completed, Attempts: 1, Started: t0, Finished: t0.Add(time.Millisecond),
		Output: map[string]any{fmt.Sprint("k", i): i, "name": fmt.Sprint("task ", i)}}
}

// frameOffsets returns the offset of each good record of the log in data.
func frameOffsets(t *testing.T, data []byte) []int {
	t.Helper()
	var offs []int
	if _, err := scanLog("log", data, func(off int, _ []byte) error {
		offs = append(offs, off)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return offs
}

// savedLog saves n tasks one after another, so that each is a record of
// its own, and returns the log's bytes and the offsets of its records.
func savedLog(t *testing.T, n int) (data []byte, offs []int) {
	t.Helper()
	s, _ := newTestStore(t)
	for i := range n {
		if err := s.Save(bg, "job", fmt.Sprint("t", i), result(i)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(s.logPath("job"))
	if err != nil {
		t.Fatal(err)
	}
	offs = frameOffsets(t, data)
	if len(offs) != n {
		t.Fatalf("%d Saves one after another wrote %d records; want %d", n, len(offs), n)
	}
	return data, offs
}

// wantFirst checks that got holds exactly tasks t0 ... t(n-1) as saved.
func wantFirst(t *testing.T, what string, got *Result, n int, extra ...string) {
	t.Helper()
	want := extra
	for i := range n {
		want = append(want, fmt.Sprint("t", i))
	}
	var names []string
	if got != nil {
		for name := range got.Tasks {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("%s: Load returned tasks %q; want %q", what, names, want)
	}
	for i := range n {
		r, w := got.Tasks[fmt.Sprint("t", i)], result(i)
		if !r.Started.Equal(w.Started) || !r.Finished.Equal(w.Finished) || r.Output[fmt.Sprint("k", i)] != i || r.Output["name"] != w.Output["name"] {
			t.Fatalf("%s: task t%d = %+v; want %+v", what, i, r, w)
		}
	}
}

// TestFileStoreTornLastRecord cuts the log at every byte of its last
// record, and damages every byte of it: Load returns the records before
// it, and the next Save, from a new FileStore as after a crash, cuts the
// torn bytes off instead of leaving them in the middle of the log.
func TestFileStoreTornLastRecord(t *testing.T) {
	t.Parallel()
	const n = 4
	data, offs := savedLog(t, n)
	last := offs[n-1]

	check := func(t *testing.T, what string, log []byte, append bool) {
		s, _ := newTestStore(t)
		path := s.logPath("job")
		if err := os.WriteFile(path, log, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := s.Load(bg, "job")
		if err != nil {
			t.Fatalf("%s: Load = %v; want the first %d records", what, err, n-1)
		}
		wantFirst(t, what, r, n-1)
		if !append {
			return
		}
		if err := s.Save(bg, "job", "new", result(99)); err != nil {
			t.Fatalf("%s: Save after a torn tail = %v", what, err)
		}
		r, err = s.Load(bg, "job")
		if err != nil {
			t.Fatalf("%s: Load after Save = %v", what, err)
		}
		wantFirst(t, what+", then a Save", r, n-1, "new")
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after[:last], data[:last]) || len(frameOffsets(t, after)) != n {
			t.Fatalf("%s, then a Save: the log does not hold the %d good records followed by the new one", what, n-1)
		}
	}
	t.Run("cut", func(t *testing.T) {
		t.Parallel()
		for cut := last; cut < len(data); cut++ {
			check(t, fmt.Sprintf("log cut at %d of %d", cut, len(data)), data[:cut], true)
		}
	})
	t.Run("damaged", func(t *testing.T) {
		t.Parallel()
		for p := last; p < len(data); p++ {
			log := slices.Clone(data)
			log[p] ^= 0x5a
			check(t, fmt.Sprintf("byte %d of %d damaged", p, len(data)), log, p%7 == 0)
		}
	})
	t.Run("magic", func(t *testing.T) {
		t.Parallel()
		// A crash while the log was being created leaves a prefix of the
		// magic: no checkpoint, and the next Save starts the file afresh.
		for cut := range len(logMagic) + 1 {
			s, _ := newTestStore(t)
			if err := os.WriteFile(s.logPath("job"), data[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Load(bg, "job"); !errors.Is(err, ErrNoCheckpoint) {
				t.Fatalf("log cut at %d, in its header: Load = %v; want ErrNoCheckpoint", cut, err)
			}
			if err := s.Save(bg, "job", "t0", result(0)); err != nil {
				t.Fatalf("log cut at %d: Save = %v", cut, err)
			}
			r, err := s.Load(bg, "job")
			if err != nil {
				t.Fatalf("log cut at %d: Load after Save = %v", cut, err)
			}
			wantFirst(t, fmt.Sprintf("log cut at %d, then a Save", cut), r, 1)
		}
	})
}

// TestFileStoreCorruptRecord damages every byte before the last record:
// Load, and Save, fail with ErrCorruptCheckpoint naming the file and the
// offset of the damaged record.
func TestFileStoreCorruptRecord(t *testing.T) {
	t.Parallel()
	const n = 4
	data, offs := savedLog(t, n)
	s, _ := newTestStore(t)
	path := s.logPath("job")
	for p := range offs[n-1] {
		for _, flip := range []byte{0x01, 0xff} {
			log := slices.Clone(data)
			log[p] ^= flip
			if err := os.WriteFile(path, log, 0o644); err != nil {
				t.Fatal(err)
			}
			want := 0 // the damaged record's offset; 0 for the file header
			for _, off := range offs {
				if off <= p {
					want = off
				}
			}
			what := fmt.Sprintf("byte %d xor %#x", p, flip)
			_, err := s.Load(bg, "job")
			if !errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("%s: Load = %v; want ErrCorruptCheckpoint", what, err)
			}
			for _, name := range []string{path, fmt.Sprintf("offset %d ", want)} {
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("%s: Load = %q; want it to name %q", what, err, name)
				}
			}
			if err := s.Save(bg, "job", "new", result(9)); !errors.Is(err, ErrCorruptCheckpoint) {
				t.Fatalf("%s: Save = %v; want ErrCorruptCheckpoint, not a record after a corrupt one", what, err)
			}
		}
	}
	// A good record after garbage that hides where records start.
	log := slices.Concat(data[:offs[1]], bytes.Repeat([]byte{0}, 40), data[offs[1]:])
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(bg, "job"); !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d ", offs[1])) {
		t.Fatalf("zeros between records: Load = %v; want ErrCorruptCheckpoint at offset %d", err, offs[1])
	}
}

// TestFileStoreRewritesChangedLog checks that a FileStore notices a log
// that changed since its last write, here a partial record left by a
// failed write, and cuts it off before appending.
func TestFileStoreRewritesChangedLog(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	if err := s.Save(bg, "job", "t0", result(0)); err != nil {
		t.Fatal(err)
	}
	data, offs := savedLog(t, 2)
	f, err := os.OpenFile(s.logPath("job"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[offs[1] : offs[1]+20]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.Save(bg, "job", "t1", result(1)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Load(bg, "job")
	if err != nil {
		t.Fatalf("Load = %v; want t0 and t1", err)
	}
	wantFirst(t, "partial record, then a Save", r, 2)
}

// TestFileStoreGroupCommit holds the first write back while ten more
// Saves queue, and checks that they are then written together: one record,
// one fsync.
func TestFileStoreGroupCommit(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	queued, writes := make(chan int, 100), make(chan int, 100)
	release := make(chan struct{})
	var first atomic.Bool
	s.hook = func(event string, n int) {
		switch event {
		case "queued":
			queued <- n
		case "write":
			writes <- n
			if first.CompareAndSwap(false, true) {
				<-release
			}
		}
	}
	var wg sync.WaitGroup
	save := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Save(bg, "job", fmt.Sprint("t", i), result(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	// A wrong implementation may never queue or write: fail, do not hang.
	recv := func(ch chan int) int {
		t.Helper()
		timeout := time.Minute
		if d, ok := t.Deadline(); ok {
			timeout = time.Until(d) / 2
		}
		select {
		case n := <-ch:
			return n
		case <-time.After(timeout):
			close(release)
			wg.Wait()
			t.Fatal("no Save queued or wrote in time")
			return 0
		}
	}
	save(0)
	recv(queued)
	if n := recv(writes); n != 1 {
		t.Fatalf("first write has %d entries; want 1", n)
	}
	const more = 10
	for i := 1; i <= more; i++ {
		save(i)
	}
	for range more {
		recv(queued) // all ten wait behind the first write
	}
	close(release)
	wg.Wait()
	if n := recv(writes); n != more {
		t.Errorf("second write has %d entries; want all %d Saves that queued meanwhile", n, more)
	}
	if len(writes) != 0 {
		t.Errorf("%d more writes; want none", len(writes))
	}
	data, err := os.ReadFile(s.logPath("job"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(frameOffsets(t, data)); n != 2 {
		t.Errorf("the log has %d records; want 2", n)
	}
	r, err := s.Load(bg, "job")
	if err != nil {
		t.Fatal(err)
	}
	wantFirst(t, "group commit", r, more+1)
}

// TestFileStoreSaveClearRace runs Saves and Clears of one job at once: each
// Save lands before or after each Clear, never in a broken log.
func TestFileStoreSaveClearRace(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if err := s.Save(bg, "job", fmt.Sprint("t", g, "-", i), result(i)); err != nil {
					t.Error(err)
				}
				if i%4 == g%4 {
					if err := s.Clear(bg, "job"); err != nil {
						t.Error(err)
					}
				}
				if _, err := s.Load(bg, "job"); err != nil && !errors.Is(err, ErrNoCheckpoint) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Save(bg, "job", "t0", result(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(bg, "job"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.logs["job"]; l == nil || l.refs != 0 {
		t.Errorf("log of job after the Saves: %+v; want one with no users", l)
	}
}

func TestFileStoreNotSerializable(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	for _, tc := range []struct {
		v   any
		typ string
	}{
		{func() {}, "func()"},
		{make(chan int), "chan int"},
		{map[string]bool{"x": true}, "map[string]bool"}, // not registered
		{[]any{1, map[string]bool{}}, "[]interface {}"}, // not registered, nor is what it holds
		{noExported{1}, "dag.noExported"},
		{(*int)(nil), "*int"},
		{panicky{1}, "dag.panicky"},
	} {
		_, gobErr := encodeValue(tc.v)
		if gobErr == nil {
			t.Fatalf("encodeValue(%T) = nil; want an error", tc.v)
		}
		err := s.Save(bg, "job", "my-task", TaskResult{State: Completed, Output: map[string]any{"ok": 1, "my-key": tc.v}})
		if !errors.Is(err, ErrNotSerializable) {
			t.Errorf("Save of a %s = %v; want ErrNotSerializable", tc.typ, err)
			continue
		}
		for _, want := range []string{`task "my-task"`, `output "my-key"`, "type " + tc.typ + ",", gobErr.Error()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Save of a %s = %q; want it to contain %q", tc.typ, err, want)
			}
		}
		var ve *valueError
		if !errors.As(err, &ve) || ve.err.Error() != gobErr.Error() {
			t.Errorf("Save of a %s = %v; want it to wrap gob's error %q", tc.typ, err, gobErr)
		}
		err = checkSerializable("", "ctx-key", tc.v)
		if !errors.Is(err, ErrNotSerializable) || !strings.Contains(err.Error(), `Options.Context key "ctx-key"`) {
			t.Errorf("checkSerializable of a %s = %v; want ErrNotSerializable naming the Options.Context key", tc.typ, err)
		}
	}
	if _, err := s.Load(bg, "job"); !errors.Is(err, ErrNoCheckpoint) {
		t.Errorf("Load after failed Saves = %v; want ErrNoCheckpoint: nothing saved", err)
	}
	for _, v := range []any{nil, 1, "s", []string{"a"}, []byte("b"), 2.5} {
		if err := checkSerializable("t", "k", v); err != nil {
			t.Errorf("checkSerializable(%#v) = %v; want nil", v, err)
		}
	}
}

// registeredOnlyHere is registered under a name that the test then
// replaces in the encoded bytes, to make a log that holds a type this
// program does not know.
type registeredOnlyHere struct{ A int }

func init() { gob.RegisterName("dagtest.known", registeredOnlyHere{}) }

func TestFileStoreLoadUnregistered(t *testing.T) {
	t.Parallel()
	v, err := encodeValue(registeredOnlyHere{7})
	if err != nil {
		t.Fatal(err)
	}
	v = bytes.Replace(v, []byte("dagtest.known"), []byte("dagtest.other"), 1)
	var b batch
	entry := appendString(nil, "the-task")
	entry = append(entry, byte(Completed), entryOutput, 1, 0)
	for range 2 {
		tb, _ := time.Time{}.MarshalBinary()
		entry = appendString(entry, string(tb))
	}
	entry = append(entry, 1)
	entry = appendString(entry, "the-key")
	entry = appendString(entry, string(v))
	b.add(entry)
	s, _ := newTestStore(t)
	if err := os.WriteFile(s.logPath("job"), append([]byte(logMagic), b.seal()...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(bg, "job")
	if !errors.Is(err, ErrNotSerializable) {
		t.Fatalf("Load = %v; want ErrNotSerializable", err)
	}
	for _, want := range []string{`job "job"`, `task "the-task"`, `output "the-key"`, "dagtest.other", "gob.Register"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load = %q; want it to contain %q", err, want)
		}
	}
}

// TestFileStoreNames saves and locks jobs with awkward names: each gets
// files of its own, with safe names, inside the store's directory.
func TestFileStoreNames(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{
		"", "etl/daily", "etl_daily", "ETL/daily", "etl/Daily", "../x", "../../x", "/abs", "x/..", ".", "..", "x", "./x",
		"with space", "日本語", "日本", "ü", "u", "nul\x00x", "\xff\xfe", "C:\\x", "CON", "a:b", "a*b?",
		strings.Repeat("n", 255), strings.Repeat("n", 256), strings.Repeat("é", 5000),
	}
	safe := regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}-[0-9a-f]{24}$`)
	seen := map[string]string{}
	for _, name := range names {
		base := fileName(name)
		if !safe.MatchString(base) {
			t.Errorf("fileName(%q) = %q; want a safe name", name, base)
		}
		if other, dup := seen[strings.ToLower(base)]; dup {
			t.Errorf("fileName(%q) = fileName(%q) = %q, ignoring case", name, other, base)
		}
		seen[strings.ToLower(base)] = name
	}
	var unlocks []func() error
	for i, name := range names {
		if err := s.Save(bg, name, "t", TaskResult{State: Completed, Output: map[string]any{"i": i}}); err != nil {
			t.Fatalf("Save(%q) = %v", name, err)
		}
		unlock, err := s.Lock(bg, name)
		if err != nil {
			t.Fatalf("Lock(%q) = %v", name, err)
		}
		unlocks = append(unlocks, unlock)
	}
	if got := dirNames(t, root); !slices.Equal(got, []string{"store"}) {
		t.Errorf("files beside the store's directory: %q; want only %q", got, "store")
	}
	if got := dirNames(t, dir); len(got) != 2*len(names) {
		t.Errorf("the store's directory holds %d files; want %d: %q", len(got), 2*len(names), got)
	}
	for i, name := range names {
		r, err := s.Load(bg, name)
		if err != nil || len(r.Tasks) != 1 || r.Tasks["t"].Output["i"] != i {
			t.Errorf("Load(%q) = %v, %v; want its own task", name, r, err)
		}
		if err := unlocks[i](); err != nil {
			t.Errorf("unlock of %q = %v", name, err)
		}
	}
	if got := dirNames(t, dir); len(got) != len(names) || slices.ContainsFunc(got, func(n string) bool { return !strings.HasSuffix(n, ".ckpt") }) {
		t.Errorf("after unlocking, the store's directory holds %q; want the %d logs only", got, len(names))
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestFileStoreLockTwoStores checks that two FileStores on one directory
// exclude each other, and, where flock is used, that the kernel lock does
// so without the in-process guard.
func TestFileStoreLockTwoStores(t *testing.T) {
	t.Parallel()
	s1, dir := newTestStore(t)
	s2, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s1.Lock(bg, "job")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lock(bg, "job"); !errors.Is(err, ErrLocked) || !strings.HasPrefix(err.Error(), "dag: ") {
		t.Fatalf("second FileStore's Lock = %v; want ErrLocked", err)
	}
	if flockLocks {
		// Without the guard, as another process would try: a second open
		// file of the same lock file, in this very process, is refused.
		release, busy, err := lockFile(s2.lockPath("job"))
		if err != nil || !busy {
			t.Errorf("lockFile while locked = busy %v, %v; want busy", busy, err)
			if release != nil {
				release()
			}
		}
	}
	// Load, Save and Clear take no lock.
	if err := s2.Save(bg, "job", "t0", result(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Load(bg, "job"); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s1.lockPath("job")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after unlock: %v; want it removed", err)
	}
	unlock2, err := s2.Lock(bg, "job")
	if err != nil {
		t.Fatalf("Lock after unlock = %v; want nil", err)
	}
	if err := unlock(); err != nil { // a late second call leaves s2's lock alone
		t.Fatal(err)
	}
	if _, err := s1.Lock(bg, "job"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while the other store holds it = %v; want ErrLocked", err)
	}
	if err := unlock2(); err != nil {
		t.Fatal(err)
	}
}

// TestFileStoreLockCrashedOwner locks a job in a child process, checks
// that the lock holds here, kills the child with SIGKILL, and checks that
// its lock died with it.
func TestFileStoreLockCrashedOwner(t *testing.T) {
	if dir := os.Getenv("DAG_TEST_LOCK_CHILD"); dir != "" {
		s, err := NewFileStore(dir)
		if err != nil {
			fmt.Println(err)
			return
		}
		if _, err := s.Lock(bg, "job"); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin) // until killed, or the parent goes away
		return
	}
	if !flockLocks {
		t.Skip("no lock between processes on this system")
	}
	t.Parallel()
	s, dir := newTestStore(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreLockCrashedOwner$")
	cmd.Env = append(os.Environ(), "DAG_TEST_LOCK_CHILD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v; want %q", line, err, "locked\n")
	}
	if _, err := s.Lock(bg, "job"); !errors.Is(err, ErrLocked) {
		t.Errorf("Lock while another process holds it = %v; want ErrLocked", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(s.lockPath("job")); err != nil {
		t.Fatalf("the killed child's lock file: %v; want it left behind", err)
	}
	unlock, err := s.Lock(bg, "job")
	if err != nil {
		t.Fatalf("Lock after the owner was killed = %v; want nil", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestNewFileStore(t *testing.T) {
	t.Parallel()
	if _, err := NewFileStore(""); err == nil {
		t.Error(`NewFileStore("") = nil error; want one`)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileStore(file); err == nil {
		t.Error("NewFileStore on a file = nil error; want one")
	}
	nested := filepath.Join(t.TempDir(), "a", "b")
	if _, err := NewFileStore(nested); err != nil {
		t.Errorf("NewFileStore of a new nested directory = %v; want it created", err)
	}
}

// FuzzFileStoreLoad loads arbitrary bytes as a log. Load must not panic
// and must fail only with the checkpoint sentinels; when it succeeds, a
// Save must append after what it read, and Load must then see both.
func FuzzFileStoreLoad(f *testing.F) {
	s, _ := newTestStore(f)
	for i := range 3 {
		if err := s.Save(bg, "seed", fmt.Sprint("t", i), result(i)); err != nil {
			f.Fatal(err)
		}
	}
	data, err := os.ReadFile(s.logPath("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)-3])
	f.Add(data[:len(logMagic)+5])
	f.Add(append(slices.Clone(data), data[len(logMagic):]...))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, log []byte) {
		s, _ := newTestStore(t)
		if err := os.WriteFile(s.logPath("job"), log, 0o644); err != nil {
			t.Fatal(err)
		}
		before, err := s.Load(bg, "job")
		switch {
		case errors.Is(err, ErrCorruptCheckpoint), errors.Is(err, ErrNotSerializable):
			return
		case errors.Is(err, ErrNoCheckpoint):
			before = &Result{Tasks: map[string]TaskResult{}}
		case err != nil:
			t.Fatalf("Load = %v; want nil or a checkpoint sentinel", err)
		}
		if err := s.Save(bg, "job", "\x00new", result(0)); err != nil {
			t.Fatalf("Save after a good Load = %v", err)
		}
		after, err := s.Load(bg, "job")
		if err != nil {
			t.Fatalf("Load after Save = %v", err)
		}
		if len(after.Tasks) != len(before.Tasks)+1 && len(after.Tasks) != len(before.Tasks) {
			t.Fatalf("Load after Save has %d tasks; want %d and the new one", len(after.Tasks), len(before.Tasks))
		}
		if _, ok := after.Tasks["\x00new"]; !ok {
			t.Fatal("Load after Save lacks the new task")
		}
	})
}

// BenchmarkFileStoreSave measures Save on this machine's disk: one saver
// at a time (each Save waits for its own fsync), and 64 concurrent savers
// with group commit and without. ms/save is the mean time one Save takes;
// saves/fsync how many Saves each record held.
func BenchmarkFileStoreSave(b *testing.B) {
	for _, bc := range []struct {
		name   string
		savers int
		serial bool
	}{
		{"savers=1", 1, false},
		{"savers=64/group", 64, false},
		{"savers=64/nogroup", 64, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := newTestStore(b)
			s.serial = bc.serial
			var records atomic.Int64
			s.hook = func(event string, _ int) {
				if event == "write" {
					records.Add(1)
				}
			}
			r := result(1)
			var next, took atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for g := range bc.savers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						t0 := time.Now()
						if err := s.Save(bg, "job", fmt.Sprint("t", g), r); err != nil {
							b.Error(err)
							return
						}
						took.Add(int64(time.Since(t0)))
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(took.Load())/float64(b.N)/1e6, "ms/save")
			b.ReportMetric(float64(b.N)/float64(records.Load()), "saves/fsync")
		})
	}
}
