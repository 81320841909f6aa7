package health

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// spinner calls a function over and over on another goroutine, to race
// with the test's goroutine.
type spinner struct {
	calls atomic.Int64 // completed calls
	done  atomic.Bool
	wg    sync.WaitGroup
	stop  func() // idempotent; returns once the function has returned for good
}

// spin starts calling f; it stops when the test ends, if not before.
func spin(t *testing.T, f func()) *spinner {
	s := &spinner{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for !s.done.Load() {
			f()
			s.calls.Add(1)
		}
	}()
	s.stop = sync.OnceFunc(func() {
		s.done.Store(true)
		s.wg.Wait()
	})
	t.Cleanup(s.stop)
	return s
}

// during calls do and reports whether a whole call of the spinner's
// function, started after do was, ran meanwhile: whether do was contested.
func (s *spinner) during(do func()) bool {
	before := s.calls.Load()
	do()
	return s.calls.Load()-before >= 2
}

// stressBudget bounds the wall time of a stress test that wants more
// contested rounds than a busy machine runs the spinner alongside for; it
// then passes on fewer, and says so (logBusy).
const stressBudget = 150 * time.Millisecond

func logBusy(t *testing.T, contested, want int) {
	if contested < want {
		t.Logf("busy machine: only %d of %d rounds contested in %v", contested, want, stressBudget)
	}
}

// TestBreakerTripKeepsOpenPeriod: with the clock standing still, a trip
// must leave the breaker open however Allow races with it. Fixed bug: trip
// published Open before openUntil, so an Allow in between saw Open with the
// previous openUntil (0, or a past time) and went half-open at once,
// admitting a probe: no open period, no doubling.
func TestBreakerTripKeepsOpenPeriod(t *testing.T) {
	cfg := &BreakerConfig{ConsecutiveFailures: 1, MinRequests: 20, Window: 10 * time.Second,
		OpenFor: 5 * time.Second, MaxOpenFor: time.Minute, HalfOpenRequests: 1}
	for _, tt := range []struct {
		name  string
		ready func(b *Breaker, clock *fakeClock) // leaves b in the state the trip starts from
		from  State
	}{
		{"first trip from closed", func(*Breaker, *fakeClock) {}, Closed},
		{"trip from half-open", func(b *Breaker, clock *fakeClock) {
			b.Record(true)
			clock.Advance(cfg.OpenFor)
			b.Allow()
		}, HalfOpen},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var cur atomic.Pointer[Breaker]
			s := spin(t, func() { // Allow on the current breaker all the time
				if b := cur.Load(); b != nil {
					b.Allow()
				}
			})
			const want = 200 // contested rounds; about half fail without the fix
			contested, skipped := 0, 0
			for start := time.Now(); contested < want && time.Since(start) < stressBudget; {
				clock := newFakeClock()
				b := NewBreaker(cfg, clock, NewEjector(2, 50))
				tt.ready(b, clock)
				if b.State() != tt.from {
					t.Fatalf("state %v before the trip, want %v", b.State(), tt.from)
				}
				cur.Store(b)
				if s.during(func() { b.Record(true) }) {
					contested++
				}
				if b.State() != Open {
					skipped++
				}
			}
			s.stop()
			if skipped > 0 {
				t.Errorf("%d trips (of %d contested) went half-open with the clock standing still", skipped, contested)
			}
			logBusy(t, contested, want)
		})
	}
}

// TestBreakerHalfOpenProbeLimit: however Allow calls race with the end of
// the open period, one half-open period admits at most HalfOpenRequests
// probes. Fixed bug: the Allow that moved the breaker to half-open reset
// the probe count after the swap, so an Allow in between was admitted and
// then forgotten, letting one probe too many through.
func TestBreakerHalfOpenProbeLimit(t *testing.T) {
	cfg := &BreakerConfig{ConsecutiveFailures: 1, MinRequests: 20, Window: 10 * time.Second,
		OpenFor: 5 * time.Second, MaxOpenFor: time.Minute, HalfOpenRequests: 1}
	type round struct {
		b        *Breaker
		admitted atomic.Int32
	}
	var cur atomic.Pointer[round]
	s := spin(t, func() {
		if r := cur.Load(); r != nil && r.b.Allow() {
			r.admitted.Add(1)
		}
	})
	const want = 2000 // contested rounds; about 1% fail without the fix
	var rs []*round
	contested := 0
	for start := time.Now(); contested < want && time.Since(start) < stressBudget; {
		clock := newFakeClock()
		r := &round{b: NewBreaker(cfg, clock, nil)}
		rs = append(rs, r)
		r.b.Record(true)
		clock.Advance(cfg.OpenFor) // the next Allow ends the open period
		cur.Store(r)
		if s.during(func() {
			for range 3 {
				if r.b.Allow() {
					r.admitted.Add(1)
				}
			}
		}) {
			contested++
		}
	}
	s.stop()
	over := 0
	for i, r := range rs {
		switch n := r.admitted.Load(); {
		case n == 0:
			t.Fatalf("round %d: no probe admitted", i)
		case n > 1:
			over++
		}
	}
	if over > 0 {
		t.Errorf("%d of %d half-open periods (%d contested) admitted more than one probe", over, len(rs), contested)
	}
	logBusy(t, contested, want)
}
