package dag_test

// Progress: consistent snapshots while a job runs.

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
)

// TestProgressConsistent polls Progress while a job runs: every snapshot
// counts each task once, never more than MaxParallel running, and ended
// tasks never come back; the final snapshot is exact.
func TestProgressConsistent(t *testing.T) {
	t.Parallel()
	for _, mp := range parallels {
		t.Run(fmt.Sprintf("MaxParallel=%d", mp), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(mp), 7))
			tasks := randomDAG(r, 40, 0.08)
			wantFailed := 0
			for i := range tasks {
				tasks[i].Func = succeed(nil)
				switch i % 7 {
				case 3:
					tasks[i].ContinueOnFailure = true
					tasks[i].Func = fail(errBoom)
					wantFailed++
				case 5:
					var calls atomic.Int32
					tasks[i].MaxRetries = 2
					tasks[i].Func = script(&calls, fail(errBoom), succeed(nil))
				}
			}
			opts := dag.Options{Name: "progress", MaxParallel: mp, Backoff: zeroBackoff}
			job, rec := startJob(t, t.Context(), tasks, opts)
			var problems []string
			var wg sync.WaitGroup
			wg.Go(func() {
				ended := 0
				for {
					select {
					case <-job.Done():
						return
					default:
					}
					p := job.Progress()
					sum := p.Pending + p.Ready + p.Running + p.Retrying + p.Completed + p.Failed + p.Canceled
					if sum != len(tasks) || p.Running > mp || p.Job != "progress" || p.Completed+p.Failed+p.Canceled < ended {
						problems = append(problems, fmt.Sprintf("%+v", p))
					}
					ended = p.Completed + p.Failed + p.Canceled
					runtime.Gosched()
				}
			})
			out := finishJob(t, job, rec, tasks, opts)
			wg.Wait()
			for _, p := range problems {
				t.Errorf("inconsistent Progress(): %s", p)
			}
			if out.Err != nil {
				t.Fatalf("Wait() = %v; want nil", out.Err)
			}
			want := dag.Progress{Job: "progress", State: dag.Completed, Completed: len(tasks) - wantFailed, Failed: wantFailed}
			if diff := cmp.Diff(want, job.Progress()); diff != "" {
				t.Errorf("final Progress() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
