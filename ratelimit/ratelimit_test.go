package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
)

// fakeClock is a Clock that moves only when told. Safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func dur(d time.Duration) config.Duration    { return config.Duration{Duration: d} }
func limitCfg(rate, burst int) *config.RateLimit {
	return &config.RateLimit{Name: "test", Rate: rate, Per: dur(time.Second), Burst: burst}
}

func newLocal(t testing.TB, cfg *config.RateLimit, clk *fakeClock) *Limiter {
	t.Helper()
	o := Options{}
	if clk != nil {
		o.Clock = clk.Now
	}
	l, err := New(cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *config.RateLimit
	}{
		{"nil config", nil},
		{"zero rate", &config.RateLimit{Name: "x"}},
		{"negative rate", &config.RateLimit{Name: "x", Rate: -1}},
		{"negative per", &config.RateLimit{Name: "x", Rate: 1, Per: dur(-time.Second)}},
		{"negative burst", &config.RateLimit{Name: "x", Rate: 1, Burst: -1}},
		{"rate above 1/ns", &config.RateLimit{Name: "x", Rate: 2, Per: dur(time.Nanosecond)}},
		{"redis rate above 1/us", &config.RateLimit{Name: "x", Rate: 2000, Per: dur(time.Microsecond), Backend: "redis"}},
		{"burst overflows", &config.RateLimit{Name: "x", Rate: 1, Per: dur(time.Hour), Burst: 1 << 40}},
		{"unknown backend", &config.RateLimit{Name: "x", Rate: 1, Backend: "memcached"}},
		{"unknown on_store_error", &config.RateLimit{Name: "x", Rate: 1, OnStoreError: "maybe"}},
		{"negative max_keys", &config.RateLimit{Name: "x", Rate: 1, MaxKeys: -5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(tc.cfg, Options{})
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, %v; want an error wrapping ErrConfig", l, err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	cfg := &config.RateLimit{Name: "x", Rate: 100}
	l := newLocal(t, cfg, nil)
	if l.g.t != int64(10*time.Millisecond) || l.g.burst != 100 || l.local.shards[0].max != defaultMaxKeys/maxShards+1 {
		t.Errorf("defaults: T=%v burst=%d shard max=%d", time.Duration(l.g.t), l.g.burst, l.local.shards[0].max)
	}
	if *cfg != (config.RateLimit{Name: "x", Rate: 100}) {
		t.Errorf("New modified its config: %+v", *cfg)
	}
}

// step is one Allow call after advancing the fake clock.
type step struct {
	advance time.Duration
	want    Decision
}

func allowed(remaining int, reset time.Duration) Decision {
	return Decision{Allowed: true, Limit: 50, Remaining: remaining, ResetAfter: reset}
}

func denied(reset, retry time.Duration) Decision {
	return Decision{Limit: 50, ResetAfter: reset, RetryAfter: retry}
}

func TestAllowSequence(t *testing.T) {
	const ms = time.Millisecond
	burst := func() []step { // 50 at once from a fresh key (rate 100/s, burst 50)
		var s []step
		for i := 1; i <= 50; i++ {
			s = append(s, step{0, allowed(50-i, time.Duration(i)*10*ms)})
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"exact burst then denial", append(burst(),
			step{0, denied(500*ms, 10*ms)},
			step{0, denied(500*ms, 10*ms)},
		)},
		{"one more every 10ms", append(burst(),
			step{0, denied(500*ms, 10*ms)},
			step{10 * ms, allowed(0, 500*ms)},
			step{0, denied(500*ms, 10*ms)},
			step{9 * ms, denied(491*ms, 1*ms)},
			step{1 * ms, allowed(0, 500*ms)},
			step{5 * ms, denied(495*ms, 5*ms)},
			step{5 * ms, allowed(0, 500*ms)},
		)},
		{"partial refill", append(burst(),
			step{250 * ms, allowed(24, 260*ms)}, // 25 refilled, one used
			step{0, allowed(23, 270*ms)},
		)},
		{"full again after the reset time", append(burst(),
			step{500 * ms, allowed(49, 10*ms)},
		)},
		{"idle longer than the reset time gives no more than a burst", append(burst(),
			step{time.Hour, allowed(49, 10*ms)},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newLocal(t, limitCfg(100, 50), clk)
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				if got := l.Allow(context.Background(), []byte("k")); got != s.want {
					t.Fatalf("step %d (+%v): got %+v, want %+v", i, s.advance, got, s.want)
				}
			}
		})
	}
}

func TestSteadyRate(t *testing.T) {
	clk := newFakeClock()
	l := newLocal(t, limitCfg(100, 50), clk)
	key := []byte("k")
	for range 50 {
		l.Allow(context.Background(), key)
	}
	for i := range 1000 {
		clk.Advance(10 * time.Millisecond)
		if d := l.Allow(context.Background(), key); !d.Allowed {
			t.Fatalf("tick %d: denied %+v, want one request every 10ms", i, d)
		}
		if d := l.Allow(context.Background(), key); d.Allowed {
			t.Fatalf("tick %d: second request allowed %+v", i, d)
		}
	}
}

func TestBurstSizes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		rate, burst int
		per         time.Duration
	}{
		{"burst 1", 10, 1, time.Second},
		{"burst below rate", 100, 50, time.Second},
		{"burst above rate", 5, 20, time.Second},
		{"uneven interval", 3, 7, time.Second},
		{"per minute", 60, 60, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newLocal(t, &config.RateLimit{Name: "x", Rate: tc.rate, Per: dur(tc.per), Burst: tc.burst}, clk)
			n := 0
			for l.Allow(context.Background(), []byte("k")).Allowed {
				n++
			}
			if n != tc.burst {
				t.Fatalf("allowed %d at once, want %d", n, tc.burst)
			}
			d := l.Allow(context.Background(), []byte("k"))
			clk.Advance(d.RetryAfter - 1)
			if d := l.Allow(context.Background(), []byte("k")); d.Allowed {
				t.Fatalf("allowed 1ns before RetryAfter: %+v", d)
			}
			clk.Advance(1)
			if d := l.Allow(context.Background(), []byte("k")); !d.Allowed {
				t.Fatalf("denied at RetryAfter: %+v", d)
			}
		})
	}
}

