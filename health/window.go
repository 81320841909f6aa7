package health

import (
	"sync/atomic"
	"time"
)

// windowBuckets is the resolution of a Window: its span is cut into this
// many buckets, and the oldest bucket is dropped as a whole.
const windowBuckets = 10

// Window counts events and failures over a sliding span of time, in
// atomics: Add takes no lock and does not allocate. Counts are approximate
// at bucket edges (a racing Add may land in a bucket just being reset),
// which is fine for ratios over tens of requests.
//
// It is safe calling Window methods from concurrently running goroutines.
type Window struct {
	width   int64 // bucket width in nanoseconds
	buckets [windowBuckets]bucket
}

type bucket struct {
	epoch  atomic.Int64 // which bucket-width interval it counts
	total  atomic.Int64
	failed atomic.Int64
}

// NewWindow returns a window over span.
func NewWindow(span time.Duration) *Window {
	w := int64(span) / windowBuckets
	if w <= 0 {
		w = 1
	}
	return &Window{width: w}
}

// Add counts one event at now, failed or not.
func (w *Window) Add(now time.Time, failed bool) {
	epoch := now.UnixNano() / w.width
	b := &w.buckets[epoch%windowBuckets]
	if old := b.epoch.Load(); old != epoch && b.epoch.CompareAndSwap(old, epoch) {
		b.total.Store(0)
		b.failed.Store(0)
	}
	b.total.Add(1)
	if failed {
		b.failed.Add(1)
	}
}

// Counts returns the events and failures counted in the span before now.
func (w *Window) Counts(now time.Time) (total, failed int64) {
	epoch := now.UnixNano() / w.width
	for i := range w.buckets {
		b := &w.buckets[i]
		if e := b.epoch.Load(); e > epoch-windowBuckets && e <= epoch {
			total += b.total.Load()
			failed += b.failed.Load()
		}
	}
	return total, failed
}

// Reset forgets every count.
func (w *Window) Reset() {
	for i := range w.buckets {
		w.buckets[i].epoch.Store(0)
		w.buckets[i].total.Store(0)
		w.buckets[i].failed.Store(0)
	}
}
