// Package health decides whether upstream instances should receive traffic:
// active checks (Checker) probe each instance on a schedule, and a circuit
// breaker per instance (Breaker) ejects one that fails requests.
//
// Following Traefik, health defines the small interface its targets
// implement (Target) and imports no package of the gateway: the balancer's
// instances implement Target, and the balancer consults Breakers on its pick.
package health

import "time"

// Target is what the active checker drives.
type Target interface {
	// Addr is the host:port to probe.
	Addr() string
	// SetHealthy marks the target up or down and reports whether that
	// changed its state.
	SetHealthy(up bool) (changed bool)
}

// Clock tells the time. Breakers and checkers take one so that tests can
// drive time by hand; SystemClock is the real one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
