package dag

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// The log file of one job in a FileStore is logMagic followed by frames,
// back to back. A frame holds the Saves that one write and one fsync made
// durable together (see jobLog.commit):
//
//	length  uint32, little-endian: the length of the payload
//	sum     uint32: CRC-32C (Castagnoli) of the payload
//	hsum    uint32: CRC-32C of length and sum
//	payload entries, back to back, one per Save (see appendEntry)
//
// The header has its own checksum so that a damaged length is never
// trusted: with it, a reader can tell a frame cut short by a crash (a
// good header whose payload runs past the end of the file) from a damaged
// frame that other frames follow.
//
// A crash can only damage the last frame, because a frame is written only
// after the frame before it was fsynced (or, in a new process, read back
// whole: see jobLog.prepare, which cuts off a torn tail before appending).
// So a damaged frame followed by a good one is corruption, and a damaged
// frame with nothing good after it is the torn tail of a write that never
// returned, and is ignored.
const (
	logMagic    = "dag checkpoint log v1\n"
	frameHeader = 12
	// maxFrame bounds a frame's payload. A larger batch of Saves is split
	// into several frames of one write; a larger single Save fails.
	maxFrame = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putFrameHeader fills the header of the frame in b, whose payload follows
// the header.
func putFrameHeader(b []byte) {
	payload := b[frameHeader:]
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(b[8:12], crc32.Checksum(b[0:8], castagnoli))
}

// frameAt reads the frame at data[off:]. It returns its payload and its
// size if it is whole and good. Otherwise it says why not, and whether the
// header is good (so that the frame's length can be trusted).
func frameAt(data []byte, off int) (payload []byte, size int, headerOK bool, why string) {
	rest := data[off:]
	if len(rest) < frameHeader {
		return nil, 0, false, "frame header cut short"
	}
	if crc32.Checksum(rest[0:8], castagnoli) != binary.LittleEndian.Uint32(rest[8:12]) {
		return nil, 0, false, "bad frame header checksum"
	}
	n := binary.LittleEndian.Uint32(rest[0:4])
	if n > maxFrame {
		return nil, 0, false, "frame length out of range"
	}
	size = frameHeader + int(n)
	if len(rest) < size {
		return nil, size, true, "frame cut short"
	}
	payload = rest[frameHeader:size]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rest[4:8]) {
		return nil, size, true, "bad frame checksum"
	}
	return payload, size, true, ""
}

// scanLog walks the frames of a log read from path, calling fn with the
// offset and payload of each good frame in order. It returns the end of the
// last good frame: where a torn tail, if any, starts, and where the next
// frame goes (0 for a log whose magic was cut short: it starts afresh).
// Damage that is not a torn tail is an error matching ErrCorruptCheckpoint,
// and so is an error from fn.
func scanLog(path string, data []byte, fn func(off int, payload []byte) error) (int, error) {
	if len(data) < len(logMagic) {
		if bytes.HasPrefix([]byte(logMagic), data) {
			return 0, nil // the crash came while the file was being created
		}
		return 0, corruptError(path, 0, "not a checkpoint log")
	}
	if !bytes.HasPrefix(data, []byte(logMagic)) {
		return 0, corruptError(path, 0, "not a checkpoint log")
	}
	off := len(logMagic)
	for off < len(data) {
		payload, size, headerOK, why := frameAt(data, off)
		if why == "" {
			if fn != nil {
				if err := fn(off, payload); err != nil {
					return off, err
				}
			}
			off += size
			continue
		}
		// A damaged frame. With a good header we know where it ends: bytes
		// after it mean it is not the last. Without one, any good frame
		// further on means the same.
		if headerOK {
			if off+size < len(data) {
				return off, corruptError(path, off, why)
			}
		} else if goodFrameAfter(data, off+1) {
			return off, corruptError(path, off, why)
		}
		return off, nil
	}
	return off, nil
}

// goodFrameAfter reports whether a whole, good frame starts anywhere in
// data at or after from.
func goodFrameAfter(data []byte, from int) bool {
	for p := from; p+frameHeader <= len(data); p++ {
		if _, _, _, why := frameAt(data, p); why == "" {
			return true
		}
	}
	return false
}

func corruptError(path string, off int, why string) error {
	return &wrapError{
		msg: fmt.Sprintf("dag: checkpoint file %s is corrupt at offset %d (%s) and cannot be trusted: "+
			"move it away (to keep it) or Clear the job, and the job runs from the start", path, off, why),
		err: ErrCorruptCheckpoint,
	}
}

// An entry is one Save:
//
//	task      uvarint length, bytes
//	state     byte
//	flags     byte: entryRestored | entryErr | entryOutput
//	attempts  uvarint
//	abandoned uvarint
//	started   uvarint length, time.MarshalBinary
//	finished  uvarint length, time.MarshalBinary
//	err       uvarint length, message (if entryErr)
//	output    uvarint count, then per key in sorted order: uvarint length,
//	          key, uvarint length, the value encoded by encodeValue
//	          (if entryOutput: Output is not nil)
const (
	entryRestored = 1 << iota
	entryErr
	entryOutput
)

