package health

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
)

// fakeClock is a Clock moved by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func testBreakerConfig() *BreakerConfig {
	return &BreakerConfig{
		ConsecutiveFailures: 3,
		MinRequests:         10,
		Window:              10 * time.Second,
		OpenFor:             5 * time.Second,
		MaxOpenFor:          18 * time.Second,
		HalfOpenRequests:    2,
	}
}

// TestBreakerStateMachine drives one breaker through a script of steps and
// checks its state after each.
func TestBreakerStateMachine(t *testing.T) {
	type step struct {
		do      string // "ok", "fail", "allow", "deny", "cancel", "wait <dur>"
		advance time.Duration
		want    State
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"closed stays closed below the threshold", []step{
			{do: "fail", want: Closed}, {do: "fail", want: Closed}, {do: "ok", want: Closed},
			{do: "fail", want: Closed}, {do: "fail", want: Closed}, {do: "allow", want: Closed},
		}},
		{"three failures in a row trip it", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open}, {do: "deny", want: Open},
		}},
		{"half-open after open_for admits two probes, two successes close", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "wait", advance: 4999 * time.Millisecond}, {do: "deny", want: Open},
			{do: "wait", advance: time.Millisecond}, {do: "allow", want: HalfOpen}, {do: "allow", want: HalfOpen}, {do: "deny", want: HalfOpen},
			{do: "ok", want: HalfOpen}, {do: "ok", want: Closed}, {do: "allow", want: Closed},
		}},
		{"a failed probe reopens for twice as long", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "wait", advance: 5 * time.Second}, {do: "allow", want: HalfOpen}, {do: "fail", want: Open},
			{do: "wait", advance: 9999 * time.Millisecond}, {do: "deny", want: Open},
			{do: "wait", advance: time.Millisecond}, {do: "allow", want: HalfOpen},
		}},
		{"doubling is capped at max_open_for", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open}, // 5s
			{do: "wait", advance: 5 * time.Second}, {do: "allow"}, {do: "fail", want: Open}, // 10s
			{do: "wait", advance: 10 * time.Second}, {do: "allow"}, {do: "fail", want: Open}, // 20s capped to 18s
			{do: "wait", advance: 17999 * time.Millisecond}, {do: "deny", want: Open},
			{do: "wait", advance: time.Millisecond}, {do: "allow", want: HalfOpen},
		}},
		{"closing resets the doubling", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "wait", advance: 5 * time.Second}, {do: "allow"}, {do: "fail", want: Open},
			{do: "wait", advance: 10 * time.Second}, {do: "allow"}, {do: "allow"}, {do: "ok"}, {do: "ok", want: Closed},
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "wait", advance: 5 * time.Second}, {do: "allow", want: HalfOpen},
		}},
		{"a cancelled probe frees its slot", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "wait", advance: 5 * time.Second}, {do: "allow", want: HalfOpen}, {do: "allow"}, {do: "deny"},
			{do: "cancel", want: HalfOpen}, {do: "allow", want: HalfOpen}, {do: "deny", want: HalfOpen},
		}},
		{"cancel frees no more slots than were admitted", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "wait", advance: 5 * time.Second}, {do: "allow", want: HalfOpen},
			{do: "cancel"}, {do: "cancel"}, {do: "allow"}, {do: "allow"}, {do: "deny", want: HalfOpen},
		}},
		{"cancel while closed or open changes nothing", []step{
			{do: "cancel", want: Closed}, {do: "fail"}, {do: "fail"}, {do: "fail", want: Open},
			{do: "cancel", want: Open}, {do: "deny", want: Open},
		}},
		{"late results while open are ignored", []step{
			{do: "fail"}, {do: "fail"}, {do: "fail", want: Open}, {do: "ok", want: Open}, {do: "fail", want: Open},
			{do: "wait", advance: 5 * time.Second}, {do: "allow", want: HalfOpen},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			b := NewBreaker(testBreakerConfig(), clock, nil)
			for i, s := range tt.steps {
				switch s.do {
				case "ok":
					b.Record(false)
				case "fail":
					b.Record(true)
				case "cancel":
					b.Cancel()
				case "allow":
					if !b.Allow() {
						t.Fatalf("step %d: Allow() = false, want true (state %v)", i, b.State())
					}
				case "deny":
					if b.Allow() {
						t.Fatalf("step %d: Allow() = true, want false (state %v)", i, b.State())
					}
				case "wait":
					clock.Advance(s.advance)
					continue
				}
				if s.want != Closed || s.do != "fail" && s.do != "ok" && s.do != "allow" || i == len(tt.steps)-1 {
					if got := b.State(); s.want != 0 && got != s.want {
						t.Fatalf("step %d (%s): state %v, want %v", i, s.do, got, s.want)
					}
				}
			}
		})
	}
}

