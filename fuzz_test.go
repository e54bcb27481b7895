package dag_test

// FuzzValidate checks Validate differentially, against fzCheck, a naive
// reference written from the rules in the package doc (house style, point
// 18): the same verdict, the sentinel of every kind of problem present and
// of no other, real cycles in the messages, the same answer from Run, and,
// for a valid list, a run in which every task completes after its
// dependencies.
//
// The fuzz input is a small program (see fzDecode) that builds a task list
// of arbitrary names (empty, unicode, invalid UTF-8, 64 KiB long),
// duplicates, self, unknown and forward dependencies, long chains closed
// into cycles and long dependency lists. Replay the committed corpus with
// go test; search for more with
//
//	go test -run='^$' -fuzz=FuzzValidate -fuzztime=60s .

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/dagrun/dag"
)

// Limits that keep one fuzz input fast, so the fuzzer explores many.
const (
	fzMaxTasks = 20_000
	fzMaxDeps  = 50_000
)

// fzShown is how many problems Validate lists before it counts the rest
// (dag.go: maxProblems), and fzCycles how many cycles at most it shows,
// plus one "more dependency cycles" line (dag.go: maxCycles).
const (
	fzShown  = 100
	fzCycles = 10
)

// fzRef is one dependency before names are known: a task by index (modulo
// the number of tasks, so it may point forward, backward or at the task
// itself) or a literal name.
type fzRef struct {
	idx   int
	lit   string
	isLit bool
}

// fzTask is a decoded task; Func is filled in by fzTasks.
type fzTask struct {
	name    string
	nilFunc bool
	timeout time.Duration
	retries int
	cont    bool
	deps    []fzRef
}

// fzReader hands out the input's bytes, then zeros.
type fzReader struct {
	b    []byte
	huge int // bytes of huge names made so far
}

// fzHugeBudget bounds the bytes of huge names in one input, so that each
// input runs in milliseconds.
const fzHugeBudget = 1 << 20

func (r *fzReader) more() bool { return len(r.b) > 0 }

func (r *fzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fzReader) uint16() int { return int(r.byte())<<8 | int(r.byte()) }

// fzPool holds names that collide often and names that are hard to print.
var fzPool = []string{
	"a", "b", "c", "d", "é", "日本語", "\xff\xfe", "a -> b", "x\ny", "\x00",
	" ", "#0", "t0", "t1", "…", "\u202e", strings.Repeat("long", 40),
}

// fzName decodes a name; i is the index the task will get.
func fzName(r *fzReader, i int) string {
	switch r.byte() % 8 {
	case 0:
		return ""
	case 1, 2, 3:
		return fzPool[int(r.byte())%len(fzPool)]
	case 4:
		return "t" + strconv.Itoa(i) // unique unless another op says so
	case 5:
		n := int(r.byte() % 32)
		n = min(n, len(r.b))
		s := string(r.b[:n]) // raw bytes: often invalid UTF-8
		r.b = r.b[n:]
		return s
	case 6:
		// A huge name: up to 64 KiB.
		c, n := r.byte(), 1024+int(r.byte())*256
		if r.huge+n > fzHugeBudget {
			n = 65 // just over what error messages show
		}
		r.huge += n
		return strings.Repeat(string([]byte{c}), n)
	default:
		return "t" + strconv.Itoa(int(r.byte()))
	}
}

