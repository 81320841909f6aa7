// Package ratelimit decides whether one more request for a key fits a
// [[rate_limits]] entry, with GCRA (the Generic Cell Rate Algorithm).
//
// A limit allows rate requests per period and bursts of up to burst requests
// at once. GCRA keeps one number per key, its theoretical arrival time (TAT):
// the instant at which the key's bucket is full again. With the emission
// interval T = per/rate and the burst tolerance tau = T*(burst-1), a request
// at now is allowed when max(TAT, now) - now <= tau, and then moves the TAT
// on by T. A fresh key therefore gets exactly burst requests at once, then one
// every T: rate = 100, per = "1s", burst = 50 allows 50 requests at once and
// one more every 10ms after that.
//
// Two stores keep the TATs:
//
//   - local: in this process, sharded, bounded by max_keys (see localStore for
//     the eviction policy). Time comes from Options.Clock.
//   - redis: one atomic Lua script per decision, so that several gateway
//     replicas share one limit. Time comes from Redis (TIME inside the
//     script), so replicas agree even when their clocks drift. When Redis is
//     unreachable the Limiter follows on_store_error.
//
// The package writes no headers and chooses no key: the gateway derives the
// key from the request and maps a Decision to 429, Retry-After and the
// RateLimit-* headers.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fastgate/fastgate/config"
)

// ErrConfig is wrapped by every error New returns for an unusable limit.
var ErrConfig = errors.New("ratelimit: invalid limit")

// DefaultRedisTimeout bounds a Redis decision when Options.RedisTimeout is 0.
const DefaultRedisTimeout = 100 * time.Millisecond

// Defaults New gives zero fields of config.RateLimit (the config package's).
const (
	defaultPer       = time.Second
	defaultMaxKeys   = 100000
	defaultRedisAddr = "127.0.0.1:6379"
)

// Decision is the answer for one request.
type Decision struct {
	// Allowed reports whether the request fits the limit.
	Allowed bool
	// Limit is the burst: the most requests a key may make at once
	// (RateLimit-Limit).
	Limit int
	// Remaining is how many more requests the key may make right now
	// (RateLimit-Remaining). 0 when denied and on a store error.
	Remaining int
	// ResetAfter is the time until the key's bucket is full again
	// (RateLimit-Reset). 0 on a store error.
	ResetAfter time.Duration
	// RetryAfter is, when denied, the time until one request fits again
	// (Retry-After); 0 when allowed. When a store error denies, it is 1s.
	RetryAfter time.Duration
	// StoreError reports that the store (Redis) could not answer and Allowed
	// follows on_store_error. Remaining and ResetAfter are then unknown (0):
	// the gateway should count it and may omit the RateLimit-* headers.
	StoreError bool
}

// Options are the process-level dependencies of a Limiter. The zero value
// is usable.
type Options struct {
	// Clock is the time source of the local store [time.Now]. Tests inject a
	// fake one to check refill timing without sleeping. The redis store
	// ignores it: it uses Redis's own clock so that replicas agree.
	Clock func() time.Time

	// OnStoreState is called once for every change of the redis store's
	// health: (false, err) when a call first fails after working (or on the
	// first call, if Redis is down from the start), (true, nil) when it
	// answers again. The store is presumed healthy at New. Calls are
	// serialized and made on the request path that saw the change, so the
	// function must be quick (the gateway logs) and must not call the
	// Limiter. Never called for the local store [nil: not reported].
	OnStoreState func(healthy bool, err error)

	// RedisTimeout bounds each Redis decision, dial included; past it the
	// decision follows on_store_error [DefaultRedisTimeout, 100ms]. While
	// Redis is failing, one request per 100ms tries it and the others
	// follow on_store_error at once, so a Redis that times out costs one
	// request per 100ms the timeout, not every request.
	RedisTimeout time.Duration
}

// Limiter applies one rate limit to many keys.
//
// It is safe calling Limiter methods from concurrently running goroutines.
// It is forbidden copying Limiter instances. Create new instances instead.
type Limiter struct {
	g     gcra
	clock func() time.Time
	base  time.Time // the local store's times are nanoseconds since base
	local *localStore
	redis *redisStore
}

