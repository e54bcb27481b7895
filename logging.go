package dag

import (
	"context"
	"log/slog"
	"reflect"
	"runtime"
	"sync"
	"weak"
)

// newEventSink returns the queue the job pushes its events to, nil if it
// has neither Options.Events nor Options.Logger, and a channel closed once
// the logger has written every record and the job has ended (done is
// closed), nil without a logger.
//
// With a logger, the job's queue feeds one goroutine that logs each event
// and then hands it to a second queue for Options.Events, if set: the log
// never waits for the Events reader, so Wait, which waits for the log,
// does not wait for the reader either.
func newEventSink(events chan<- Event, logger *slog.Logger, done <-chan struct{}) (*eventQueue, chan struct{}) {
	if logger == nil {
		if events == nil {
			return nil, nil
		}
		return newEventQueue(events), nil
	}
	var user *eventQueue
	if events != nil {
		user = newEventQueue(events)
	}
	in := make(chan Event, 128)
	logged := make(chan struct{})
	// This goroutine ends with the job: the job's queue closes in after the
	// final event, and done is closed right after.
	go func() {
		for e := range in {
			LogEvent(logger, e)
			if user != nil {
				user.push(e)
			}
		}
		if user != nil {
			user.close()
		}
		<-done
		close(logged)
	}()
	return newEventQueue(in), logged
}

// LogEvents returns a channel for [Options.Events] that logs every event it
// receives on logger, until the job closes it. A nil logger means
// [slog.Default]. Records are as [LogEvent] makes them.
//
// One goroutine does the logging; it ends when the channel is closed, which
// Run does after the job's final event. [Job.Wait] does not wait for it, so
// a program that exits as soon as Wait returns may lose the last records:
// prefer [Options.Logger], whose records are all written before Wait
// returns.
//
// The channel serves one job: Run returns an error matching
// [ErrInvalidOptions], and leaves the channel alone, when it is given a
// channel from LogEvents that another job used, since that job closes it
// when it ends and the events of the second would be lost.
func LogEvents(logger *slog.Logger) chan<- Event {
	ch := make(chan Event, 64)
	logChans.add(ch)
	go func() {
		for e := range ch {
			LogEvent(logger, e)
		}
	}()
	return ch
}

// LogEvent logs e on logger (nil means [slog.Default]), as [Options.Logger]
// and [LogEvents] do. Transitions to Failed log at error level, to Retrying
// and Canceled at warning level, to Completed and the job's own transitions
// at info level, and the rest at debug level. The message is "dag: job" or
// "dag: task", and the attributes are job, task (absent for job events),
// from, to, attempt (absent when 0) and err (absent when nil). The record's
// time is the event's.
func LogEvent(logger *slog.Logger, e Event) {
	if logger == nil {
		logger = slog.Default()
	}
	level := slog.LevelDebug
	switch {
	case e.To == Failed:
		level = slog.LevelError
	case e.To == Retrying || e.To == Canceled:
		level = slog.LevelWarn
	case e.To == Completed || e.Task == "":
		level = slog.LevelInfo
	}
	ctx := context.Background()
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("job", e.Job))
	msg := "dag: job"
	if e.Task != "" {
		msg = "dag: task"
		attrs = append(attrs, slog.String("task", e.Task))
	}
	attrs = append(attrs, slog.String("from", e.From.String()), slog.String("to", e.To.String()))
	if e.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", e.Attempt))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.Any("err", e.Err))
	}
	r := slog.NewRecord(e.Time, level, msg, 0)
	r.AddAttrs(attrs...)
	_ = logger.Handler().Handle(ctx, r)
}

// logChans remembers the channels LogEvents made, to refuse one that a job
// already used. A job closes its Events channel when it ends, and sends
// to a closed channel are recovered and dropped (see Options.Events), so a
// second job would log nothing and say nothing.
//
// The channels are keyed by weak pointers rather than held, so that
// remembering one does not keep it alive, and a cleanup forgets it once it
// is garbage. A weak pointer names an object, not an address: a channel
// made later at the same address (by LogEvents or not) is another key, even
// before the cleanup has run.
var logChans = logChanSet{m: make(map[weak.Pointer[byte]]logChan)}

type logChanSet struct {
	mu sync.Mutex
	m  map[weak.Pointer[byte]]logChan // guarded by mu
}

type logChan struct {
	used bool
	job  string // the job that used it
}

// chanKey returns the weak pointer that names channel ch.
func chanKey(ch any) weak.Pointer[byte] {
	return weak.Make((*byte)(reflect.ValueOf(ch).UnsafePointer()))
}

func (s *logChanSet) add(ch chan Event) {
	k := chanKey(ch)
	s.mu.Lock()
	s.m[k] = logChan{}
	s.mu.Unlock()
	runtime.AddCleanup((*byte)(reflect.ValueOf(ch).UnsafePointer()), s.forget, k)
}

func (s *logChanSet) forget(k weak.Pointer[byte]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
}

// claim marks ch, if LogEvents made it, as used by job, and reports the
// job that used it already if one did. Channels that LogEvents did not
// make are not checked.
func (s *logChanSet) claim(ch chan<- Event, job string) (usedBy string, reused bool) {
	k := chanKey(ch)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[k]
	if !ok {
		return "", false
	}
	if c.used {
		return c.job, true
	}
	c.used, c.job = true, job
	s.m[k] = c
	return "", false
}