// appendEntry appends the entry of a Save of task to b. It fails, leaving b
// as it was, if a value of r.Output cannot be encoded.
func appendEntry(b []byte, task string, r TaskResult) ([]byte, error) {
	start := len(b)
	b = appendString(b, task)
	var flags byte
	if r.Restored {
		flags |= entryRestored
	}
	if r.Err != nil {
		flags |= entryErr
	}
	if r.Output != nil {
		flags |= entryOutput
	}
	b = append(b, byte(r.State), flags)
	b = binary.AppendUvarint(b, uint64(max(r.Attempts, 0)))
	b = binary.AppendUvarint(b, uint64(max(r.Abandoned, 0)))
	for _, t := range []time.Time{r.Started, r.Finished} {
		tb, err := t.MarshalBinary()
		if err != nil { // a year outside what time can encode
			return b[:start], fmt.Errorf("dag: task %s: cannot save its time %v in a checkpoint: %w", quote(task), t, err)
		}
		b = appendString(b, string(tb))
	}
	if r.Err != nil {
		b = appendString(b, r.Err.Error())
	}
	if r.Output != nil {
		b = binary.AppendUvarint(b, uint64(len(r.Output)))
		keys := make([]string, 0, len(r.Output))
		for k := range r.Output {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := encodeValue(r.Output[k])
			if err != nil {
				return b[:start], &valueError{task: task, key: k, typ: fmt.Sprintf("%T", r.Output[k]), err: err}
			}
			b = appendString(b, k)
			b = appendString(b, string(v))
		}
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeValue encodes v alone with its own gob encoder, through an
// interface, so that gob records the concrete type and decodeValue gives
// back a value of the same type.
func encodeValue(v any) (b []byte, err error) {
	defer func() {
		// A GobEncode or MarshalBinary method of the value may panic; that
		// must fail the Save, not the program.
		if p := recover(); p != nil {
			err = fmt.Errorf("panic while encoding: %v", p)
		}
	}()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeValue(b []byte) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic while decoding: %v", p)
		}
	}()
	err = gob.NewDecoder(bytes.NewReader(b)).Decode(&v)
	return v, err
}

// checkSerializable reports whether a FileStore can save v as the value of
// key: nil, or the error Save would return. task is the task whose output
// holds it, or "" for a key of Options.Context.
func checkSerializable(task, key string, v any) error {
	if _, err := encodeValue(v); err != nil {
		return &valueError{task: task, key: key, typ: fmt.Sprintf("%T", v), err: err}
	}
	return nil
}

// A valueError reports a value that a FileStore cannot encode, or, when
// job is set, decode. It matches ErrNotSerializable and the encoder's error.
type valueError struct {
	job, task, key, typ string
	err                 error
}

func (e *valueError) Error() string {
	if e.job != "" {
		return fmt.Sprintf("dag: checkpoint of job %s: output %s of task %s cannot be decoded: %v; "+
			"gob.Register its type before Load or Run (see FileStore)", quote(e.job), quote(e.key), quote(e.task), e.err)
	}
	where := fmt.Sprintf("output %s of task %s", quote(e.key), quote(e.task))
	if e.task == "" {
		where = fmt.Sprintf("Options.Context key %s", quote(e.key))
	}
	return fmt.Sprintf("dag: %s, of type %s, cannot be saved in a checkpoint: %v; "+
		"use a type that encoding/gob can encode, and gob.Register it unless it is a basic type (see FileStore)",
		where, e.typ, e.err)
}

func (e *valueError) Unwrap() []error { return []error{ErrNotSerializable, e.err} }

// entryReader reads the entries of a frame. A malformed entry sets bad.
type entryReader struct {
	b   []byte
	bad bool
}

func (r *entryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *entryReader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *entryReader) int() int {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.bad = true
	}
	return int(v)
}

func (r *entryReader) time() time.Time {
	var t time.Time
	if err := t.UnmarshalBinary(r.bytes()); err != nil {
		r.bad = true
	}
	return t
}

// errMalformed is the reason given for an entry that a good frame holds but
// that cannot be read: a bug, or a log written by another version.
var errMalformed = errors.New("malformed entry")

// readEntries decodes the entries of one frame payload into tasks, a later
// entry of a task replacing an earlier one. It returns errMalformed for an
// entry it cannot read, or a *valueError for a value gob cannot decode.
func readEntries(job string, payload []byte, tasks map[string]TaskResult) error {
	r := entryReader{b: payload}
	for len(r.b) > 0 && !r.bad {
		task := string(r.bytes())
		var tr TaskResult
		tr.State = State(r.byte())
		flags := r.byte()
		tr.Restored = flags&entryRestored != 0
		tr.Attempts = r.int()
		tr.Abandoned = r.int()
		tr.Started = r.time()
		tr.Finished = r.time()
		if flags&entryErr != 0 {
			tr.Err = errors.New(string(r.bytes()))
		}
		if flags&entryOutput != 0 {
			n := r.uvarint()
			if n > uint64(len(r.b)) { // each key takes two bytes at least
				return errMalformed
			}
			tr.Output = make(map[string]any, n)
			for range n {
				key := string(r.bytes())
				b := r.bytes()
				if r.bad {
					break
				}
				v, err := decodeValue(b)
				if err != nil {
					return &valueError{job: job, task: task, key: key, err: err}
				}
				tr.Output[key] = v
			}
		}
		if r.bad {
			return errMalformed
		}
		tasks[task] = tr
	}
	if r.bad {
		return errMalformed
	}
	return nil
}
