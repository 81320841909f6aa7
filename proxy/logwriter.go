package proxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// AsyncWriter is a non-blocking io.Writer for logs: Write appends to an
// in-memory buffer and returns; a background goroutine writes full buffers,
// and whatever is buffered every flush interval, to the destination. When
// the destination is slower than the log rate and both buffers are full,
// lines are dropped, never delayed: Dropped counts them.
//
// Each Write must be a whole log line (the access log and zerolog write one
// line per call).
// It is safe calling AsyncWriter methods from concurrently running
// goroutines.
type AsyncWriter struct {
	dst  io.Writer
	kick chan struct{}
	done chan struct{}

	mu      sync.Mutex // protects cur, pending, spare, closed
	cur     []byte     // being filled by Write
	pending []byte     // handed to the flusher; nil when none
	spare   []byte     // free buffer; nil while the flusher holds it
	closed  bool

	dropped atomic.Int64
	err     error // last destination error; written only by the flusher
}

// AsyncWriter defaults.
const (
	DefaultLogBufferSize    = 256 << 10
	DefaultLogFlushInterval = 100 * time.Millisecond
)

// NewAsyncWriter starts a writer to dst with two buffers of size bytes
// [DefaultLogBufferSize], flushed at least every interval
// [DefaultLogFlushInterval]. Close flushes and stops it.
func NewAsyncWriter(dst io.Writer, size int, interval time.Duration) *AsyncWriter {
	if size <= 0 {
		size = DefaultLogBufferSize
	}
	if interval <= 0 {
		interval = DefaultLogFlushInterval
	}
	w := &AsyncWriter{
		dst:   dst,
		cur:   make([]byte, 0, size),
		spare: make([]byte, 0, size),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go w.loop(interval)
	return w
}

// Write buffers p. It never waits for the destination.
func (w *AsyncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, io.ErrClosedPipe
	}
	if len(w.cur)+len(p) > cap(w.cur) && !w.swapLocked() {
		w.dropped.Add(1)
		return len(p), nil
	}
	if len(w.cur)+len(p) > cap(w.cur) { // larger than a whole buffer
		w.dropped.Add(1)
		return len(p), nil
	}
	w.cur = append(w.cur, p...)
	return len(p), nil
}

// swapLocked hands cur to the flusher and starts filling the spare buffer;
// false when the flusher still holds it.
func (w *AsyncWriter) swapLocked() bool {
	if w.spare == nil {
		return false
	}
	if len(w.cur) > 0 {
		w.pending, w.cur, w.spare = w.cur, w.spare, nil
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return true
}

func (w *AsyncWriter) loop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.kick:
		case <-t.C:
			w.mu.Lock()
			w.swapLocked()
			w.mu.Unlock()
		}
		w.flushPending()
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if closed {
			w.flushPending()
			w.mu.Lock()
			w.swapLocked()
			w.mu.Unlock()
			w.flushPending()
			return
		}
	}
}

// flushPending writes the pending buffer, if any, outside the lock.
func (w *AsyncWriter) flushPending() {
	w.mu.Lock()
	p := w.pending
	w.pending = nil
	w.mu.Unlock()
	if p == nil {
		return
	}
	if _, err := w.dst.Write(p); err != nil {
		w.err = err
	}
	w.mu.Lock()
	w.spare = p[:0]
	w.mu.Unlock()
}

// Dropped is the number of lines dropped so far because the destination
// could not keep up.
func (w *AsyncWriter) Dropped() int64 { return w.dropped.Load() }

// Close flushes what is buffered, stops the flusher and returns the
// destination's last write error, if any. Writes after Close fail. It
// waits for the destination as long as it takes: see CloseTimeout.
func (w *AsyncWriter) Close() error {
	if !w.stop() {
		return nil
	}
	<-w.done
	return w.err
}

// ErrLogStuck is returned by CloseTimeout when the destination did not take
// the buffered lines in time.
var ErrLogStuck = errors.New("proxy: log destination did not take the last lines in time")

// CloseTimeout is Close waiting at most d for the destination: a process
// whose stdout reader has stopped must still exit. On ErrLogStuck the
// lines not yet written are lost, and the flusher stays blocked in the
// destination's Write.
func (w *AsyncWriter) CloseTimeout(d time.Duration) error {
	if !w.stop() {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return w.err
	case <-t.C:
		return ErrLogStuck
	}
}

// stop marks w closed and wakes the flusher for its last flush; it
// reports false when w was already closed.
func (w *AsyncWriter) stop() bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return true
}
