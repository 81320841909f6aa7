package balance_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastgate/fastgate/balance"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/health"
)

// benchClock is a health.Clock moved by hand.
type benchClock struct{ ns atomic.Int64 }

func (c *benchClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *benchClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newTroubledService builds five instances (weights 5, 1, 1, 3, 2) of which
// i1's breaker is open, i2's is half-open with its one probe already
// admitted (so it refuses further picks), and i3 is marked down by health
// checks: Pick may return only i0 or i4, and must look past the others.
func newTroubledService(tb testing.TB) *balance.Service {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`[[services]]
name = "svc"
  [services.breaker]
  consecutive_failures = 2
  open_for = "10s"
  half_open_requests = 1
  max_ejected_percent = 50
`)
	for i, w := range []int{5, 1, 1, 3, 2} {
		fmt.Fprintf(&b, "  [[services.instances]]\n  id = \"i%d\"\n  addr = \"127.0.0.1:%d\"\n  weight = %d\n", i, 10000+i, w)
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	clock := &benchClock{}
	clock.ns.Store(time.Unix(1e9, 0).UnixNano())
	s := balance.New(&cfg.Services[0], balance.Options{Clock: clock})
	ins := s.Instances()

	ins[2].Record(true)
	ins[2].Record(true) // open until now+10s
	clock.Advance(11 * time.Second)
	if !ins[2].Available() { // half-open: admits its probe...
		tb.Fatal("i2 refused its half-open probe")
	}
	ins[1].Record(true)
	ins[1].Record(true) // open until now+10s; the clock stays here
	ins[3].SetHealthy(false)

	for i, want := range []struct {
		state health.State
		up    bool
	}{{health.Closed, true}, {health.Open, true}, {health.HalfOpen, true}, {health.Closed, false}, {health.Closed, true}} {
		if got := ins[i].Breaker().State(); got != want.state || ins[i].Healthy() != want.up {
			tb.Fatalf("i%d: breaker %v, healthy %v; want %v, %v", i, got, ins[i].Healthy(), want.state, want.up)
		}
	}
	for i := range 3 { // ...and nothing more
		if ins[i+1].Available() {
			tb.Fatalf("i%d available", i+1)
		}
	}
	return s
}

// checkPick reports a pick of an instance that is not available.
func checkPick(in *balance.Instance) error {
	if in == nil {
		return fmt.Errorf("nil pick")
	}
	if i := in.Index(); i != 0 && i != 4 {
		return fmt.Errorf("picked %s", in.ID())
	}
	return nil
}

func TestPickWithBreakers(t *testing.T) {
	s := newTroubledService(t)
	got := map[string]int{}
	for range 700 {
		in := s.Pick(0)
		if err := checkPick(in); err != nil {
			t.Fatal(err)
		}
		got[in.ID()]++
	}
	if got["i0"]+got["i4"] != 700 || got["i0"] < got["i4"] {
		t.Errorf("picks %v: want only i0 and i4, i0 (weight 5) more often than i4 (weight 2)", got)
	}
}

func BenchmarkPickWithBreakers(b *testing.B) {
	s := newTroubledService(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := checkPick(s.Pick(0)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
