package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// KeyPrefix starts every Redis key; the limit's name and a colon follow,
// then the request's key: "fastgate:rl:per-client:203.0.113.7".
const KeyPrefix = "fastgate:rl:"

// probeEvery is how often, while Redis is failing, one request is let
// through to Redis to find out whether it is back; the others follow
// on_store_error at once, so a Redis that times out costs one request per
// probeEvery the RedisTimeout, not every request.
const probeEvery = 100 * time.Millisecond

// errBadReply is reported when the script answers something unexpected.
var errBadReply = errors.New("ratelimit: unexpected reply from the Redis script")

// gcraScript is one GCRA decision, atomic in Redis. Times are integer
// microseconds: TIME's resolution, and exact in Lua's doubles.
//
// KEYS[1]: the bucket. ARGV[1]: T, ARGV[2]: tau (microseconds).
// Returns {allowed (1|0), TAT - now (microseconds)}. The key expires when
// its bucket is full again, so idle keys cost Redis nothing.
//
// The clock is Redis's (TIME), so every replica sharing a limit measures it
// against one clock. Redis 3.2 to 4 need replicate_commands() for TIME
// before a write; later versions replicate effects anyway.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tau then return {0, tat - now} end
tat = tat + T
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return {1, tat - now}
`

// redisStore keeps a limit's TATs in Redis and tracks Redis's health.
type redisStore struct {
	client   *redis.Client
	script   *redis.Script
	prefix   string // KeyPrefix + name + ":"
	args     []any  // T and tau in microseconds, boxed once
	g        gcra   // T and tau as the script sees them, in ns
	timeout  time.Duration
	failOpen bool // on_store_error = "allow"
	onState  func(healthy bool, err error)
	start    time.Time // probe times are monotonic ns since start

	mu        sync.Mutex    // serializes state changes and the onState calls
	healthy   atomic.Bool   // last state reported; written under mu
	gen       atomic.Uint64 // bumped on each state change, under mu
	nextProbe atomic.Int64  // while unhealthy: no Redis call before this (ns since start)
	closed    atomic.Bool
}

func newRedisStore(c *config.RateLimit, o Options) (*redisStore, error) {
	g, err := newGCRA(c.Rate, c.Per.Duration, c.Burst)
	if err != nil {
		return nil, err
	}
	tUS := g.t / 1000
	if tUS == 0 {
		return nil, fmt.Errorf("rate %d per %v is more than one request per microsecond, the redis backend's resolution", c.Rate, c.Per.Duration)
	}
	tauUS := tUS * int64(c.Burst-1)
	s := &redisStore{
		client:   redis.NewClient(clientOptions(c.RedisAddr, o.RedisTimeout)),
		script:   redis.NewScript(gcraScript),
		prefix:   KeyPrefix + c.Name + ":",
		args:     []any{strconv.FormatInt(tUS, 10), strconv.FormatInt(tauUS, 10)},
		g:        gcra{t: tUS * 1000, tau: tauUS * 1000, burst: c.Burst},
		timeout:  o.RedisTimeout,
		failOpen: c.OnStoreError == "allow",
		onState:  o.OnStoreState,
		start:    time.Now(),
	}
	s.healthy.Store(true)
	return s, nil
}

// clientOptions makes go-redis fail fast: every timeout is the decision's,
// one dial attempt, no retries, so an unreachable Redis never holds a
// request longer than timeout, and go-redis's own dial breaker (after
// PoolSize failed dials, one background dial a second) stops dial storms.
func clientOptions(addr string, timeout time.Duration) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		Protocol:              2, // plain RESP2: no HELLO, works with any Redis since 3.2
		DialTimeout:           timeout,
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // -1, not 0, disables go-redis's retries
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
}

// allow makes one decision in Redis, or follows on_store_error.
func (s *redisStore) allow(ctx context.Context, key []byte) Decision {
	if !s.healthy.Load() && !s.probeDue() {
		return s.storeError()
	}
	gen := s.gen.Load() // after the check: this call began after every change up to gen
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	res, err := s.script.Run(cctx, s.client, []string{s.prefix + string(key)}, s.args...).Int64Slice()
	cancel()
	if err == nil && len(res) != 2 {
		err = errBadReply
	}
	if err != nil {
		if ctx.Err() == nil { // the caller giving up says nothing about Redis
			s.setHealthy(false, err, gen)
		}
		return s.storeError()
	}
	s.setHealthy(true, nil, gen)
	if res[0] == 1 {
		return s.g.allowed(res[1] * 1000)
	}
	return s.g.denied(res[1] * 1000)
}

// storeError is the Decision on_store_error gives.
func (s *redisStore) storeError() Decision {
	d := Decision{Allowed: s.failOpen, Limit: s.g.burst, StoreError: true}
	if !d.Allowed {
		d.RetryAfter = time.Second
	}
	return d
}

// probeDue reports whether this request, while Redis is failing, is the one
// to try it (at most one per probeEvery).
func (s *redisStore) probeDue() bool {
	now := int64(time.Since(s.start))
	next := s.nextProbe.Load()
	return now >= next && s.nextProbe.CompareAndSwap(next, now+int64(probeEvery))
}

// setHealthy records the outcome of a call that began when the state
// generation was gen, and reports a change once. An outcome older than the
// last change (a call that began before it) changes nothing, so calls in
// flight when Redis dies cannot report it back and forth.
func (s *redisStore) setHealthy(ok bool, err error, gen uint64) {
	if s.healthy.Load() == ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.healthy.Load() == ok || s.gen.Load() != gen || s.closed.Load() {
		return
	}
	if !ok {
		s.nextProbe.Store(int64(time.Since(s.start) + probeEvery))
	}
	s.healthy.Store(ok)
	s.gen.Add(1)
	if s.onState != nil {
		s.onState(ok, err)
	}
}

func (s *redisStore) close() error {
	s.closed.Store(true)
	return s.client.Close()
}
