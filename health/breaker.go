package health

import (
	"sync/atomic"
	"time"
)

// State is a circuit breaker's state. Its values are those of the
// fastgate_breaker_state metric.
type State int32

// Breaker states.
const (
	Closed   State = 0 // requests flow; failures are counted
	Open     State = 1 // ejected until the open period ends
	HalfOpen State = 2 // a few probe requests decide: close or open again
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// BreakerConfig is the breaker part of a service's config; see
// config.Breaker for the defaults.
type BreakerConfig struct {
	ConsecutiveFailures int           // trips the breaker
	ErrorRatio          float64       // or this share of failures (0 = off)...
	MinRequests         int           // ...over at least this many requests in Window
	Window              time.Duration //
	OpenFor             time.Duration // ejection of the first trip; doubles per consecutive trip
	MaxOpenFor          time.Duration // cap of the doubling
	HalfOpenRequests    int           // probes admitted while half-open
}

// Ejector bounds how many breakers of one service may be open (or
// half-open) at once: never more than max_ejected_percent of the service.
// When a breaker would trip beyond that, it stays closed and the service
// keeps routing to its least-bad instances (panic mode).
//
// It is safe calling Ejector methods from concurrently running goroutines.
type Ejector struct {
	max     int32
	ejected atomic.Int32
}

// NewEjector allows floor(instances*percent/100) ejections at once.
func NewEjector(instances, percent int) *Ejector {
	return &Ejector{max: int32(instances * percent / 100)}
}

func (e *Ejector) acquire() bool {
	for {
		n := e.ejected.Load()
		if n >= e.max {
			return false
		}
		if e.ejected.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (e *Ejector) release() { e.ejected.Add(-1) }

// Ejected is the number of breakers open or half-open now.
func (e *Ejector) Ejected() int { return int(e.ejected.Load()) }

// Breaker is one instance's circuit breaker: closed -> open after
// ConsecutiveFailures failures in a row (or ErrorRatio over the window);
// open -> half-open once the open period has passed (the period doubles
// with each consecutive trip, capped at MaxOpenFor); half-open -> closed
// after HalfOpenRequests successful probes, or open again on a failure.
//
// State lives in atomics: Allow takes no lock, allocates nothing and reads
// the clock only while open. OnChange, when set, is called on trips and
// closes (not on open -> half-open, which happens inside Allow), after the
// new state is visible.
//
// It is safe calling Breaker methods from concurrently running goroutines.
// It is forbidden copying Breaker values.
type Breaker struct {
	cfg      *BreakerConfig
	clock    Clock
	ejector  *Ejector
	window   *Window // nil when ErrorRatio is off
	OnChange func(from, to State, openFor time.Duration)

	// word is the state with the counters that belong to it (see
	// wordState): one compare-and-swap moves both, so a probe is never
	// admitted or counted in a half-open period other than the one it
	// read, and a stale Allow cannot end a later trip's open period.
	word atomic.Uint64

	// A trip or a close first claims the word (tripping, closing), then
	// sets the fields below that the next state reads, then publishes that
	// state: no reader sees Open before its openUntil, nor Closed before
	// trips, consecutive and the window are reset and the ejector slot is
	// released. Only the claim holder writes openUntil and trips.
	consecutive atomic.Int32 // failures in a row while closed
	trips       atomic.Int32 // trips since the breaker last closed
	openUntil   atomic.Int64 // unix nanoseconds; read only while Open
	ejections   atomic.Int64 // trips so far
}

// The state word: bits 0-2 hold the state; while Open, the next countBits
// bits hold the trip's sequence number (Ejections, wrapping); while
// HalfOpen, they count the probes admitted and the countBits above them
// the successes. Closed has no counters: the word is 0.
const (
	stateBits  = 3
	stateMask  = 1<<stateBits - 1
	countBits  = 30
	countMask  = 1<<countBits - 1
	admitShift = stateBits
	okShift    = stateBits + countBits

	wordClosed = uint64(Closed)

	// A transition claimed by one goroutine, which publishes the next
	// state once the fields it reads are set. Allow refuses and Record
	// ignores results meanwhile.
	tripping = 3 // to Open; State reads Open
	closing  = 4 // to Closed; State reads HalfOpen
)

// wordState is the State a word shows callers.
func wordState(w uint64) State {
	switch w & stateMask {
	case tripping:
		return Open
	case closing:
		return HalfOpen
	}
	return State(w & stateMask)
}

// NewBreaker returns a closed breaker. ejector may be shared by the
// breakers of one service; nil means no bound.
func NewBreaker(cfg *BreakerConfig, clock Clock, ejector *Ejector) *Breaker {
	b := &Breaker{cfg: cfg, clock: clock, ejector: ejector}
	if cfg.ErrorRatio > 0 {
		b.window = NewWindow(cfg.Window)
	}
	return b
}

// State is the current state (an open breaker whose period has passed
// reads Open until the next Allow). A trip in progress reads Open and a
// close in progress HalfOpen; Allow refuses during both.
func (b *Breaker) State() State { return wordState(b.word.Load()) }

// ConsecutiveFailures is the current run of failures while closed.
func (b *Breaker) ConsecutiveFailures() int { return int(b.consecutive.Load()) }

// Ejections counts the trips so far.
func (b *Breaker) Ejections() int64 { return b.ejections.Load() }

// probeLimit is HalfOpenRequests as a count of the state word (capped at
// countMask, about a billion).
func (b *Breaker) probeLimit() uint64 {
	return uint64(min(max(b.cfg.HalfOpenRequests, 0), countMask))
}

// Allow reports whether a request may go to the instance now, and admits it
// as a probe while half-open.
func (b *Breaker) Allow() bool {
	w := b.word.Load()
	if w == wordClosed {
		return true
	}
	if w&stateMask == uint64(Open) {
		// The trip stored openUntil before publishing w; a later trip's
		// openUntil (read after the word moved on) only refuses.
		if b.clock.Now().UnixNano() < b.openUntil.Load() {
			return false
		}
		// w carries its trip's sequence number: this fails if that trip's
		// open period already ended and another trip followed.
		b.word.CompareAndSwap(w, uint64(HalfOpen))
		w = b.word.Load()
	}
	limit := b.probeLimit()
	for w&stateMask == uint64(HalfOpen) {
		if w>>admitShift&countMask >= limit {
			return false
		}
		if b.word.CompareAndSwap(w, w+1<<admitShift) {
			return true
		}
		w = b.word.Load()
	}
	return false
}

// Cancel gives back what Allow admitted for a request that was not sent
// after all (a full connection pool, a deadline already passed), for which
// no result will be recorded: while half-open, a probe slot, so that the
// breaker does not wait forever for the outcome of a probe that never ran.
// In other states it does nothing. Probes are not told apart from other
// requests, so a request admitted while closed and cancelled after a trip
// frees a slot too, as its late result would have counted as one.
func (b *Breaker) Cancel() {
	for {
		w := b.word.Load()
		if w&stateMask != uint64(HalfOpen) || w>>admitShift&countMask == 0 {
			return
		}
		if b.word.CompareAndSwap(w, w-1<<admitShift) {
			return
		}
	}
}

// Record counts the outcome of one request sent to the instance. Results
// arriving while open (or while a trip or close is in progress) are
// ignored; while half-open every result counts, probe or late.
//
// A success on a breaker without an error-ratio window reads no clock.
func (b *Breaker) Record(failed bool) {
	var now time.Time
	if failed || b.window != nil {
		now = b.clock.Now()
	}
	if b.window != nil {
		b.window.Add(now, failed)
	}
	switch b.word.Load() & stateMask {
	case uint64(Closed):
		if !failed {
			b.consecutive.Store(0)
			return
		}
		if int(b.consecutive.Add(1)) >= b.cfg.ConsecutiveFailures || b.ratioExceeded(now) {
			b.trip(now, Closed)
		}
	case uint64(HalfOpen):
		if failed {
			b.trip(now, HalfOpen)
		} else {
			b.probeSucceeded()
		}
	}
}

func (b *Breaker) ratioExceeded(now time.Time) bool {
	if b.window == nil {
		return false
	}
	total, failed := b.window.Counts(now)
	return total >= int64(b.cfg.MinRequests) && float64(failed) >= b.cfg.ErrorRatio*float64(total)
}

// probeSucceeded counts a success while half-open, and closes the breaker
// at HalfOpenRequests of them.
func (b *Breaker) probeSucceeded() {
	limit := b.probeLimit()
	for {
		w := b.word.Load()
		if w&stateMask != uint64(HalfOpen) {
			return
		}
		if w>>okShift&countMask+1 < limit {
			if b.word.CompareAndSwap(w, w+1<<okShift) {
				return
			}
		} else if b.word.CompareAndSwap(w, closing) {
			b.close()
			return
		}
	}
}

// trip opens the breaker from state from. From closed it needs the
// ejector's permission; without it the breaker stays closed (panic mode).
func (b *Breaker) trip(now time.Time, from State) {
	if from == Closed {
		if b.word.Load() != wordClosed { // another trip won; keep its slot free
			return
		}
		if b.ejector != nil && !b.ejector.acquire() {
			return
		}
		if !b.word.CompareAndSwap(wordClosed, tripping) {
			if b.ejector != nil {
				b.ejector.release()
			}
			return
		}
	} else if !b.claim(HalfOpen, tripping) {
		return
	}
	// Claimed: until the Store below, nobody else writes these, and nobody
	// reads openUntil.
	d := b.openPeriod(int(b.trips.Add(1)))
	b.openUntil.Store(now.Add(d).UnixNano())
	b.consecutive.Store(0)
	seq := uint64(b.ejections.Add(1))
	b.word.Store(uint64(Open) | seq&countMask<<admitShift)
	if b.OnChange != nil {
		b.OnChange(from, Open, d)
	}
}

// claim moves the word from state from (whatever its counters) to the
// transition to, and reports whether this call did.
func (b *Breaker) claim(from State, to uint64) bool {
	for {
		w := b.word.Load()
		if w&stateMask != uint64(from) {
			return false
		}
		if b.word.CompareAndSwap(w, to) {
			return true
		}
	}
}

// openPeriod is OpenFor doubled per consecutive trip after the first,
// capped at MaxOpenFor.
func (b *Breaker) openPeriod(trips int) time.Duration {
	d := b.cfg.OpenFor
	for i := 1; i < trips && d < b.cfg.MaxOpenFor; i++ {
		d *= 2
	}
	return min(d, b.cfg.MaxOpenFor)
}

// close finishes a close claimed by probeSucceeded: it resets what a closed
// breaker reads and frees the ejector slot, then publishes Closed.
func (b *Breaker) close() {
	b.trips.Store(0)
	b.consecutive.Store(0)
	if b.window != nil {
		b.window.Reset()
	}
	if b.ejector != nil {
		b.ejector.release()
	}
	b.word.Store(wordClosed)
	if b.OnChange != nil {
		b.OnChange(HalfOpen, Closed, 0)
	}
}
