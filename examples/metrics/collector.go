package main

import (
	"sync"
	"time"

	"github.com/dagrun/dag"
	"github.com/prometheus/client_golang/prometheus"
)

// A Collector turns the events of dag jobs into Prometheus metrics:
//
//   - dag_task_transitions_total{job, state}: a counter of the transitions of
//     tasks, by the state they moved to;
//   - dag_tasks{job, state}: a gauge of the tasks now ready, running or
//     retrying (a group counts as running while its tasks run);
//   - dag_attempt_duration_seconds{job, state}: a histogram of how long
//     attempts ran, from their Running event to the event that ended them,
//     by the state that event moved the task to (completed, failed,
//     retrying, skipped or canceled);
//   - dag_jobs_running: a gauge of the jobs running;
//   - dag_jobs_finished_total{job, state}: a counter of the jobs that ended,
//     by their final state.
//
// The job label is [dag.Options.Name]. Tasks are not a label: a job of
// thousands of tasks would make thousands of series.
//
// A Collector is a [prometheus.Collector] and may observe any number of
// jobs at once. Its methods are safe for concurrent use, with the limit
// that Wait states.
type Collector struct {
	transitions *prometheus.CounterVec
	tasks       *prometheus.GaugeVec
	attempts    *prometheus.HistogramVec
	jobsRunning prometheus.Gauge
	jobsEnded   *prometheus.CounterVec

	wg sync.WaitGroup // one per job observed
}

// NewCollector returns a Collector, registered with reg unless reg is nil.
func NewCollector(reg prometheus.Registerer) *Collector {
	c := &Collector{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dag_task_transitions_total",
			Help: "Transitions of tasks, by the state they moved to.",
		}, []string{"job", "state"}),
		tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dag_tasks",
			Help: "Tasks now ready, running or retrying.",
		}, []string{"job", "state"}),
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dag_attempt_duration_seconds",
			Help:    "How long attempts ran, by the state they moved their task to.",
			Buckets: prometheus.DefBuckets,
		}, []string{"job", "state"}),
		jobsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dag_jobs_running",
			Help: "Jobs running.",
		}),
		jobsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dag_jobs_finished_total",
			Help: "Jobs that ended, by their final state.",
		}, []string{"job", "state"}),
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// Describe sends the descriptions of the Collector's metrics to ch.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.transitions.Describe(ch)
	c.tasks.Describe(ch)
	c.attempts.Describe(ch)
	c.jobsRunning.Describe(ch)
	c.jobsEnded.Describe(ch)
}

// Collect sends the Collector's metrics to ch.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.transitions.Collect(ch)
	c.tasks.Collect(ch)
	c.attempts.Collect(ch)
	c.jobsRunning.Collect(ch)
	c.jobsEnded.Collect(ch)
}

// Observe returns a channel for the [dag.Options.Events] of one job. Each
// event it receives updates the metrics and is then sent on next, if next is
// not nil; next is closed when the job closes the returned channel. A slow
// reader of next delays the metrics, never the job, since dag buffers the
// events.
//
// One goroutine per job reads the channel; it ends when the job has closed
// it and next, if any, has received every event. Wait waits for it.
func (c *Collector) Observe(next chan<- dag.Event) chan<- dag.Event {
	ch := make(chan dag.Event)
	c.wg.Go(func() {
		o := observer{c: c, started: make(map[attempt]time.Time)}
		for e := range ch {
			o.observe(e)
			if next != nil {
				next <- e
			}
		}
		if next != nil {
			close(next)
		}
	})
	return ch
}

// Wait blocks until every job observed so far has closed its channel and
// its events are counted: after Job.Wait, call Wait before reading metrics
// that must include the job's last events. Like [sync.WaitGroup.Wait], it
// must not run while Observe is being called for a first job, or a next
// one after the others ended: call it when no job is being started, such
// as at shutdown.
func (c *Collector) Wait() { c.wg.Wait() }

type attempt struct {
	task string
	n    int
}

// observer is the state of one observed job, owned by its goroutine.
type observer struct {
	c       *Collector
	started map[attempt]time.Time // when each running attempt started
}

// counted are the states whose tasks dag_tasks counts.
var counted = [...]dag.State{dag.Ready, dag.Running, dag.Retrying}

func (o *observer) observe(e dag.Event) {
	c := o.c
	if e.Task == "" {
		switch {
		case e.To == dag.Running:
			c.jobsRunning.Inc()
		case e.To.Final():
			if e.From == dag.Running {
				c.jobsRunning.Dec()
			}
			c.jobsEnded.WithLabelValues(e.Job, e.To.String()).Inc()
		}
		return
	}
	c.transitions.WithLabelValues(e.Job, e.To.String()).Inc()
	for _, s := range counted {
		if e.From == s {
			c.tasks.WithLabelValues(e.Job, s.String()).Dec()
		}
		if e.To == s {
			c.tasks.WithLabelValues(e.Job, s.String()).Inc()
		}
	}
	// An attempt is what runs on a worker: Ready -> Running. A group's
	// Pending -> Running is not one.
	k := attempt{e.Task, e.Attempt}
	if e.From == dag.Ready && e.To == dag.Running {
		o.started[k] = e.Time
	}
	if e.From == dag.Running {
		if t, ok := o.started[k]; ok {
			delete(o.started, k)
			c.attempts.WithLabelValues(e.Job, e.To.String()).Observe(e.Time.Sub(t).Seconds())
		}
	}
}
