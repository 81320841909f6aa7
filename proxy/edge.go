package proxy

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/aggregate"
	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/cache"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/ratelimit"
	"github.com/valyala/fasthttp"
)

// edgeShared is what the edge middleware shares across routes: the CORS
// policy, the JWT verifier, the rate limiters and the cache, each nil when
// its table is absent. Immutable after newEdgeShared (the parts are safe
// for concurrent use).
type edgeShared struct {
	cors     *corsPolicy
	verifier *auth.Verifier
	limiters map[string]*limiter
	cache    *cache.Cache

	authFailures map[string]*metrics.Counter // by auth.Reason
	cacheResults [numCacheResults]*metrics.Counter
}

type cacheResult uint8

const (
	cacheHit    cacheResult = iota
	cacheMiss               // fetched upstream, perhaps stored
	cacheBypass             // not a cacheable request (method, no-store...)
	numCacheResults
)

var cacheResultNames = [numCacheResults]string{"hit", "miss", "bypass"}

// limiter is a [[rate_limits]] entry with its key rule and series.
type limiter struct {
	l           *ratelimit.Limiter
	name        string
	key         byte   // 'i' ip, 'u' user, 'h' header
	header      []byte // for key = header:NAME
	rejected    *metrics.Counter
	storeErrors *metrics.Counter
}

// edgeRoute is one route's or aggregate's middleware switches, resolved.
// Immutable.
type edgeRoute struct {
	cors      bool
	auth      bool
	aggregate bool // an aggregate's: the user fills {user_id}
	trustUser bool // aggregate with trust_user_header: keep the client's X-User-ID for {user_id}
	limit     *limiter
	cacheOn   bool
	cacheTTL  time.Duration
}

func (g *Gateway) newEdgeShared(cfg *config.Config, o Options) (*edgeShared, error) {
	e := &edgeShared{limiters: map[string]*limiter{}, authFailures: map[string]*metrics.Counter{}}
	if cfg.CORS != nil {
		e.cors = newCORSPolicy(cfg.CORS)
	}
	if cfg.Auth.JWT != nil {
		v, err := auth.NewVerifier(cfg.Auth.JWT, auth.Options{
			OnRefreshError: func(err error) { g.log.Warn().Err(err).Msg("jwks refresh failed; keeping the last good keys") },
		})
		if err != nil {
			return nil, err
		}
		e.verifier = v
		for _, r := range auth.Reasons() {
			e.authFailures[r] = g.metrics.NewCounter(`fastgate_auth_failures_total{reason=` + quote(r) + `}`)
		}
	}
	for i := range cfg.RateLimits {
		rc := &cfg.RateLimits[i]
		l, err := g.newLimiter(rc)
		if err != nil {
			e.close()
			return nil, err
		}
		e.limiters[rc.Name] = l
	}
	if cfg.Cache != nil {
		e.cache = cache.New(cfg.Cache.MaxBytes.N, cache.Options{
			DefaultTTL: cfg.Cache.DefaultTTL.Duration,
			// set by the gateway after the lookup (setForwardedHeaders,
			// authenticate); X-User-ID is also taken off before it
			Rewritten: []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Gateway-Service", "X-Request-ID", "X-User-ID"},
		})
		for r := range numCacheResults {
			e.cacheResults[r] = g.metrics.NewCounter(`fastgate_cache_requests_total{result="` + cacheResultNames[r] + `"}`)
		}
		c := e.cache
		g.metrics.NewGauge("fastgate_cache_bytes", func() float64 { return float64(c.Stats().Bytes) })
	}
	return e, nil
}