// New returns a Limiter for cfg. Zero fields of cfg take the config
// package's defaults (per 1s, burst = rate, backend local, on_store_error
// allow, max_keys 100000, redis_addr 127.0.0.1:6379); cfg is not modified
// nor retained.
//
// The redis backend does not connect in New: a Redis that is down at start
// is reported by the first Allow, through OnStoreState.
func New(cfg *config.RateLimit, o Options) (*Limiter, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: no config", ErrConfig)
	}
	c := withDefaults(*cfg)
	g, err := newGCRA(c.Rate, c.Per.Duration, c.Burst)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrConfig, c.Name, err)
	}
	if c.OnStoreError != "allow" && c.OnStoreError != "deny" {
		return nil, fmt.Errorf("%w %q: on_store_error %q: want allow or deny", ErrConfig, c.Name, c.OnStoreError)
	}
	l := &Limiter{g: g, clock: o.Clock}
	if l.clock == nil {
		l.clock = time.Now
	}
	l.base = l.clock()
	switch c.Backend {
	case "local":
		if c.MaxKeys <= 0 || c.MaxKeys > math.MaxInt32 {
			return nil, fmt.Errorf("%w %q: max_keys must be in 1..%d, got %d", ErrConfig, c.Name, math.MaxInt32, c.MaxKeys)
		}
		l.local = newLocalStore(c.MaxKeys, maxShards)
	case "redis":
		if o.RedisTimeout <= 0 {
			o.RedisTimeout = DefaultRedisTimeout
		}
		l.redis, err = newRedisStore(&c, o)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrConfig, c.Name, err)
		}
	default:
		return nil, fmt.Errorf("%w %q: backend %q: want local or redis", ErrConfig, c.Name, c.Backend)
	}
	return l, nil
}

// withDefaults fills the zero fields of c like config's defaults do.
func withDefaults(c config.RateLimit) config.RateLimit {
	if c.Per.Duration == 0 {
		c.Per.Duration = defaultPer
	}
	if c.Burst == 0 {
		c.Burst = c.Rate
	}
	if c.Backend == "" {
		c.Backend = "local"
	}
	if c.RedisAddr == "" {
		c.RedisAddr = defaultRedisAddr
	}
	if c.OnStoreError == "" {
		c.OnStoreError = "allow"
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = defaultMaxKeys
	}
	return c
}

// Allow decides whether one more request for key fits the limit, and counts
// it when it does. key is only read during the call (the local store copies
// it when it first sees it).
//
// With the local store Allow takes one shard's mutex, never blocks otherwise
// and makes no allocation for a key it already tracks. With the redis store
// it makes one round trip, bounded by Options.RedisTimeout and by ctx.
func (l *Limiter) Allow(ctx context.Context, key []byte) Decision {
	if l.redis != nil {
		return l.redis.allow(ctx, key)
	}
	return l.local.allow(key, int64(l.clock().Sub(l.base)), &l.g)
}

// Close releases the Redis connections. Allow must not be called after
// Close. It is a no-op for the local store.
func (l *Limiter) Close() error {
	if l.redis != nil {
		return l.redis.close()
	}
	return nil
}

// gcra holds one limit's constants, in nanoseconds.
type gcra struct {
	t     int64 // emission interval T = per/rate
	tau   int64 // burst tolerance T*(burst-1)
	burst int
}

func newGCRA(rate int, per time.Duration, burst int) (gcra, error) {
	switch {
	case rate <= 0:
		return gcra{}, fmt.Errorf("rate must be positive, got %d", rate)
	case per <= 0:
		return gcra{}, fmt.Errorf("per must be positive, got %v", per)
	case burst <= 0:
		return gcra{}, fmt.Errorf("burst must be positive, got %d", burst)
	}
	t := int64(per) / int64(rate)
	if t == 0 {
		return gcra{}, fmt.Errorf("rate %d per %v is more than one request per nanosecond", rate, per)
	}
	if int64(burst-1) > math.MaxInt64/4/t {
		return gcra{}, fmt.Errorf("burst %d at rate %d per %v overflows", burst, rate, per)
	}
	return gcra{t: t, tau: t * int64(burst-1), burst: burst}, nil
}

// decide applies one request at now to a bucket whose TAT is tat (a TAT in
// the past means a full bucket) and returns the bucket's new TAT.
func (g *gcra) decide(tat, now int64) (int64, Decision) {
	if tat < now {
		tat = now
	}
	if tat-now > g.tau {
		return tat, g.denied(tat - now)
	}
	tat += g.t
	return tat, g.allowed(tat - now)
}

// allowed is the Decision for an allowed request that left the bucket's TAT
// ahead of now by ahead.
func (g *gcra) allowed(ahead int64) Decision {
	d := Decision{Allowed: true, Limit: g.burst, ResetAfter: time.Duration(ahead)}
	if ahead <= g.tau {
		d.Remaining = int((g.tau-ahead)/g.t) + 1
	}
	return d
}

// denied is the Decision for a denied request on a bucket whose TAT is ahead
// of now by ahead (> tau).
func (g *gcra) denied(ahead int64) Decision {
	return Decision{Limit: g.burst, ResetAfter: time.Duration(ahead), RetryAfter: time.Duration(ahead - g.tau)}
}