// fzDecode turns fuzz bytes into tasks. Each op starts with a byte:
//
//	0-2  a new task: name, flags (nil Func, Timeout, MaxRetries, ContinueOnFailure)
//	3    the last task depends on a task by index (2 bytes)
//	4    the last task depends on a name (name spec)
//	5    a chain of L tasks (a byte, plus one), each depending on the one
//	     before; flags: 1 close it into a cycle, 2 hang it off the last
//	     task, 4 make it 16 times longer (up to 4096)
//	6    the last task depends on K tasks by index (a byte, times 64 if
//	     the next byte is odd), from a start (2 bytes)
//	7    K copies of the last task (a byte): duplicates
func fzDecode(data []byte) []fzTask {
	r := &fzReader{b: data}
	var ts []fzTask
	deps := 0
	last := func() *fzTask {
		if len(ts) == 0 {
			ts = append(ts, fzTask{name: "t0"})
		}
		return &ts[len(ts)-1]
	}
	for r.more() && len(ts) < fzMaxTasks && deps < fzMaxDeps {
		switch op := r.byte(); op % 8 {
		case 0, 1, 2:
			t := fzTask{name: fzName(r, len(ts))}
			flags := r.byte()
			t.nilFunc = flags&1 != 0
			switch flags >> 1 & 3 {
			case 1:
				t.timeout = -time.Nanosecond
			case 2:
				t.timeout = time.Hour // never reached by a no-op Func
			case 3:
				t.timeout = -time.Duration(r.byte()) // 0 or negative
			}
			switch flags >> 3 & 3 {
			case 1:
				t.retries = dag.NoRetries
			case 2:
				t.retries = -2 - int(r.byte())
			case 3:
				t.retries = int(r.byte())
			}
			t.cont = flags&0x20 != 0
			ts = append(ts, t)
		case 3:
			t := last()
			t.deps = append(t.deps, fzRef{idx: r.uint16()})
			deps++
		case 4:
			t := last()
			t.deps = append(t.deps, fzRef{lit: fzName(r, -1), isLit: true})
			deps++
		case 5:
			n := int(r.byte()) + 1
			flags := r.byte()
			if flags&4 != 0 {
				n *= 16
			}
			n = min(n, fzMaxTasks-len(ts))
			if n == 0 {
				break
			}
			prefix := fzName(r, len(ts))
			if n > 1 && len(prefix) > 64 {
				prefix = prefix[:64] // may cut a rune in two
			}
			prefix += "/"
			first := len(ts)
			for k := range n {
				t := fzTask{name: prefix + strconv.Itoa(k)}
				if k > 0 {
					t.deps = []fzRef{{idx: first + k - 1}}
				}
				ts = append(ts, t)
			}
			if flags&1 != 0 {
				ts[first].deps = append(ts[first].deps, fzRef{idx: first + n - 1})
			}
			if flags&2 != 0 && first > 0 {
				ts[first].deps = append(ts[first].deps, fzRef{idx: first - 1})
			}
			deps += n
		case 6:
			t := last()
			k := int(r.byte())
			if r.byte()&1 != 0 {
				k *= 64
			}
			start := r.uint16()
			for i := range k {
				t.deps = append(t.deps, fzRef{idx: start + i})
			}
			deps += k
		case 7:
			k := int(r.byte()%64) + 1
			k = min(k, fzMaxTasks-len(ts))
			t := *last()
			for range k {
				c := t
				c.deps = append([]fzRef(nil), t.deps...)
				ts = append(ts, c)
				deps += len(c.deps)
			}
		}
	}
	return ts
}

// fzTasks resolves the decoded tasks' dependencies into names and gives
// each task with a Func one that writes its name and checks that every
// dependency's write is visible.
func fzTasks(ds []fzTask) []dag.Task {
	tasks := make([]dag.Task, len(ds))
	for i, d := range ds {
		deps := make([]string, len(d.deps))
		for k, ref := range d.deps {
			if ref.isLit {
				deps[k] = ref.lit
			} else {
				deps[k] = ds[ref.idx%len(ds)].name
			}
		}
		tasks[i] = dag.Task{Name: d.name, DependsOn: deps, Timeout: d.timeout, MaxRetries: d.retries, ContinueOnFailure: d.cont}
		if !d.nilFunc {
			name := d.name
			tasks[i].Func = func(_ context.Context, in dag.Values) (map[string]any, error) {
				for _, dep := range deps {
					if v, ok := in.Get(dep); !ok || v != dep {
						return nil, fmt.Errorf("task %q started before its dependency %q wrote its key: Get = %v, %t", name, dep, v, ok)
					}
				}
				return map[string]any{name: name}, nil
			}
		}
	}
	return tasks
}

// fzVerdict is what the reference finds wrong with a task list.
type fzVerdict struct {
	invalid, duplicate, missing, cycle bool // kinds of problem present
	// loop is set when Kahn's algorithm cannot order the tasks: a cycle
	// of two or more tasks, which Validate reports on lines of their own.
	loop bool
	// problems counts them as Validate lists them, one per culprit; a
	// cyclic list adds between 1 and fzCycles+1 cycle lines to it.
	problems int
	// first maps each name to the task declared first with it: the one
	// that dependencies on the name mean.
	first map[string]int
	// edges[i] are the tasks task i depends on (known, not itself).
	edges [][]int
}

