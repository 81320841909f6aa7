package config

import (
	"fmt"
	"time"
)

// Health configures active health checks of a service's instances.
type Health struct {
	Path         string   `toml:"path"`          // GET this path on every instance ["" = off]
	Interval     Duration `toml:"interval"`      // ["5s"]
	Timeout      Duration `toml:"timeout"`       // ["1s"]
	Rise         int      `toml:"rise"`          // consecutive passes to mark up [2]
	Fall         int      `toml:"fall"`          // consecutive failures to mark down [3]
	ExpectStatus []int    `toml:"expect_status"` // [200..399 when empty]
}

// Breaker configures the per-instance circuit breaker (passive checks).
type Breaker struct {
	ConsecutiveFailures int      `toml:"consecutive_failures"` // trips the breaker [5]
	ErrorRatio          float64  `toml:"error_ratio"`          // or this share of failures... [0 = off]
	MinRequests         int      `toml:"min_requests"`         // ...over at least this many requests in Window [20]
	Window              Duration `toml:"window"`               // ["10s"]
	OpenFor             Duration `toml:"open_for"`             // base ejection; doubles per consecutive trip ["5s"]
	MaxOpenFor          Duration `toml:"max_open_for"`         // cap of the doubling ["60s"]
	HalfOpenRequests    int      `toml:"half_open_requests"`   // probes admitted while half-open [1]
	MaxEjectedPercent   *int     `toml:"max_ejected_percent"`  // never eject more than this share of the service [50]
	FailureStatus       []int    `toml:"failure_status"`       // upstream statuses counted as failures [502, 503, 504]
}

// Limits configures overload protection.
type Limits struct {
	MaxInFlight         int      `toml:"max_in_flight"`          // per instance; above it the instance is skipped [0 = off]
	RetryBudget         *float64 `toml:"retry_budget"`           // retries may add at most this share of requests [0.2]...
	MinRetriesPerSecond *int     `toml:"min_retries_per_second"` // ...plus this floor [3]
}

func (s *Service) setHealthDefaults() {
	h := &s.Health
	setDur(&h.Interval, 5*time.Second)
	setDur(&h.Timeout, time.Second)
	if h.Rise == 0 {
		h.Rise = 2
	}
	if h.Fall == 0 {
		h.Fall = 3
	}
	b := &s.Breaker
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = 5
	}
	if b.MinRequests == 0 {
		b.MinRequests = 20
	}
	setDur(&b.Window, 10*time.Second)
	setDur(&b.OpenFor, 5*time.Second)
	setDur(&b.MaxOpenFor, 60*time.Second)
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = 1
	}
	if b.MaxEjectedPercent == nil {
		b.MaxEjectedPercent = ptr(50)
	}
	if b.FailureStatus == nil {
		b.FailureStatus = []int{502, 503, 504}
	}
	l := &s.Limits
	if l.RetryBudget == nil {
		l.RetryBudget = ptr(0.2)
	}
	if l.MinRetriesPerSecond == nil {
		l.MinRetriesPerSecond = ptr(3)
	}
}

func (s *Service) validateHealth(v *validator, key string) {
	h, hk := &s.Health, key+".health"
	if h.Path != "" {
		if h.Path[0] != '/' {
			v.add(hk+".path", "%q must start with /", h.Path)
		}
		v.duration(hk+".interval", h.Interval)
		v.duration(hk+".timeout", h.Timeout)
	}
	positive(v, hk+".rise", h.Rise)
	positive(v, hk+".fall", h.Fall)
	for i, code := range h.ExpectStatus {
		if code < 100 || code > 599 {
			v.add(fmt.Sprintf("%s.expect_status[%d]", hk, i), "bad status %d", code)
		}
	}
	b, bk := &s.Breaker, key+".breaker"
	positive(v, bk+".consecutive_failures", b.ConsecutiveFailures)
	unitInterval(v, bk+".error_ratio", b.ErrorRatio)
	positive(v, bk+".min_requests", b.MinRequests)
	v.duration(bk+".window", b.Window)
	v.duration(bk+".open_for", b.OpenFor)
	v.duration(bk+".max_open_for", b.MaxOpenFor)
	if b.MaxOpenFor.err == "" && b.OpenFor.err == "" && b.MaxOpenFor.Duration < b.OpenFor.Duration {
		v.add(bk+".max_open_for", "%s is less than open_for %s", b.MaxOpenFor.Duration, b.OpenFor.Duration)
	}
	positive(v, bk+".half_open_requests", b.HalfOpenRequests)
	if p := *b.MaxEjectedPercent; p < 0 || p > 100 {
		v.add(bk+".max_ejected_percent", "must be within 0..100, got %d", p)
	}
	for i, code := range b.FailureStatus {
		if code < 100 || code > 599 {
			v.add(fmt.Sprintf("%s.failure_status[%d]", bk, i), "bad status %d", code)
		}
	}
	l, lk := &s.Limits, key+".limits"
	if l.MaxInFlight < 0 {
		v.add(lk+".max_in_flight", "must not be negative, got %d", l.MaxInFlight)
	}
	unitInterval(v, lk+".retry_budget", *l.RetryBudget)
	if *l.MinRetriesPerSecond < 0 {
		v.add(lk+".min_retries_per_second", "must not be negative, got %d", *l.MinRetriesPerSecond)
	}
}

// unitInterval requires 0 <= r <= 1. TOML has nan and inf: the check is
// written so that NaN fails it too (every comparison with NaN is false).
func unitInterval(v *validator, key string, r float64) {
	if !(r >= 0 && r <= 1) {
		v.add(key, "must be within 0..1, got %g", r)
	}
}

func positive(v *validator, key string, n int) {
	if n < 1 {
		v.add(key, "must be at least 1, got %d", n)
	}
}
