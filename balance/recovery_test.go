package balance

import (
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/health"
)

func newTestService(t testing.TB, doc string) *Service {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return New(&cfg.Services[0], Options{})
}

// period counts picks per instance id over n picks.
func picks(s *Service, n int) map[string]int {
	got := map[string]int{}
	for range n {
		if in := s.Pick(0); in != nil {
			got[in.ID()]++
		} else {
			got["<nil>"]++
		}
	}
	return got
}

// TestEffectiveWeightRecovery: an instance back from down re-enters at
// weight 1 and climbs by one per successful request, the schedule
// following at powers of two and at the configured weight.
func TestEffectiveWeightRecovery(t *testing.T) {
	s := newTestService(t, `
[[services]]
name = "s"
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
  weight = 4
  [[services.instances]]
  id = "b"
  addr = "127.0.0.1:2"
  weight = 1
`)
	a := s.Instances()[0]
	if got := picks(s, 50); got["a"] != 40 || got["b"] != 10 {
		t.Fatalf("steady state %v, want a:40 b:10", got)
	}
	a.SetHealthy(false)
	if got := picks(s, 10); got["a"] != 0 || got["b"] != 10 {
		t.Fatalf("a down: %v", got)
	}
	a.SetHealthy(true)
	steps := []struct {
		eff   int
		a, b  int // picks over 60
		after string
	}{
		{1, 30, 30, "back up"},
		{2, 40, 20, "1 success"},
		{3, 40, 20, "2 successes (no rebuild at 3)"},
		{4, 48, 12, "3 successes"},
		{4, 48, 12, "4 successes (capped)"},
	}
	for i, st := range steps {
		if i > 0 {
			a.Record(false)
		}
		if a.EffectiveWeight() != st.eff {
			t.Fatalf("%s: effective weight %d, want %d", st.after, a.EffectiveWeight(), st.eff)
		}
		s.next.Store(0)
		if got := picks(s, 60); got["a"] != st.a || got["b"] != st.b {
			t.Fatalf("%s: picks %v, want a:%d b:%d", st.after, got, st.a, st.b)
		}
	}
	a.Record(true) // a failure does not lower it
	if a.EffectiveWeight() != 4 {
		t.Fatalf("effective weight %d after a failure", a.EffectiveWeight())
	}
}

// fakeClock is a health.Clock moved by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// TestBreakerEjectsFromPick: a tripped breaker takes the instance out of
// the picks; after open_for it gets exactly its half-open probe; a good
// probe closes it and it ramps up from weight 1.
func TestBreakerEjectsFromPick(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[services]]
name = "s"
  [services.breaker]
  consecutive_failures = 2
  open_for = "5s"
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
  weight = 2
  [[services.instances]]
  id = "b"
  addr = "127.0.0.1:2"
  weight = 2
  [[services.instances]]
  id = "c"
  addr = "127.0.0.1:3"
  weight = 2
`))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	var changes []health.State
	s := New(&cfg.Services[0], Options{Clock: clock, OnBreaker: func(_ *Instance, _, to health.State, _ time.Duration) { changes = append(changes, to) }})
	a := s.Instances()[0]
	a.Record(true)
	a.Record(true)
	if a.Breaker().State() != health.Open {
		t.Fatalf("breaker %v after 2 failures", a.Breaker().State())
	}
	if got := picks(s, 100); got["a"] != 0 || got["b"]+got["c"] != 100 {
		t.Fatalf("open: %v, want no pick of a", got)
	}
	clock.now = clock.now.Add(5 * time.Second)
	if got := picks(s, 100); got["a"] != 1 {
		t.Fatalf("half-open: a picked %d times, want exactly 1 probe (%v)", got["a"], got)
	}
	a.Record(false) // closes (effective weight 1), and counts as the first success (2)
	if a.Breaker().State() != health.Closed || a.EffectiveWeight() != 2 {
		t.Fatalf("after a good probe: breaker %v, effective weight %d", a.Breaker().State(), a.EffectiveWeight())
	}
	if len(changes) != 2 || changes[0] != health.Open || changes[1] != health.Closed {
		t.Fatalf("OnBreaker saw %v, want [open closed]", changes)
	}
	s.next.Store(0)
	if got := picks(s, 60); got["a"] != 20 {
		t.Fatalf("recovering at weight 2: a picked %d of 60, want 20", got["a"])
	}
}

// TestMaxInFlight: an instance at max_in_flight is skipped.
func TestMaxInFlight(t *testing.T) {
	s := newTestService(t, `
[[services]]
name = "s"
  [services.limits]
  max_in_flight = 2
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
  [[services.instances]]
  id = "b"
  addr = "127.0.0.1:2"
`)
	a := s.Instances()[0]
	a.inFlight.Store(2)
	if got := picks(s, 10); got["a"] != 0 {
		t.Fatalf("full instance picked: %v", got)
	}
	a.inFlight.Store(1)
	if got := picks(s, 10); got["a"] != 5 {
		t.Fatalf("after a slot freed: %v", got)
	}
}

// TestRetryBudget: retries may add 20% of requests plus the floor.
func TestRetryBudget(t *testing.T) {
	s := newTestService(t, `
[[services]]
name = "s"
  [services.limits]
  retry_budget = 0.2
  min_retries_per_second = 0
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
`)
	now := time.Unix(1_800_000_000, 0)
	for range 100 {
		s.CountRequest(now)
	}
	allowed := 0
	for range 50 {
		if s.RetryBudgetLeft(now) {
			s.CountRetry(now)
			allowed++
		}
	}
	if allowed != 20 {
		t.Fatalf("%d retries allowed for 100 requests, want 20", allowed)
	}
}

// TestRetrySpreadsByWeight: retries after a failure on the heavy instance
// go to the others in proportion to their weights, not to whichever
// follows it in the schedule.
func TestRetrySpreadsByWeight(t *testing.T) {
	s := newTestService(t, `
[[services]]
name = "s"
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
  weight = 5
  [[services.instances]]
  id = "b"
  addr = "127.0.0.1:2"
  weight = 1
  [[services.instances]]
  id = "c"
  addr = "127.0.0.1:3"
  weight = 2
`)
	a := s.Instances()[0]
	got := map[string]int{}
	const n = 9000
	for range n {
		in := s.Pick(Tried(0, a))
		if in == nil || in == a {
			t.Fatalf("retry picked %v", in)
		}
		got[in.ID()]++
	}
	// b:c should be 1:2 (3000:6000); 8 standard deviations of slack.
	if b := got["b"]; b < 2650 || b > 3350 {
		t.Fatalf("retries b:%d c:%d over %d, want about 3000:6000", b, got["c"], n)
	}
	// Every instance tried: nothing left.
	if in := s.Pick(Tried(Tried(Tried(0, a), s.Instances()[1]), s.Instances()[2])); in != nil {
		t.Fatalf("picked %s with every instance tried", in.ID())
	}
}