func (g *Gateway) newLimiter(rc *config.RateLimit) (*limiter, error) {
	name := rc.Name
	rl, err := ratelimit.New(rc, ratelimit.Options{
		OnStoreState: func(healthy bool, err error) {
			if healthy {
				g.log.Info().Str("limit", name).Msg("rate limit store reachable again")
			} else {
				g.log.Warn().Str("limit", name).Err(err).Str("on_store_error", rc.OnStoreError).Msg("rate limit store unreachable")
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rate limit %s: %w", name, err)
	}
	l := &limiter{
		l:           rl,
		name:        name,
		key:         rc.Key[0],
		rejected:    g.metrics.NewCounter(`fastgate_ratelimit_rejected_total{limit=` + quote(name) + `}`),
		storeErrors: g.metrics.NewCounter(`fastgate_ratelimit_store_errors_total{limit=` + quote(name) + `}`),
	}
	if h, ok := strings.CutPrefix(rc.Key, "header:"); ok {
		l.header = canonical(h)
	}
	return l, nil
}

func (e *edgeShared) close() {
	if e.verifier != nil {
		_ = e.verifier.Close()
	}
	for _, l := range e.limiters {
		_ = l.l.Close()
	}
}

func (e *edgeShared) route(c *config.Edge) *edgeRoute {
	r := &edgeRoute{cors: c.CORS, auth: c.Auth == "jwt", limit: e.limiters[c.RateLimit]}
	if e.cache != nil && c.CacheTTL.IsSet() { // only routes that ask for it
		r.cacheOn, r.cacheTTL = true, c.CacheTTL.Duration
	}
	return r
}

var (
	headerAuthorization = canonical("Authorization")
	headerUserID        = canonical("X-User-ID")
	headerWWWAuth       = canonical("WWW-Authenticate")
	headerXCache        = canonical("X-Cache")
	headerRLLimit       = canonical("RateLimit-Limit")
	headerRLRemaining   = canonical("RateLimit-Remaining")
	headerRLReset       = canonical("RateLimit-Reset")
	bearerInvalid       = []byte(`Bearer error="invalid_token"`)
	bearerMissing       = []byte(`Bearer realm="fastgate"`)
	valueHIT            = []byte("HIT")
	valueMISS           = []byte("MISS")
)

const (
	msgUnauthorized = "invalid or missing bearer token"
	msgRateLimited  = "rate limit exceeded"
)

// preflight answers a CORS preflight for a route with cors on, before the
// method check (browsers send OPTIONS whatever the route's methods), and
// reports whether it did.
func (g *Gateway) preflight(ctx *fasthttp.RequestCtx, x *exchange, er *edgeRoute) bool {
	if !er.cors || !isPreflight(&ctx.Request) {
		return false
	}
	g.edge.cors.preflight(ctx)
	ctx.Response.Header.SetCanonical(headerRequestID, x.id)
	return true
}

// before runs the request-side middleware of a route or aggregate, in the
// seed's order: authentication, rate limiting, cache lookup (the CORS
// preflight came first). It reports whether it answered the request
// itself, CORS headers included. A client's X-User-ID is removed on every
// route, authenticated or not.
func (g *Gateway) before(ctx *fasthttp.RequestCtx, x *exchange, er *edgeRoute, query []byte) bool {
	if er.trustUser && !er.auth {
		// An aggregate behind an authenticating proxy: the header is the
		// user. Copied, since the header's storage changes on delete.
		if v := ctx.Request.Header.PeekCanonical(headerUserID); len(v) > 0 {
			x.trustedUser = append(x.trustedUser[:0], v...)
			ctx.SetUserValue(aggregate.UserID, x.trustedUser)
		}
	}
	if len(ctx.Request.Header.PeekCanonical(headerUserID)) > 0 {
		ctx.Request.Header.DelBytes(headerUserID)
	}
	answered := er.auth && !g.authenticate(ctx, x, er.aggregate) ||
		er.limit != nil && !g.rateLimit(ctx, x, er.limit) ||
		er.cacheOn && g.cacheLookup(ctx, x, query)
	if answered {
		g.decorate(ctx, x, er)
	}
	return answered
}

// after runs the response-side middleware once the upstream answered:
// cache store (releasing waiters), CORS and rate-limit headers.
func (g *Gateway) after(ctx *fasthttp.RequestCtx, x *exchange, er *edgeRoute, query []byte) {
	if x.cacheMiss {
		g.edge.cache.Store(&ctx.Request, x.path, query, &ctx.Response, er.cacheTTL)
		ctx.Response.Header.SetCanonical(headerXCache, valueMISS)
		x.flight.Done()
		x.flight = nil
	}
	g.decorate(ctx, x, er)
}

// decorate adds the CORS and rate-limit headers to whatever answer ctx
// holds.
func (g *Gateway) decorate(ctx *fasthttp.RequestCtx, x *exchange, er *edgeRoute) {
	if er.cors {
		g.edge.cors.decorate(ctx)
	}
	if x.limited {
		setRateLimitHeaders(&ctx.Response.Header, &x.decision)
	}
}

// authenticate verifies the bearer token; on success the upstream gets
// X-User-ID (the sub claim) and, for an aggregate, {user_id}.
func (g *Gateway) authenticate(ctx *fasthttp.RequestCtx, x *exchange, forAggregate bool) bool {
	claims, err := g.edge.verifier.Verify(ctx.Request.Header.PeekCanonical(headerAuthorization))
	if err != nil {
		reason := auth.Reason(err)
		if c := g.edge.authFailures[reason]; c != nil {
			c.Inc()
		}
		writeError(ctx, fasthttp.StatusUnauthorized, msgUnauthorized, x.id)
		if reason == "missing" {
			ctx.Response.Header.SetCanonical(headerWWWAuth, bearerMissing)
		} else {
			ctx.Response.Header.SetCanonical(headerWWWAuth, bearerInvalid)
		}
		return false
	}
	x.user = claims.Subject
	ctx.Request.Header.SetCanonical(headerUserID, s2b(claims.Subject))
	if forAggregate {
		ctx.SetUserValue(aggregate.UserID, claims.Subject) // boxing allocates: only where used
	}
	return true
}

// rateLimit applies l to the request's key; over the limit it answers 429.
func (g *Gateway) rateLimit(ctx *fasthttp.RequestCtx, x *exchange, l *limiter) bool {
	x.scratch = appendLimitKey(x.scratch[:0], ctx, x, l, g)
	d := l.l.Allow(ctx, x.scratch)
	if d.StoreError {
		l.storeErrors.Inc()
	}
	x.decision, x.limited, x.waited = d, !d.StoreError, true
	if d.Allowed {
		return true
	}
	l.rejected.Inc()
	writeError(ctx, fasthttp.StatusTooManyRequests, msgRateLimited, x.id)
	secs := int64((d.RetryAfter + time.Second - 1) / time.Second)
	ctx.Response.Header.SetCanonical(headerRetryAfter, strconv.AppendInt(x.scratch[:0], max(secs, 1), 10))
	setRateLimitHeaders(&ctx.Response.Header, &d)
	return false
}

// appendLimitKey appends the bucket key: "ip:ADDR" (the client address
// from the trusted-proxy rules, so a spoofed X-Forwarded-For cannot pick a
// fresh bucket), "u:SUB", or "h:VALUE" (falling back to the address when
// the header is absent); a SUB or VALUE over maxKeyValue bytes is hashed
// (appendKeyValue).
func appendLimitKey(dst []byte, ctx *fasthttp.RequestCtx, x *exchange, l *limiter, g *Gateway) []byte {
	switch l.key {
	case 'u':
		if x.user != "" {
			return appendKeyValue(dst, "u:", "u#", s2b(x.user))
		}
	case 'h':
		if v := ctx.Request.Header.PeekCanonical(l.header); len(v) > 0 {
			return appendKeyValue(dst, "h:", "h#", v)
		}
	}
	return g.clientIP(ctx, x).AppendTo(append(dst, "ip:"...))
}

// maxKeyValue bounds the client-chosen part of a bucket key kept as is.
const maxKeyValue = 64

// appendKeyValue appends prefix and v, or, when v is longer than
// maxKeyValue, hashed and the SHA-256 of v (its first 16 bytes, in hex).
// A store keeps every key it admits until evicted: bounded keys bound its
// memory (max_keys x about 100 bytes) where a client's 8 KiB header value
// would take 8 KiB each. The hash is the same in every gateway, so shared
// (Redis) limits agree, and a client cannot aim at another's bucket.
func appendKeyValue(dst []byte, prefix, hashed string, v []byte) []byte {
	if len(v) <= maxKeyValue {
		return append(append(dst, prefix...), v...)
	}
	sum := sha256.Sum256(v)
	dst = append(dst, hashed...)
	for _, b := range sum[:16] {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

func setRateLimitHeaders(h *fasthttp.ResponseHeader, d *ratelimit.Decision) {
	var buf [20]byte
	h.SetCanonical(headerRLLimit, strconv.AppendInt(buf[:0], int64(d.Limit), 10))
	h.SetCanonical(headerRLRemaining, strconv.AppendInt(buf[:0], int64(d.Remaining), 10))
	h.SetCanonical(headerRLReset, strconv.AppendInt(buf[:0], int64((d.ResetAfter+time.Second-1)/time.Second), 10))
}

// cacheLookup answers from the cache when it can. On a miss it may hold a
// flight (concurrent misses for the key wait for this request's fetch).
func (g *Gateway) cacheLookup(ctx *fasthttp.RequestCtx, x *exchange, query []byte) bool {
	m := ctx.Request.Header.Method()
	if string(m) != fasthttp.MethodGet && string(m) != fasthttp.MethodHead {
		g.edge.cacheResults[cacheBypass].Inc()
		return false
	}
	hit, _, f := g.edge.cache.Get(&ctx.Request, x.path, query, &ctx.Response, x.deadline)
	if hit {
		g.edge.cacheResults[cacheHit].Inc()
		ctx.Response.Header.SetCanonical(headerXCache, valueHIT)
		ctx.Response.Header.SetCanonical(headerRequestID, x.id)
		return true
	}
	g.edge.cacheResults[cacheMiss].Inc()
	x.flight, x.cacheMiss, x.waited = f, true, true
	return false
}
