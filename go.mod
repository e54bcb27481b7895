module github.com/dagrun/dag

go 1.25.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	go.uber.org/goleak v1.3.0
)

require github.com/google/go-cmp v0.7.0

require gonum.org/v1/gonum v0.17.0