func TestBreakerErrorRatio(t *testing.T) {
	clock := newFakeClock()
	cfg := testBreakerConfig()
	cfg.ConsecutiveFailures = 100
	cfg.ErrorRatio = 0.5
	b := NewBreaker(cfg, clock, nil)
	// 9 requests, 5 failing but never 3 in a row: under min_requests.
	for i := range 9 {
		b.Record(i%2 == 0)
	}
	if b.State() != Closed {
		t.Fatalf("tripped below min_requests")
	}
	b.Record(true) // 10 requests, 6 failed: 60% >= 50%
	if b.State() != Open {
		t.Fatalf("state %v after 6/10 failures, want open", b.State())
	}

	// Failures older than the window do not count: with them, the last
	// failure would make 10 of 19 (53%).
	b2 := NewBreaker(cfg, clock, nil)
	for range 9 { // 9 requests: under min_requests
		b2.Record(true)
	}
	clock.Advance(11 * time.Second)
	for range 9 {
		b2.Record(false)
	}
	b2.Record(true)
	if b2.State() != Closed {
		t.Fatalf("old failures counted: state %v", b2.State())
	}
}

// TestEjectorPanicMode: with max_ejected_percent 50 of three instances, one
// breaker may open; the others keep serving however they fail.
func TestEjectorPanicMode(t *testing.T) {
	clock := newFakeClock()
	ej := NewEjector(3, 50)
	bs := []*Breaker{NewBreaker(testBreakerConfig(), clock, ej), NewBreaker(testBreakerConfig(), clock, ej), NewBreaker(testBreakerConfig(), clock, ej)}
	for _, b := range bs {
		for range 5 {
			b.Record(true)
		}
	}
	if got := []State{bs[0].State(), bs[1].State(), bs[2].State()}; got[0] != Open || got[1] != Closed || got[2] != Closed {
		t.Fatalf("states %v, want [open closed closed]", got)
	}
	if ej.Ejected() != 1 {
		t.Fatalf("ejected %d, want 1", ej.Ejected())
	}
	// When the first closes, another may be ejected.
	clock.Advance(5 * time.Second)
	bs[0].Allow()
	bs[0].Allow()
	bs[0].Record(false)
	bs[0].Record(false)
	if bs[0].State() != Closed || ej.Ejected() != 0 {
		t.Fatalf("after recovery: state %v, ejected %d", bs[0].State(), ej.Ejected())
	}
	bs[1].Record(true)
	if bs[1].State() != Open {
		t.Fatalf("second breaker did not trip once a slot was free: %v", bs[1].State())
	}
}

func TestEjectorLimits(t *testing.T) {
	for _, tt := range []struct{ n, pct, want int }{{1, 50, 0}, {2, 50, 1}, {3, 50, 1}, {4, 50, 2}, {10, 10, 1}, {3, 100, 3}, {3, 0, 0}} {
		e := NewEjector(tt.n, tt.pct)
		got := 0
		for e.acquire() {
			got++
		}
		if got != tt.want {
			t.Errorf("NewEjector(%d, %d): %d ejections, want %d", tt.n, tt.pct, got, tt.want)
		}
	}
}