func (v fzVerdict) valid() bool { return !v.invalid && !v.duplicate && !v.missing && !v.cycle }

// fzCheck is the reference checker: names non-empty and unique, Func not
// nil, Timeout not negative, MaxRetries at least NoRetries, dependencies
// declared and not the task itself, and no cycle, found with Kahn's
// algorithm.
func fzCheck(tasks []dag.Task) fzVerdict {
	v := fzVerdict{first: map[string]int{}, edges: make([][]int, len(tasks))}
	bad := func(kind *bool) { *kind = true; v.problems++ }
	for i, t := range tasks {
		if t.Name == "" || strings.Contains(t.Name, "/") {
			bad(&v.invalid)
		}
		if t.Name == "" {
		} else if _, dup := v.first[t.Name]; dup {
			bad(&v.duplicate)
		} else {
			v.first[t.Name] = i
		}
		if t.Func == nil {
			bad(&v.invalid)
		}
		if t.Timeout < 0 {
			bad(&v.invalid)
		}
		if t.MaxRetries < dag.NoRetries {
			bad(&v.invalid)
		}
	}
	for i, t := range tasks {
		for _, d := range t.DependsOn {
			j, ok := v.first[d]
			switch {
			case d == t.Name && d != "":
				bad(&v.cycle) // a task depending on itself is a cycle
			case !ok:
				bad(&v.missing)
			default:
				v.edges[i] = append(v.edges[i], j)
			}
		}
	}
	// Kahn: count each task's distinct dependencies, and peel off tasks
	// whose count drops to zero.
	pending := make([]int, len(tasks))
	dependents := make([][]int, len(tasks))
	for i, es := range v.edges {
		seen := map[int]bool{}
		for _, j := range es {
			if !seen[j] {
				seen[j] = true
				pending[i]++
				dependents[j] = append(dependents[j], i)
			}
		}
	}
	var queue []int
	for i, p := range pending {
		if p == 0 {
			queue = append(queue, i)
		}
	}
	for k := 0; k < len(queue); k++ {
		for _, o := range dependents[queue[k]] {
			if pending[o]--; pending[o] == 0 {
				queue = append(queue, o)
			}
		}
	}
	if len(queue) < len(tasks) {
		v.cycle, v.loop = true, true
	}
	return v
}

// fzCheckCycleMessage checks that a cycle message shows a real cycle,
// when its names can be told apart: "dag: dependency cycle: a -> b -> a
// (each task depends on the one before it); …".
func fzCheckCycleMessage(t *testing.T, v fzVerdict, msg string) {
	t.Helper()
	const head, tail = "dag: dependency cycle: ", " (each task depends on the one before it); remove one of these dependencies"
	if !strings.HasPrefix(msg, head) {
		return // a self dependency, or "more dependency cycles not shown"
	}
	if !strings.HasSuffix(msg, tail) {
		t.Errorf("cycle message %q does not end with %q", msg, tail)
		return
	}
	path := strings.TrimSuffix(strings.TrimPrefix(msg, head), tail)
	for name := range v.first {
		if len(name) > 64 || !utf8.ValidString(name) || strings.ContainsAny(name, "\"…-") ||
			strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return // dag quotes such names in a path; keep the check simple
		}
	}
	names := strings.Split(path, " -> ")
	if len(names) < 3 {
		t.Errorf("cycle message %q shows fewer than two tasks", msg)
		return
	}
	if names[0] != names[len(names)-1] {
		t.Errorf("cycle message %q does not end where it starts", msg)
	}
	seen := map[string]bool{}
	for k := 0; k+1 < len(names); k++ {
		if strings.HasPrefix(names[k+1], "… (") {
			return // the middle of a long cycle is elided
		}
		if seen[names[k]] {
			t.Errorf("cycle message %q visits %q twice", msg, names[k])
		}
		seen[names[k]] = true
		from, okf := v.first[names[k]]
		to, okt := v.first[names[k+1]]
		if !okf || !okt {
			t.Errorf("cycle message %q names an undeclared task", msg)
			return
		}
		found := false
		for _, j := range v.edges[to] {
			found = found || j == from
		}
		if !found {
			t.Errorf("cycle message %q: %q does not depend on %q", msg, names[k+1], names[k])
		}
	}
}

