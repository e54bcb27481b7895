package dagtest

import (
	"context"
	"maps"
	"sync/atomic"

	"github.com/cenkalti/backoff/v4"
	"github.com/dagrun/dag"
)

// Return returns a Func that returns a copy of out on every call.
func Return(out map[string]any) dag.TaskFunc {
	out = maps.Clone(out)
	return func(context.Context, dag.Values) (map[string]any, error) {
		return maps.Clone(out), nil
	}
}

// NoDelay is a retry policy for [dag.Options].Backoff or [dag.Task].Backoff
// that retries at once, so that a test of retries waits for nothing.
func NoDelay() backoff.BackOff { return &backoff.ZeroBackOff{} }

// Fail returns a Func that fails every call with err.
func Fail(err error) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) {
		return nil, err
	}
}

// FailTimes returns a Func that fails its first n calls with err and
// returns a copy of out on every later call: a flaky task that succeeds
// on attempt n+1. The count belongs to the returned Func, which is safe
// for concurrent use: give each task its own.
func FailTimes(n int, err error, out map[string]any) dag.TaskFunc {
	out = maps.Clone(out)
	var calls atomic.Int64
	return func(context.Context, dag.Values) (map[string]any, error) {
		if calls.Add(1) <= int64(n) {
			return nil, err
		}
		return maps.Clone(out), nil
	}
}

// Panic returns a Func that panics with v. The job recovers the panic
// into a *dag.PanicError that fails the attempt.
func Panic(v any) dag.TaskFunc {
	return func(context.Context, dag.Values) (map[string]any, error) {
		panic(v)
	}
}

// Block is a Func that blocks until its context ends, then fails with the
// context's cause: an attempt that runs into its Timeout, or a task still
// running when the job stops. It waits on nothing else, so inside a
// testing/synctest bubble the timeout comes at once.
func Block(ctx context.Context, _ dag.Values) (map[string]any, error) {
	<-ctx.Done()
	return nil, context.Cause(ctx)
}
