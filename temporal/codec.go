package dagtemporal

import (
	"bytes"
	"cmp"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dagrun/dag"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// Encoding is the payload encoding of a job's Result, as its workflow
// returns it: the Result encoded with encoding/gob, each value of the job
// context and of each task's output encoded on its own. See
// [NewPayloadConverter].
const Encoding = "binary/x-dag-gob"

// encodeValue encodes one value of the job context with gob, keeping its
// Go type: an int stays an int. A nil value is encoded as no bytes.
func encodeValue(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeValue reverses encodeValue.
func decodeValue(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var v any
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// encodeMap encodes every value of m, in key order so that the first
// problem reported is the same on every run.
func encodeMap(what string, m map[string]any) (map[string][]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b, err := encodeValue(m[k])
		if err != nil {
			return nil, matchErr(dag.ErrNotSerializable, "dag: %s: key %q holds a %T, which encoding/gob cannot encode (%v); call gob.Register with a value of that type in the workers and the clients, or use a type gob can encode", what, k, m[k], err)
		}
		out[k] = b
	}
	return out, nil
}

// decodeMap reverses encodeMap.
func decodeMap(what string, m map[string][]byte) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v, err := decodeValue(m[k])
		if err != nil {
			return nil, matchErr(dag.ErrNotSerializable, "dag: %s: key %q cannot be decoded (%v); call gob.Register with a value of its type in the workers and the clients", what, k, err)
		}
		out[k] = v
	}
	return out, nil
}

// anys turns encoded values into a map of any.
func anys(m map[string][]byte) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// matchError is an error with its own text that matches a sentinel of dag
// or context, as the core's errors do, without repeating its text.
type matchError struct {
	msg string
	err error
}

func (e *matchError) Error() string { return e.msg }
func (e *matchError) Unwrap() error { return e.err }

func matchErr(sentinel error, format string, args ...any) error {
	return &matchError{msg: fmt.Sprintf(format, args...), err: sentinel}
}

// A RemoteError is an error that crossed Temporal: the error of a task's
// attempt, made on a worker, as the workflow and the client see it. Go
// errors cannot travel between processes, so only the text and a type name
// do; Unwrap gives back the sentinel of dag or context that the error
// matched where it was made, so that errors.Is(err, dag.ErrConflict),
// errors.Is(err, dag.ErrSkip), errors.Is(err, context.DeadlineExceeded)
// and the like still work.
type RemoteError struct {
	// Type is the sentinel's name, such as "dag.ErrConflict" or
	// "context.DeadlineExceeded", if the error matched one of dag's or
	// context's sentinels; else the error's Go type, such as
	// "*errors.errorString". It is also the type of the Temporal
	// ApplicationError the error travelled as.
	Type string
	// Message is the error's text.
	Message string
}

// Error returns the message.
func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the sentinel named by Type, or nil.
func (e *RemoteError) Unwrap() error {
	for _, s := range sentinels {
		if s.name == e.Type {
			return s.err
		}
	}
	return nil
}

// sentinels are the errors that keep their identity across Temporal, by
// name. The first one an error matches names it.
var sentinels = []struct {
	name string
	err  error
}{
	{"dag.ErrConflict", dag.ErrConflict},
	{"dag.ErrSkip", dag.ErrSkip},
	{"dag.ErrNotSerializable", dag.ErrNotSerializable},
	{"dag.ErrMissingKey", dag.ErrMissingKey},
	{"dag.ErrCycle", dag.ErrCycle},
	{"dag.ErrMissingDependency", dag.ErrMissingDependency},
	{"dag.ErrDuplicateTask", dag.ErrDuplicateTask},
	{"dag.ErrInvalidTask", dag.ErrInvalidTask},
	{"dag.ErrInvalidOptions", dag.ErrInvalidOptions},
	{"context.DeadlineExceeded", context.DeadlineExceeded},
	{"context.Canceled", context.Canceled},
}

// errorType names err for a RemoteError.
func errorType(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return fmt.Sprintf("%T", err)
}

// remote turns err into a RemoteError; nil stays nil.
func remote(err error) *RemoteError {
	if err == nil {
		return nil
	}
	var r *RemoteError
	if errors.As(err, &r) && r.Error() == err.Error() {
		return r
	}
	return &RemoteError{Type: errorType(err), Message: err.Error()}
}

// resultWire is a dag.Result as the workflow sends it: values still
// encoded one by one, and slices in a fixed order rather than maps, so that
// the workflow makes the same bytes on every replay.
type resultWire struct {
	Job     string
	State   dag.State
	Context []kv
	Tasks   []taskWire
}

type kv struct {
	Key   string
	Value []byte
}

type taskWire struct {
	Name              string
	State             dag.State
	Attempts          int
	Err               *RemoteError `json:",omitempty"`
	Started, Finished time.Time
	Output            map[string][]byte `json:",omitempty"`
}