// fzCheckValidate compares Validate(tasks), and Run's refusal, with the
// reference; for a valid list it runs the job.
func fzCheckValidate(t *testing.T, tasks []dag.Task) {
	t.Helper()
	v := fzCheck(tasks)
	err := dag.Validate(tasks)
	if v.valid() {
		if err != nil {
			t.Fatalf("Validate(%d tasks) = %v; want nil", len(tasks), err)
		}
		fzCheckRun(t, tasks)
		return
	}
	if err == nil {
		t.Fatalf("Validate(%d tasks) = nil; want an error (reference: %+v)", len(tasks), v.kinds())
	}
	sentinels := []struct {
		name    string
		err     error
		present bool
	}{
		{"ErrInvalidTask", dag.ErrInvalidTask, v.invalid},
		{"ErrDuplicateTask", dag.ErrDuplicateTask, v.duplicate},
		{"ErrMissingDependency", dag.ErrMissingDependency, v.missing},
		{"ErrCycle", dag.ErrCycle, v.cycle},
		{"ErrInvalidOptions", dag.ErrInvalidOptions, false},
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	if len(list) > fzShown+1 {
		t.Errorf("Validate listed %d problems; want at most %d and a count of the rest", len(list), fzShown)
	}
	// The list is capped: a kind may go unshown only when the problems
	// overflow the cap. Cycles add 1 to fzCycles+1 lines.
	minCycles, maxCycles := 0, 0
	if v.loop {
		minCycles, maxCycles = 1, fzCycles+1
	}
	overflow := v.problems+minCycles > fzShown
	allShown := v.problems+maxCycles <= fzShown
	notShown := strings.HasSuffix(list[len(list)-1].Error(), "more problems not shown")
	if overflow != notShown && (overflow || allShown) {
		t.Errorf("Validate's last line %q: %d problems (plus cycles); want a count of the rest iff more than %d", list[len(list)-1], v.problems, fzShown)
	}
	matched := 0
	for _, s := range sentinels {
		is := errors.Is(err, s.err)
		if is {
			matched++
		}
		switch {
		case is && !s.present:
			t.Errorf("errors.Is(Validate(…), %s) = true; the reference finds no such problem (%+v)\n%v", s.name, v.kinds(), fzShort(err))
		case !is && s.present && allShown:
			t.Errorf("errors.Is(Validate(…), %s) = false; the reference finds such a problem (%+v)\n%v", s.name, v.kinds(), fzShort(err))
		}
	}
	if matched == 0 {
		t.Errorf("Validate(…) = %v; want it to match at least one sentinel", fzShort(err))
	}
	cycles := 0
	for _, e := range list {
		if errors.Is(e, dag.ErrCycle) {
			fzCheckCycleMessage(t, v, e.Error())
			if strings.HasPrefix(e.Error(), "dag: dependency cycle: ") {
				cycles++
			}
		}
	}
	if cycles > fzCycles {
		t.Errorf("Validate showed %d cycles; want at most %d", cycles, fzCycles)
	}

	// Run refuses the same list with the same error, and runs nothing.
	job, rerr := dag.Run(context.Background(), tasks, dag.Options{})
	if job != nil || rerr == nil {
		t.Fatalf("Run(invalid tasks) = %v, %v; want nil and an error", job, rerr)
	}
	if rerr.Error() != err.Error() {
		t.Errorf("Run's error differs from Validate's:\nRun:      %s\nValidate: %s", fzShort(rerr), fzShort(err))
	}
}

// kinds summarises a verdict for messages.
func (v fzVerdict) kinds() string {
	return fmt.Sprintf("invalid=%t duplicate=%t missing=%t cycle=%t problems=%d", v.invalid, v.duplicate, v.missing, v.cycle, v.problems)
}

// fzShort shortens an error message for a failure report.
func fzShort(err error) string {
	s := err.Error()
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// fzCheckRun runs a valid task list: every task completes, after its
// dependencies (its Func checks), and the context holds every task's key.
func fzCheckRun(t *testing.T, tasks []dag.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	job, err := dag.Run(ctx, tasks, dag.Options{MaxParallel: 1 + len(tasks)%4})
	if err != nil {
		t.Fatalf("Run(valid tasks) = %v; want no error", err)
	}
	res, err := job.Wait()
	if err != nil {
		t.Fatalf("Wait() = %v; want nil", err)
	}
	if res.State != dag.Completed || len(res.Tasks) != len(tasks) {
		t.Fatalf("Result = %v with %d tasks; want completed with %d", res.State, len(res.Tasks), len(tasks))
	}
	want := make(map[string]any, len(tasks))
	for _, tk := range tasks {
		want[tk.Name] = tk.Name
		if tr := res.Tasks[tk.Name]; tr.State != dag.Completed || tr.Attempts != 1 {
			t.Errorf("Result.Tasks[%q] = %v after %d attempts; want completed after 1", tk.Name, tr.State, tr.Attempts)
		}
	}
	if diff := cmp.Diff(want, res.Context); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}
}

// fzSeeds are inputs every run replays; see fzDecode for the ops.
var fzSeeds = [][]byte{
	{},
	{0, 4, 0},                                // one valid task
	{0, 4, 0, 0, 4, 0, 3, 0, 0},              // t1 depends on t0
	{0, 4, 0, 3, 0, 0},                       // t0 depends on itself
	{0, 0, 0},                                // an empty name
	{0, 4, 1},                                // a nil Func
	{0, 4, 2, 0, 4, 4, 0, 4, 0x10, 7},        // Timeout -1ns, Timeout 1h, MaxRetries -9
	{0, 4, 0, 4, 1, 0},                       // t0 depends on "a", undeclared
	{0, 1, 0, 0, 0, 1, 0, 0, 7, 5},           // eight tasks named "a"
	{0, 4, 0, 3, 0, 1, 0, 4, 0, 3, 0, 0},     // t0 <-> t1
	{5, 9, 1, 4},                             // a 10-task cycle
	{5, 255, 5, 4},                           // a 4096-task cycle
	{5, 255, 4, 4, 0, 4, 0, 6, 64, 1, 0, 0},  // a 4096-task chain, and a task depending on all of it
	{5, 255, 4, 4, 0, 4, 0, 6, 160, 1, 0, 0}, // 10240 deps, wrapping round to the task itself
	{0, 6, 0x41, 0, 0, 0, 5, 3, 0xff, 0xfe, 0xfd, 0, 3, 0, 0}, // huge and invalid UTF-8 names
	{5, 5, 1, 4, 5, 5, 1, 4, 5, 2, 3, 4, 3, 0, 2},             // overlapping cycles
}

func FuzzValidate(f *testing.F) {
	for _, s := range fzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fzCheckValidate(t, fzTasks(fzDecode(data)))
	})
}

