package dag

import (
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The write path of a FileStore: how the Saves of one job share writes
// and fsyncs of the job's log (group commit).

// A jobLog is the log file of one job, and the Saves waiting to be written
// to it.
//
// Group commit: a Save adds its entry to cur, the open batch, and waits
// until its batch is written. Whoever finds the file free (writing false)
// and its batch not written becomes the leader: it takes cur, puts a new
// empty batch in its place, sets writing, and writes and fsyncs the batch
// without holding mu, while later Saves fill the new cur. When it is done
// it marks the batch done, clears writing and wakes every waiter. So one
// fsync serves every Save that arrived while the previous one ran.
//
// Why no Save waits for ever: a batch leaves cur only in the hands of a
// leader, under mu, together with setting writing; and a leader marks it
// done, under mu, together with clearing writing. So a Save that sees
// writing false and its batch not done knows that its batch is still cur,
// and leads it. A Save that sees writing true waits on cond, and the
// leader (or Clear) broadcasts when it clears writing, so every waiter
// looks again, and the one whose batch is not done leads.
type jobLog struct {
	path string
	hook func(string, int) // FileStore.hook
	refs int               // guarded by FileStore.mu

	mu      sync.Mutex
	cond    sync.Cond // signalled when writing goes false; L is &mu
	cur     *batch    // the batch that arriving Saves join; never being written
	writing bool      // a leader or Clear owns the file
	// end is the size of the file once its last good record was written,
	// where the next record goes; -1 if unknown, to be read from the file.
	// Only the owner of the file (writing) changes it.
	end int64
}

// A batch is a run of Saves written with one write and one fsync: as one
// record, or several if it is larger than maxFrame.
type batch struct {
	buf     []byte // frames: header (filled in by seal), then entries
	frames  []int  // offset in buf of each frame
	entries int
	done    bool
	err     error
}

func (b *batch) add(entry []byte) {
	if n := len(b.frames); n == 0 || len(b.buf)-b.frames[n-1]-frameHeader+len(entry) > maxFrame {
		b.frames = append(b.frames, len(b.buf))
		b.buf = append(b.buf, make([]byte, frameHeader)...)
	}
	b.buf = append(b.buf, entry...)
	b.entries++
}

// seal fills in the frame headers and returns the bytes to write.
func (b *batch) seal() []byte {
	for i, off := range b.frames {
		end := len(b.buf)
		if i+1 < len(b.frames) {
			end = b.frames[i+1]
		}
		putFrameHeader(b.buf[off:end])
	}
	return b.buf
}

// commit writes entry to the log, with other Saves' entries if group is
// true, and returns once it is on disk.
func (l *jobLog) commit(entry []byte, group bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !group {
		for l.writing {
			l.cond.Wait()
		}
		b := new(batch)
		b.add(entry)
		l.lead(b)
		return b.err
	}
	b := l.cur
	b.add(entry)
	if l.hook != nil {
		l.hook("queued", b.entries)
	}
	for !b.done {
		if l.writing {
			l.cond.Wait()
			continue
		}
		l.cur = new(batch) // b is cur: see jobLog
		l.lead(b)
	}
	return b.err
}

// lead writes b as the file's owner. It is called, and returns, with l.mu
// held, and releases it while it writes.
func (l *jobLog) lead(b *batch) {
	l.writing = true
	end := l.end
	l.mu.Unlock()
	if l.hook != nil {
		l.hook("write", b.entries)
	}
	end, err := l.write(end, b.seal())
	l.mu.Lock()
	l.end = end
	b.done, b.err = true, err
	l.writing = false
	l.cond.Broadcast()
}

// write appends buf to the log whose good records end at end (-1 if not
// known), syncs it, and returns the new end, or -1 and an error.
//
// The file is opened for each write rather than kept open: an fsync costs
// far more than an open, and so no file stays open between Saves, and a
// log that was cleared or replaced meanwhile is seen as such.
func (l *jobLog) write(end int64, buf []byte) (int64, error) {
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return -1, err
	}
	if size := fi.Size(); end < 0 || size != end {
		// First write here, or the file changed under us (a crash left a
		// torn record, or a failed write a partial one): find where its
		// good records end, and cut off what follows, so that the new
		// record does not land after a torn one.
		if end, err = cutTornTail(f, l.path, size); err != nil {
			return -1, err
		}
	}
	if end == 0 {
		buf = append([]byte(logMagic), buf...)
	}
	if _, err := f.Write(buf); err != nil {
		return -1, err
	}
	if err := f.Sync(); err != nil {
		return -1, err
	}
	if end == 0 {
		// A new file: its directory entry must be on disk too.
		if err := syncDir(filepath.Dir(l.path)); err != nil {
			return -1, err
		}
	}
	return end + int64(len(buf)), nil
}

// cutTornTail reads the log in f, of size bytes, truncates it after its
// last good record and returns that offset. A damaged record that is not
// the last one is an error matching ErrCorruptCheckpoint.
func cutTornTail(f *os.File, path string, size int64) (int64, error) {
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if err != nil && err != io.EOF {
		return -1, err
	}
	end, err := scanLog(path, data[:n], nil)
	if err != nil {
		return -1, err
	}
	if int64(end) < size {
		if err := f.Truncate(int64(end)); err != nil {
			return -1, err
		}
	}
	return int64(end), nil
}