// sortedKV lists m by key.
func sortedKV(m map[string]any) []kv {
	out := make([]kv, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b, _ := m[k].([]byte)
		out = append(out, kv{k, b})
	}
	return out
}

// encodeResult makes the payload of a job's result, in the workflow.
func encodeResult(r resultWire) (converter.RawValue, error) {
	slices.SortFunc(r.Tasks, func(a, b taskWire) int { return cmp.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(r); err != nil {
		return converter.RawValue{}, err
	}
	return converter.NewRawValue(&commonpb.Payload{
		Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding)},
		Data:     buf.Bytes(),
	}), nil
}

// decodeResult reads a payload made by encodeResult.
func decodeResult(p *commonpb.Payload) (dag.Result, error) {
	if enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc != Encoding {
		return dag.Result{}, fmt.Errorf("dag: the workflow's result has encoding %q, not %q: is the workflow a dag job?", enc, Encoding)
	}
	var w resultWire
	if err := gob.NewDecoder(bytes.NewReader(p.GetData())).Decode(&w); err != nil {
		return dag.Result{}, fmt.Errorf("dag: the workflow's result cannot be decoded: %w", err)
	}
	res := dag.Result{State: w.State, Context: make(map[string]any, len(w.Context)), Tasks: make(map[string]dag.TaskResult, len(w.Tasks))}
	var errs []error
	for _, e := range w.Context {
		v, err := decodeValue(e.Value)
		if err != nil {
			errs = append(errs, matchErr(dag.ErrNotSerializable, "dag: job %q: key %q of the job context cannot be decoded (%v); call gob.Register with a value of its type in the workers and the clients", w.Job, e.Key, err))
		}
		res.Context[e.Key] = v
	}
	for _, t := range w.Tasks {
		tr := dag.TaskResult{State: t.State, Attempts: t.Attempts, Started: t.Started, Finished: t.Finished}
		if t.Err != nil {
			tr.Err = t.Err
		}
		if t.Output != nil {
			out, err := decodeMap(fmt.Sprintf("output of task %q", t.Name), t.Output)
			if err != nil {
				errs = append(errs, err)
			}
			tr.Output = out
		}
		res.Tasks[t.Name] = tr
	}
	return res, errors.Join(errs...)
}

// NewPayloadConverter returns a converter.PayloadConverter that decodes a
// job's result into a *dag.Result, for programs that read it with the
// Temporal client directly (client.WorkflowRun.Get) rather than through
// [Job.Wait]. Put it in the client's data converter before the default
// ones:
//
//	dc := converter.NewCompositeDataConverter(
//		dagtemporal.NewPayloadConverter(),
//		converter.NewNilPayloadConverter(),
//		converter.NewByteSlicePayloadConverter(),
//		converter.NewProtoJSONPayloadConverter(),
//		converter.NewProtoPayloadConverter(),
//		converter.NewJSONPayloadConverter(),
//	)
//
// Workers need no converter: the workflow encodes its result itself. The
// converter also encodes a dag.Result, in the same form, and leaves every
// other value to the converters after it.
func NewPayloadConverter() converter.PayloadConverter { return resultConverter{} }

type resultConverter struct{}

func (resultConverter) Encoding() string { return Encoding }

func (resultConverter) ToPayload(value any) (*commonpb.Payload, error) {
	var r dag.Result
	switch v := value.(type) {
	case dag.Result:
		r = v
	case *dag.Result:
		r = *v
	default:
		return nil, nil
	}
	w := resultWire{State: r.State}
	ctx, err := encodeMap("job context", r.Context)
	if err != nil {
		return nil, err
	}
	w.Context = sortedKV(anys(ctx))
	for _, name := range slices.Sorted(maps.Keys(r.Tasks)) {
		t := r.Tasks[name]
		out, err := encodeMap(fmt.Sprintf("output of task %q", name), t.Output)
		if err != nil {
			return nil, err
		}
		w.Tasks = append(w.Tasks, taskWire{Name: name, State: t.State, Attempts: t.Attempts, Err: remote(t.Err), Started: t.Started, Finished: t.Finished, Output: out})
	}
	raw, err := encodeResult(w)
	if err != nil {
		return nil, err
	}
	return raw.Payload(), nil
}

func (resultConverter) FromPayload(p *commonpb.Payload, valuePtr any) error {
	r, ok := valuePtr.(*dag.Result)
	if !ok {
		return matchErr(dag.ErrInvalidOptions, "dag: a payload of encoding %q decodes into a *dag.Result, not a %T", Encoding, valuePtr)
	}
	res, err := decodeResult(p)
	*r = res
	return err
}

func (resultConverter) ToString(p *commonpb.Payload) string {
	r, err := decodeResult(p)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%v %v", r.State, r.Context)
}