// fzBehaviour is what one task's Func does in FuzzRun.
type fzBehaviour struct {
	kind    int // fzOK, fzFailK, fzPanicK, fzAlways, fzPermanent
	k       int // failing attempts before success, for fzFailK and fzPanicK
	retries int // Task.MaxRetries
	cont    bool
	deps    []int // earlier tasks
}

const (
	fzOK = iota
	fzFailK
	fzPanicK
	fzAlways
	fzPermanent
	fzKinds
)

var fzErrRun = errors.New("fz: attempt failed")

// fzDecodeRun turns fuzz bytes into a valid job: up to 24 tasks, each
// depending on earlier ones, with a behaviour and retry settings each.
func fzDecodeRun(data []byte) (bs []fzBehaviour, opts dag.Options) {
	r := &fzReader{b: data}
	n := 1 + int(r.byte()%24)
	o := r.byte()
	opts = dag.Options{MaxParallel: int(o % 4), MaxRetries: int(o>>2) % 3}
	bs = make([]fzBehaviour, n)
	for i := range bs {
		b := &bs[i]
		kind := r.byte()
		b.kind, b.k = int(kind)%fzKinds, int(kind>>4)%4
		flags := r.byte()
		b.cont = flags&1 != 0
		b.retries = []int{0, dag.NoRetries, 1, 2, 3}[int(flags>>1)%5]
		if i > 0 {
			for range r.byte() % 4 {
				b.deps = append(b.deps, int(r.byte())%i)
			}
		}
	}
	return bs, opts
}

// fzModel is the reference outcome of one task, if it runs: whether it
// succeeds, and after how many attempts it ends.
func fzModel(b fzBehaviour, opts dag.Options) (ok bool, attempts int) {
	retries := b.retries
	switch retries {
	case 0:
		retries = opts.MaxRetries
	case dag.NoRetries:
		retries = 0
	}
	switch b.kind {
	case fzOK:
		return true, 1
	case fzFailK, fzPanicK:
		if b.k <= retries {
			return true, b.k + 1
		}
		return false, retries + 1
	case fzAlways:
		return false, retries + 1
	default: // fzPermanent
		return false, 1
	}
}