func TestKeysIndependent(t *testing.T) {
	clk := newFakeClock()
	l := newLocal(t, limitCfg(100, 50), clk)
	for range 60 {
		l.Allow(context.Background(), []byte("a"))
	}
	if d := l.Allow(context.Background(), []byte("a")); d.Allowed {
		t.Fatalf("a: allowed after 60 requests: %+v", d)
	}
	for i := 1; i <= 50; i++ {
		if d := l.Allow(context.Background(), []byte("b")); d != allowed(50-i, time.Duration(i)*10*time.Millisecond) {
			t.Fatalf("b request %d: %+v; a's requests leaked into b", i, d)
		}
	}
}

func TestConcurrentExactBurst(t *testing.T) {
	clk := newFakeClock()
	l := newLocal(t, limitCfg(100, 50), clk)
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	var wg sync.WaitGroup
	var got [4]atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(keys)
				if l.Allow(context.Background(), keys[k]).Allowed {
					got[k].Add(1)
				}
			}
		})
	}
	// and a flood of other keys evicting concurrently in a small store
	clk2 := newFakeClock()
	small := newLocal(t, &config.RateLimit{Name: "x", Rate: 100, MaxKeys: 100}, clk2)
	for g := range 4 {
		wg.Go(func() {
			var buf []byte
			for i := range 5000 {
				buf = strconv.AppendInt(append(buf[:0], byte('a'+g)), int64(i), 10)
				small.Allow(context.Background(), buf)
				if i%1000 == 0 {
					clk2.Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		if n := got[k].Load(); n != 50 {
			t.Errorf("key %s: %d allowed across goroutines, want exactly 50", keys[k], n)
		}
	}
	if n := small.local.len(); n > 100 {
		t.Errorf("small store holds %d keys, max_keys is 100", n)
	}
}
