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
// closes (not on open -> half-open, which happens inside Allow).
//
// It is safe calling Breaker methods from concurrently running goroutines.
// It is forbidden copying Breaker values.
type Breaker struct {
	cfg      *BreakerConfig
	clock    Clock
	ejector  *Ejector
	window   *Window // nil when ErrorRatio is off
	OnChange func(from, to State, openFor time.Duration)

	state       atomic.Int32
	consecutive atomic.Int32 // failures in a row while closed
	trips       atomic.Int32 // trips since the breaker last closed
	openUntil   atomic.Int64 // unix nanoseconds
	probes      atomic.Int32 // admitted while half-open
	probesOK    atomic.Int32 // succeeded while half-open
	ejections   atomic.Int64 // trips so far
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
// reads Open until the next Allow).
func (b *Breaker) State() State { return State(b.state.Load()) }

// ConsecutiveFailures is the current run of failures while closed.
func (b *Breaker) ConsecutiveFailures() int { return int(b.consecutive.Load()) }

// Ejections counts the trips so far.
func (b *Breaker) Ejections() int64 { return b.ejections.Load() }

// Allow reports whether a request may go to the instance now, and admits it
// as a probe while half-open.
func (b *Breaker) Allow() bool {
	switch State(b.state.Load()) {
	case Closed:
		return true
	case Open:
		if b.clock.Now().UnixNano() < b.openUntil.Load() {
			return false
		}
		if b.state.CompareAndSwap(int32(Open), int32(HalfOpen)) {
			b.probes.Store(0)
			b.probesOK.Store(0)
		}
	}
	for State(b.state.Load()) == HalfOpen {
		n := b.probes.Load()
		if int(n) >= b.cfg.HalfOpenRequests {
			return false
		}
		if b.probes.CompareAndSwap(n, n+1) {
			return true
		}
	}
	return false
}

// Record counts the outcome of one request sent to the instance.
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
	switch State(b.state.Load()) {
	case Closed:
		if !failed {
			b.consecutive.Store(0)
			return
		}
		if int(b.consecutive.Add(1)) >= b.cfg.ConsecutiveFailures || b.ratioExceeded(now) {
			b.trip(now, Closed)
		}
	case HalfOpen:
		if failed {
			b.trip(now, HalfOpen)
		} else if int(b.probesOK.Add(1)) >= b.cfg.HalfOpenRequests {
			b.close()
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

// trip opens the breaker from state from. From closed it needs the
// ejector's permission; without it the breaker stays closed (panic mode).
func (b *Breaker) trip(now time.Time, from State) {
	if from == Closed && b.ejector != nil && !b.ejector.acquire() {
		return
	}
	if !b.state.CompareAndSwap(int32(from), int32(Open)) {
		if from == Closed && b.ejector != nil {
			b.ejector.release()
		}
		return
	}
	d := b.openPeriod(int(b.trips.Add(1)))
	b.openUntil.Store(now.Add(d).UnixNano())
	b.consecutive.Store(0)
	b.ejections.Add(1)
	if b.OnChange != nil {
		b.OnChange(from, Open, d)
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

func (b *Breaker) close() {
	if !b.state.CompareAndSwap(int32(HalfOpen), int32(Closed)) {
		return
	}
	b.trips.Store(0)
	b.consecutive.Store(0)
	if b.window != nil {
		b.window.Reset()
	}
	if b.ejector != nil {
		b.ejector.release()
	}
	if b.OnChange != nil {
		b.OnChange(HalfOpen, Closed, 0)
	}
}
