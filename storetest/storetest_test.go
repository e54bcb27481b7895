package storetest_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/dagrun/dag"
	"github.com/dagrun/dag/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFileStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) dag.Store {
		s, err := dag.NewFileStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestMemStore runs the suite on a store that keeps checkpoints in memory,
// to show that it asks nothing of a store that is specific to files.
func TestMemStore(t *testing.T) {
	t.Parallel()
	shared := newMemStore("") // one store for all subtests, as a database would be
	storetest.Run(t, func(t *testing.T) dag.Store { return shared })
}

// TestBrokenStore runs the suite on a store broken in the way that the
// STORETEST_BROKEN variable names; TestSuiteFindsBrokenStores runs it in a
// child process and expects it to fail.
func TestBrokenStore(t *testing.T) {
	broken := os.Getenv("STORETEST_BROKEN")
	if broken == "" {
		t.Skip("run by TestSuiteFindsBrokenStores")
	}
	storetest.Run(t, func(t *testing.T) dag.Store { return newMemStore(broken) })
}

func TestSuiteFindsBrokenStores(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		broken  string
		failing []string // subtests that must fail
	}{
		{"types", []string{"RoundTrip"}},
		{"times", []string{"RoundTrip"}},
		{"errors", []string{"RoundTrip"}},
		{"noreplace", []string{"LaterSaveReplaces"}},
		{"noclear", []string{"Clear"}},
		{"onejob", []string{"JobsSeparate"}},
		{"jobprefix", []string{"JobsSeparate"}},
		{"dropsaves", []string{"ConcurrentSaves"}},
		{"partial", []string{"NotSerializable"}},
		{"nolock", []string{"Locker/Exclusive", "Locker/Race"}},
		{"sticky", []string{"Locker/Exclusive"}},
	} {
		t.Run(tc.broken, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if d, ok := t.Deadline(); ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
				defer cancel()
			}
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBrokenStore$", "-test.v")
			cmd.Env = append(os.Environ(), "STORETEST_BROKEN="+tc.broken)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store broken by %q; want it to fail\n%s", tc.broken, out)
			}
			for _, sub := range tc.failing {
				if !bytes.Contains(out, []byte("--- FAIL: TestBrokenStore/"+sub+" ")) {
					t.Errorf("the suite did not fail %s for a store broken by %q\n%s", sub, tc.broken, out)
				}
			}
		})
	}
}

// memStore keeps checkpoints in memory, each value gob-encoded on its own
// as FileStore does. broken, if not "", names a way in which it breaks a
// promise of dag.Store.
type memStore struct {
	broken string
	mu     sync.Mutex
	jobs   map[string]map[string]memEntry
	locks  map[string]*int
	saves  int
}

type memEntry struct {
	r      dag.TaskResult
	err    string
	output map[string][]byte
}

func newMemStore(broken string) *memStore {
	return &memStore{broken: broken, jobs: make(map[string]map[string]memEntry), locks: make(map[string]*int)}
}

func (s *memStore) key(job string) string {
	switch s.broken {
	case "onejob":
		return ""
	case "jobprefix":
		if len(job) > 20 {
			return job[:20]
		}
	}
	return job
}

func (s *memStore) Save(ctx context.Context, job, task string, r dag.TaskResult) error {
	e := memEntry{r: r}
	e.r.Err, e.r.Output = nil, nil
	if r.Err != nil {
		e.err = r.Err.Error()
		if s.broken == "errors" {
			e.err = "failed"
		}
	}
	if s.broken == "times" {
		e.r.Started = r.Started.Truncate(time.Second)
	}
	if r.Output != nil {
		e.output = make(map[string][]byte)
	}
	for k, v := range r.Output {
		var buf bytes.Buffer
		if s.broken == "types" {
			v = fmt.Sprint(v)
		}
		if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
			if s.broken == "partial" {
				continue
			}
			return fmt.Errorf("dag: task %q: output %q of type %T: %w: %w", task, k, v, dag.ErrNotSerializable, err)
		}
		e.output[k] = buf.Bytes()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.broken == "dropsaves" && s.saves%97 == 0 {
		return nil
	}
	j := s.jobs[s.key(job)]
	if j == nil {
		j = make(map[string]memEntry)
		s.jobs[s.key(job)] = j
	}
	if _, ok := j[task]; ok && s.broken == "noreplace" {
		return nil
	}
	j[task] = e
	return nil
}

func (s *memStore) Load(ctx context.Context, job string) (*dag.Result, error) {
	s.mu.Lock()
	j := maps.Clone(s.jobs[s.key(job)])
	s.mu.Unlock()
	if len(j) == 0 {
		return nil, fmt.Errorf("job %q: %w", job, dag.ErrNoCheckpoint)
	}
	res := &dag.Result{Tasks: make(map[string]dag.TaskResult)}
	for task, e := range j {
		r := e.r
		if e.err != "" {
			r.Err = fmt.Errorf("%s", e.err)
		}
		if e.output != nil {
			r.Output = make(map[string]any)
		}
		for k, b := range e.output {
			var v any
			if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
				return nil, err
			}
			r.Output[k] = v
		}
		res.Tasks[task] = r
	}
	return res, nil
}

func (s *memStore) Clear(ctx context.Context, job string) error {
	if s.broken == "noclear" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, s.key(job))
	return nil
}

func (s *memStore) Lock(ctx context.Context, job string) (func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[job] != nil && s.broken != "nolock" {
		return nil, fmt.Errorf("job %q: %w", job, dag.ErrLocked)
	}
	token := new(int)
	s.locks[job] = token
	var once sync.Once
	return func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.broken == "sticky" {
			// Every call releases whoever holds the lock now.
			delete(s.locks, job)
			return nil
		}
		once.Do(func() {
			if s.locks[job] == token {
				delete(s.locks, job)
			}
		})
		return nil
	}, nil
}
