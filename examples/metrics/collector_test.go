package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ev(ms int, task string, from, to dag.State, attempt int) dag.Event {
	return dag.Event{Time: t0.Add(time.Duration(ms) * time.Millisecond), Job: "j", Task: task, From: from, To: to, Attempt: attempt}
}

// compare checks the metrics named of c against want, in the text format.
func compare(t *testing.T, c *Collector, want string, names ...string) {
	t.Helper()
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

const help = `
# HELP dag_tasks Tasks now ready, running or retrying.
# TYPE dag_tasks gauge
# HELP dag_jobs_running Jobs running.
# TYPE dag_jobs_running gauge
`

// TestObserveEvents feeds a job's events by hand, so that the gauges can be
// read between two events and the durations are exact.
func TestObserveEvents(t *testing.T) {
	t.Parallel()
	c := NewCollector(nil)
	o := observer{c: c, started: make(map[attempt]time.Time)}
	feed := func(evs ...dag.Event) {
		for _, e := range evs {
			o.observe(e)
		}
	}
	feed(
		ev(0, "", dag.Pending, dag.Running, 0),
		ev(0, "a", dag.Pending, dag.Ready, 1),
		ev(0, "c", dag.Pending, dag.Ready, 1),
		ev(0, "g", dag.Pending, dag.Running, 0),
		ev(0, "a", dag.Ready, dag.Running, 1),
	)
	compare(t, c, help+`
dag_tasks{job="j",state="ready"} 1
dag_tasks{job="j",state="running"} 2
dag_jobs_running 1
`, "dag_tasks", "dag_jobs_running")

	feed(
		ev(200, "a", dag.Running, dag.Retrying, 1),
		ev(300, "a", dag.Retrying, dag.Ready, 2),
		ev(300, "a", dag.Ready, dag.Running, 2),
		ev(400, "a", dag.Running, dag.Completed, 2),
		ev(1000, "c", dag.Ready, dag.Running, 1),
	)
	compare(t, c, help+`
dag_tasks{job="j",state="ready"} 0
dag_tasks{job="j",state="retrying"} 0
dag_tasks{job="j",state="running"} 2
dag_jobs_running 1
`, "dag_tasks", "dag_jobs_running")

	feed(
		ev(4000, "c", dag.Running, dag.Failed, 1),
		ev(4000, "b", dag.Pending, dag.UpstreamFailed, 0),
		ev(4000, "g/x", dag.Pending, dag.Skipped, 0),
		ev(4000, "g", dag.Running, dag.Skipped, 0),
		ev(4000, "", dag.Running, dag.Failed, 0),
	)
	compare(t, c, help+`
dag_tasks{job="j",state="ready"} 0
dag_tasks{job="j",state="retrying"} 0
dag_tasks{job="j",state="running"} 0
dag_jobs_running 0

# HELP dag_task_transitions_total Transitions of tasks, by the state they moved to.
# TYPE dag_task_transitions_total counter
dag_task_transitions_total{job="j",state="completed"} 1
dag_task_transitions_total{job="j",state="failed"} 1
dag_task_transitions_total{job="j",state="ready"} 3
dag_task_transitions_total{job="j",state="retrying"} 1
dag_task_transitions_total{job="j",state="running"} 4
dag_task_transitions_total{job="j",state="skipped"} 2
dag_task_transitions_total{job="j",state="upstream_failed"} 1

# HELP dag_jobs_finished_total Jobs that ended, by their final state.
# TYPE dag_jobs_finished_total counter
dag_jobs_finished_total{job="j",state="failed"} 1

# HELP dag_attempt_duration_seconds How long attempts ran, by the state they moved their task to.
# TYPE dag_attempt_duration_seconds histogram
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.005"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.01"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.025"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.05"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.1"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.25"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="1"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="2.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="10"} 1
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="+Inf"} 1
dag_attempt_duration_seconds_sum{job="j",state="completed"} 0.1
dag_attempt_duration_seconds_count{job="j",state="completed"} 1
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.005"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.01"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.025"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.05"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.25"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.5"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="2.5"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="10"} 1
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="+Inf"} 1
dag_attempt_duration_seconds_sum{job="j",state="failed"} 3
dag_attempt_duration_seconds_count{job="j",state="failed"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.005"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.01"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.025"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.05"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.25"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="1"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="2.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="10"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="+Inf"} 1
dag_attempt_duration_seconds_sum{job="j",state="retrying"} 0.2
dag_attempt_duration_seconds_count{job="j",state="retrying"} 1
`)
}

// TestObserveJob observes a real job in a synctest bubble, where time is
// fake, so that the attempts' durations are exact, and checks that every
// event reaches the next channel.
func TestObserveJob(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := NewCollector(nil)
		sleep := func(d time.Duration, err error) dag.TaskFunc {
			return func(context.Context, dag.Values) (map[string]any, error) {
				time.Sleep(d)
				return nil, err
			}
		}
		var tries int
		flaky := func(ctx context.Context, in dag.Values) (map[string]any, error) {
			tries++ // one attempt at a time
			if tries == 1 {
				return sleep(250*time.Millisecond, errors.New("flake"))(ctx, in)
			}
			return sleep(500*time.Millisecond, nil)(ctx, in)
		}
		next := make(chan dag.Event)
		var got []dag.Event
		read := make(chan struct{})
		go func() {
			defer close(read)
			for e := range next {
				got = append(got, e)
			}
		}()
		var sent []dag.Event
		tee := make(chan dag.Event)
		events := c.Observe(next)
		go func() {
			for e := range tee {
				sent = append(sent, e)
				events <- e
			}
			close(events)
		}()
		job, err := dag.Run(context.Background(), []dag.Task{
			{Name: "a", Func: sleep(125*time.Millisecond, nil)},
			{Name: "b", Func: flaky, DependsOn: []string{"a"}, MaxRetries: 1},
			{Name: "c", Func: sleep(2*time.Second, errors.New("down")), DependsOn: []string{"a"}, ContinueOnFailure: true},
			// A group runs without being Ready, and is not an attempt.
			{Name: "g", DependsOn: []string{"a"}, Sub: []dag.Task{{Name: "x", Func: sleep(125*time.Millisecond, nil)}}},
			{Name: "maybe", Func: sleep(0, nil), When: func(dag.Values) bool { return false }},
		}, dag.Options{Name: "j", MaxParallel: 4, Events: tee, Backoff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }})
		if err != nil {
			t.Fatal(err)
		}
		// At 1 s, a and g are done, b waits out its retry delay (from
		// 375 ms to 1375 ms) and c runs (from 125 ms to 2125 ms). Once
		// every goroutine of the bubble is blocked, the collector has
		// counted every event so far.
		time.Sleep(time.Second)
		synctest.Wait()
		compare(t, c, help+`
dag_tasks{job="j",state="ready"} 0
dag_tasks{job="j",state="retrying"} 1
dag_tasks{job="j",state="running"} 1
dag_jobs_running 1
`, "dag_tasks", "dag_jobs_running")

		if _, err := job.Wait(); err != nil {
			t.Fatalf("Wait() = %v; want nil", err)
		}
		c.Wait()
		<-read
		if diff := cmp.Diff(sent, got, cmpopts.EquateErrors()); diff != "" {
			t.Errorf("events on next (-sent +got):\n%s", diff)
		}
		compare(t, c, help+`
dag_tasks{job="j",state="ready"} 0
dag_tasks{job="j",state="retrying"} 0
dag_tasks{job="j",state="running"} 0
dag_jobs_running 0

# HELP dag_task_transitions_total Transitions of tasks, by the state they moved to.
# TYPE dag_task_transitions_total counter
dag_task_transitions_total{job="j",state="completed"} 4
dag_task_transitions_total{job="j",state="failed"} 1
dag_task_transitions_total{job="j",state="ready"} 5
dag_task_transitions_total{job="j",state="retrying"} 1
dag_task_transitions_total{job="j",state="running"} 6
dag_task_transitions_total{job="j",state="skipped"} 1

# HELP dag_jobs_finished_total Jobs that ended, by their final state.
# TYPE dag_jobs_finished_total counter
dag_jobs_finished_total{job="j",state="completed"} 1

# HELP dag_attempt_duration_seconds How long attempts ran, by the state they moved their task to.
# TYPE dag_attempt_duration_seconds histogram
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.005"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.01"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.025"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.05"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.25"} 2
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="0.5"} 3
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="1"} 3
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="2.5"} 3
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="5"} 3
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="10"} 3
dag_attempt_duration_seconds_bucket{job="j",state="completed",le="+Inf"} 3
dag_attempt_duration_seconds_sum{job="j",state="completed"} 0.75
dag_attempt_duration_seconds_count{job="j",state="completed"} 3
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.005"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.01"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.025"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.05"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.25"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="0.5"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="2.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="10"} 1
dag_attempt_duration_seconds_bucket{job="j",state="failed",le="+Inf"} 1
dag_attempt_duration_seconds_sum{job="j",state="failed"} 2
dag_attempt_duration_seconds_count{job="j",state="failed"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.005"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.01"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.025"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.05"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.1"} 0
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.25"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="0.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="1"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="2.5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="5"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="10"} 1
dag_attempt_duration_seconds_bucket{job="j",state="retrying",le="+Inf"} 1
dag_attempt_duration_seconds_sum{job="j",state="retrying"} 0.25
dag_attempt_duration_seconds_count{job="j",state="retrying"} 1
`)
	})
}