// FuzzRun runs random valid jobs whose tasks succeed, fail, panic, or fail
// permanently, with retries and ContinueOnFailure, and checks the result
// against fzModel: a job in which no task fails for good without
// ContinueOnFailure completes with every task in its modelled state and
// attempts; otherwise it fails with a TaskError naming such a task, and
// every task that ended did so as modelled, after its dependencies. Events
// agree with the result. In a synctest bubble, so a hang is a deadlock.
func FuzzRun(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1})                      // a chain of three that succeeds
	f.Add([]byte{3, 4, 0x11, 4, 2, 0, 1, 0, 0x23, 1, 1, 1})             // retries, then success
	f.Add([]byte{4, 1, 3, 1, 0, 0, 1, 0, 4, 0, 1, 1, 0, 0, 2, 0, 1})    // failures with ContinueOnFailure
	f.Add([]byte{5, 2, 3, 0, 0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 1, 3, 0, 3}) // a failure fails the job
	f.Add([]byte{1, 4, 4, 4, 0x14, 2, 0, 0})                            // a permanent error ends retries; a panic is retried
	f.Add([]byte{23, 11, 0x12, 0, 0x22, 1, 0, 0x13, 5, 2, 0, 1, 4, 3, 0, 0, 0x31, 9, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		bs, opts := fzDecodeRun(data)
		synctest.Test(t, func(t *testing.T) { fzCheckRunJob(t, bs, opts) })
	})
}