func TestWindow(t *testing.T) {
	clock := newFakeClock()
	w := NewWindow(10 * time.Second)
	w.Add(clock.Now(), true)
	w.Add(clock.Now(), false)
	clock.Advance(5 * time.Second)
	w.Add(clock.Now(), true)
	if total, failed := w.Counts(clock.Now()); total != 3 || failed != 2 {
		t.Fatalf("counts %d/%d, want 3/2", total, failed)
	}
	clock.Advance(6 * time.Second) // the first two fall out
	if total, failed := w.Counts(clock.Now()); total != 1 || failed != 1 {
		t.Fatalf("counts %d/%d after 11s, want 1/1", total, failed)
	}
	clock.Advance(100 * time.Second) // a bucket reused after wrapping is reset
	w.Add(clock.Now(), false)
	if total, failed := w.Counts(clock.Now()); total != 1 || failed != 0 {
		t.Fatalf("counts %d/%d after wrap, want 1/0", total, failed)
	}
}

// target records what the checker sets.
type target struct {
	addr    string
	up      atomic.Bool
	changes atomic.Int32
}

func (t *target) Addr() string { return t.addr }
func (t *target) SetHealthy(up bool) bool {
	if t.up.Swap(up) == up {
		return false
	}
	t.changes.Add(1)
	return true
}

// TestCheckerRiseFall probes a real stub whose health flips.
func TestCheckerRiseFall(t *testing.T) {
	s, err := stub.Start(stub.Options{ID: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tg := &target{addr: s.Addr()}
	tg.up.Store(true)
	var changes []bool
	c := NewChecker(CheckConfig{Path: "/health", Interval: time.Hour, Timeout: time.Second, Rise: 2, Fall: 3},
		[]Target{tg}, CheckerOptions{OnChange: func(_ int, up bool, _ Result) { changes = append(changes, up) }})
	steps := []struct {
		healthy bool
		wantOK  bool
		wantUp  bool
	}{
		{true, true, true},
		{false, false, true}, {false, false, true}, {false, false, false}, // fall = 3
		{false, false, false},
		{true, true, false}, {true, true, true}, // rise = 2
		{false, false, true}, {true, true, true}, // one failure is not a fall
	}
	for i, st := range steps {
		s.SetHealthy(st.healthy)
		r := c.Check(0)
		if r.OK != st.wantOK || tg.up.Load() != st.wantUp {
			t.Fatalf("probe %d: ok=%v up=%v, want ok=%v up=%v (err %q)", i, r.OK, tg.up.Load(), st.wantOK, st.wantUp, r.Err)
		}
		if !r.OK && r.Status != 503 {
			t.Fatalf("probe %d: status %d, want 503", i, r.Status)
		}
	}
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("OnChange calls %v, want [false true] (once per change)", changes)
	}
	if last := c.Last(0); last == nil || !last.OK {
		t.Fatalf("Last = %+v", last)
	}
}

func TestCheckerUnreachableAndStop(t *testing.T) {
	tg := &target{addr: "127.0.0.1:1"}
	tg.up.Store(true)
	c := NewChecker(CheckConfig{Path: "/health", Interval: 5 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 1, Fall: 1},
		[]Target{tg}, CheckerOptions{})
	c.Start()
	deadline := time.Now().Add(2 * time.Second)
	for tg.up.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Stop()
	if tg.up.Load() {
		t.Fatal("unreachable target never marked down")
	}
	if r := c.Last(0); r == nil || r.OK || r.Err == "" {
		t.Fatalf("last result %+v, want a failure with an error", r)
	}
	c.Stop() // idempotent
}

func TestExpectStatus(t *testing.T) {
	c := &Checker{cfg: CheckConfig{}}
	for code, want := range map[int]bool{200: true, 302: true, 399: true, 400: false, 503: false, 199: false} {
		if c.passing(code) != want {
			t.Errorf("default passing(%d) != %v", code, want)
		}
	}
	c.cfg.ExpectStatus = []int{204}
	if c.passing(200) || !c.passing(204) {
		t.Error("expect_status [204] not honoured")
	}
}
