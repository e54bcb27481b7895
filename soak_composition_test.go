package dag_test

// TestSoakComposition runs random composed jobs (cpGenerate, with Timeouts)
// many at once, in real time, under the race detector: what the property
// test, in fake time, cannot see. Besides what TestPropertyComposition
// draws, jobs have groups with a Timeout, tasks whose every attempt hangs
// until its Timeout, tasks that hang until their group's Timeout ends them,
// and Job.Cancel at a random moment. Each job is checked with what holds
// whatever the timing: the reference for every task that was not canceled
// (a group may also end Failed by its own Timeout), events legal and
// complete, no start before the dependencies end, MaxParallel across
// levels, what each task sees, Wait's error; and, for a job whose outcome
// does not depend on timing, the whole prediction. TestMain's goleak
// check finds any goroutine the jobs leave behind.
//
// The default run is short (a second or so); DAG_SOAK=1 runs 5,000 jobs,
// DAG_SOAK=N runs N:
//
//	DAG_SOAK=20000 go test -race -count=1 -run 'TestSoakComposition$' -v .
//
// A failure names the seed; the seed fixes the job, not the timing.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagrun/dag"
)

// scJobs is how many jobs the soak runs: 150, or what DAG_SOAK says.
func scJobs() int {
	switch v := os.Getenv("DAG_SOAK"); v {
	case "":
		return 150
	case "1":
		return 5000
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 5000
		}
		return n
	}
}

// scStats are the soak's figures.
type scStats struct {
	jobs, tasks, runs, canceled, timedOut, groupTimeouts, predicted atomic.Int64
	most                                                            atomic.Int64
	ends                                                            [dag.UpstreamFailed + 1]atomic.Int64
}

func TestSoakComposition(t *testing.T) {
	t.Parallel()
	jobs := scJobs()
	if testing.Short() {
		jobs = min(jobs, 30)
	}
	const par = 8
	start := time.Now()
	var st scStats
	var next, failures atomic.Int64
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for failures.Load() < 10 {
				seed := uint64(next.Add(1) - 1)
				if seed >= uint64(jobs) {
					return
				}
				if !t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { scRunJob(t, seed, &st) }) {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	var ends []string
	for s := dag.Completed; s <= dag.UpstreamFailed; s++ {
		ends = append(ends, fmt.Sprintf("%d %v", st.ends[s].Load(), s))
	}
	t.Logf("soak: %d jobs, %d runs in %v, %d at once: %d tasks (%v); %d runs canceled by the test, %d group timeouts fired in %d groups with one; %d runs checked against the whole prediction; most attempts at once %d",
		st.jobs.Load(), st.runs.Load(), time.Since(start).Round(time.Millisecond), par, st.tasks.Load(), ends,
		st.canceled.Load(), st.timedOut.Load(), st.groupTimeouts.Load(), st.predicted.Load(), st.most.Load())
}

// scOwnTimeout reports whether group s ended Failed by its own Timeout: its
// Err is the timeout itself, not a member's *TaskError.
func scOwnTimeout(s *cpSpec, tr dag.TaskResult) bool {
	var te *dag.TaskError
	return s.kind == cpSub && s.timeout > 0 && tr.State == dag.Failed &&
		errors.Is(tr.Err, context.DeadlineExceeded) && !errors.As(tr.Err, &te)
}

func scRunJob(t *testing.T, seed uint64, st *scStats) {
	r := rand.New(rand.NewPCG(seed, 0x50a6))
	j := cpGenerate(cpRand{r}, 40, true)
	st.jobs.Add(1)
	st.groupTimeouts.Add(int64(len(j.groupTO)))
	want := j.cpPredict()
	// A job whose outcome depends on timing: a group Timeout, a stop by
	// the test, or a failure that stops a group or the job in fail-fast
	// mode.
	timed := len(j.groupTO) > 0
	mps := []int{1 + r.IntN(8), 1 + r.IntN(8)}
	var first *cpOutcome
	for _, mp := range mps {
		var stop func(*dag.Job)
		var canceled atomic.Bool
		if r.IntN(8) == 0 {
			after := time.Duration(r.IntN(3000)) * time.Microsecond
			stop = func(job *dag.Job) {
				timer := time.NewTimer(after)
				defer timer.Stop()
				select {
				case <-timer.C:
					canceled.Store(true)
					job.Cancel()
				case <-job.Done():
				}
			}
		}
		o, p := cpRunJob(t, j, mp, 30*time.Second, stop)
		o.canceled = canceled.Load()
		st.runs.Add(1)
		st.tasks.Add(int64(len(o.res.Tasks)))
		for _, tr := range o.res.Tasks {
			st.ends[tr.State].Add(1)
		}
		for _, s := range j.all {
			if scOwnTimeout(s, o.res.Tasks[s.path]) {
				st.timedOut.Add(1)
			}
		}
		if o.canceled {
			st.canceled.Add(1)
		}
		for m := int64(p.most); ; {
			old := st.most.Load()
			if m <= old || st.most.CompareAndSwap(old, m) {
				break
			}
		}

		cpCheckEvents(t, j, o)
		cpCheckLocal(t, j, o, p, scOwnTimeout)
		if j.keepGoing {
			cpCheckKeepGoingErr(t, j, o, func(s *cpSpec) bool { return scOwnTimeout(s, o.res.Tasks[s.path]) })
		}
		if !timed && !o.canceled && (j.keepGoing || !j.stops(want)) {
			st.predicted.Add(1)
			cpCheckPredicted(t, j, want, o)
			if first == nil {
				first = &o
			} else {
				cpCheckSameContext(t, *first, o)
			}
		}
		if t.Failed() {
			t.Logf("MaxParallel %d, canceled by the test %t; the job:\n%v", mp, o.canceled, j)
			cpLogEvents(t, o.events)
			return
		}
	}
}