func fzCheckRunJob(t *testing.T, bs []fzBehaviour, opts dag.Options) {
	n := len(bs)
	name := func(i int) string { return "t" + strconv.Itoa(i) }
	var mu sync.Mutex
	var problems []string // what Funcs saw wrong
	calls := make([]atomic.Int32, n)
	tasks := make([]dag.Task, n)
	for i, b := range bs {
		deps := make([]string, len(b.deps))
		for k, d := range b.deps {
			deps[k] = name(d)
		}
		tasks[i] = dag.Task{Name: name(i), DependsOn: deps, MaxRetries: b.retries, ContinueOnFailure: b.cont,
			Func: func(_ context.Context, in dag.Values) (map[string]any, error) {
				att := int(calls[i].Add(1))
				for _, d := range b.deps {
					// A dependency either completed, and its key is
					// visible, or failed with ContinueOnFailure.
					ok, _ := fzModel(bs[d], opts)
					if v, seen := in.Get(name(d)); seen != ok || (seen && v != d) {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("%s sees %s = %v, %t; want it iff %s succeeded (%t)", name(i), name(d), v, seen, name(d), ok))
						mu.Unlock()
					}
				}
				switch {
				case b.kind == fzFailK && att <= b.k, b.kind == fzAlways:
					return nil, fmt.Errorf("%s attempt %d: %w", name(i), att, fzErrRun)
				case b.kind == fzPanicK && att <= b.k:
					panic(fmt.Errorf("%s attempt %d: %w", name(i), att, fzErrRun))
				case b.kind == fzPermanent:
					return nil, backoff.Permanent(fmt.Errorf("%s: %w", name(i), fzErrRun))
				}
				return map[string]any{name(i): i}, nil
			}}
	}

	// The reference: which tasks run, and whether the job fails.
	type outcome struct {
		runs, ok bool
		attempts int
	}
	model := make([]outcome, n)
	fatal := map[string]bool{} // tasks that would fail the job
	for i, b := range bs {
		runs := true
		for _, d := range b.deps {
			runs = runs && model[d].runs && (model[d].ok || bs[d].cont)
		}
		ok, att := fzModel(b, opts)
		model[i] = outcome{runs, ok, att}
		if runs && !ok && !b.cont {
			fatal[name(i)] = true
		}
	}

	events := make(chan dag.Event)
	evDone := make(chan []dag.Event)
	go func() {
		var evs []dag.Event
		for e := range events {
			evs = append(evs, e)
		}
		evDone <- evs
	}()
	opts.Events = events
	opts.Backoff = func() backoff.BackOff { return &backoff.ZeroBackOff{} }
	opts.Context = map[string]any{"init": true}
	job, err := dag.Run(t.Context(), tasks, opts)
	if err != nil {
		t.Fatalf("Run(valid tasks) = %v; want no error", err)
	}
	res, err := job.Wait()
	evs := <-evDone
	for _, p := range problems {
		t.Error(p)
	}

	wantCtx := map[string]any{"init": true}
	if len(fatal) == 0 {
		if err != nil || res.State != dag.Completed {
			t.Fatalf("Wait() = %v, %v; want completed, nil", res.State, err)
		}
		for i := range n {
			m := model[i]
			want := dag.TaskResult{State: dag.Completed, Attempts: m.attempts}
			if m.ok {
				wantCtx[name(i)] = i
			} else {
				want = dag.TaskResult{State: dag.Failed, Attempts: m.attempts, Err: fzErrRun}
			}
			if diff := cmp.Diff(want, res.Tasks[name(i)], ignoreTimes); diff != "" {
				t.Errorf("Result.Tasks[%s] mismatch (-want +got):\n%s", name(i), diff)
			}
		}
	} else {
		var te *dag.TaskError
		if res.State != dag.Failed || !errors.As(err, &te) || !fatal[te.Task] || !errors.Is(err, fzErrRun) {
			t.Fatalf("Wait() = %v, %v; want failed with a *dag.TaskError for one of %v", res.State, err, fatal)
		}
		failedFatal := 0
		for i := range n {
			m, tr := model[i], res.Tasks[name(i)]
			switch tr.State {
			case dag.Completed:
				wantCtx[name(i)] = i
				if !m.runs || !m.ok || tr.Attempts != m.attempts {
					t.Errorf("Result.Tasks[%s] = completed after %d attempts; model %+v", name(i), tr.Attempts, m)
				}
				for _, d := range bs[i].deps {
					if s := res.Tasks[name(d)].State; s != dag.Completed && !(s == dag.Failed && bs[d].cont) {
						t.Errorf("%s completed though its dependency %s is %v", name(i), name(d), s)
					}
				}
			case dag.Failed:
				if !m.runs || m.ok || tr.Attempts != m.attempts || !errors.Is(tr.Err, fzErrRun) {
					t.Errorf("Result.Tasks[%s] = failed after %d attempts (%v); model %+v", name(i), tr.Attempts, tr.Err, m)
				}
				if !bs[i].cont {
					failedFatal++
					if name(i) != te.Task || tr.Attempts != te.Attempts {
						t.Errorf("%s failed the job, but Wait's error names %s after %d attempts", name(i), te.Task, te.Attempts)
					}
				}
			case dag.Canceled:
				if tr.Attempts > m.attempts {
					t.Errorf("Result.Tasks[%s] = canceled after %d attempts; the model ends it after %d", name(i), tr.Attempts, m.attempts)
				}
			default:
				t.Errorf("Result.Tasks[%s].State = %v; want a final state", name(i), tr.State)
			}
		}
		if failedFatal != 1 {
			t.Errorf("%d tasks without ContinueOnFailure failed; want exactly 1", failedFatal)
		}
	}
	if diff := cmp.Diff(wantCtx, res.Context); diff != "" {
		t.Errorf("Result.Context mismatch (-want +got):\n%s", diff)
	}

	// Events: every attempt started has its Running event, and each
	// task's last event is its final state; the job's is last of all.
	running := map[string]int{}
	last := map[string]dag.State{}
	for _, e := range evs {
		if e.Task == "" {
			continue
		}
		if e.To == dag.Running {
			running[e.Task]++
		}
		last[e.Task] = e.To
	}
	for i := range n {
		tr := res.Tasks[name(i)]
		if running[name(i)] != tr.Attempts || calls[i].Load() != int32(tr.Attempts) {
			t.Errorf("%s: %d Running events and %d calls; want %d, its attempts", name(i), running[name(i)], calls[i].Load(), tr.Attempts)
		}
		if last[name(i)] != tr.State {
			t.Errorf("%s: last event to %v; want its final state %v", name(i), last[name(i)], tr.State)
		}
	}
	if len(evs) == 0 || evs[len(evs)-1].Task != "" || evs[len(evs)-1].To != res.State {
		t.Errorf("the last event is not the job's final state %v", res.State)
	}
}
