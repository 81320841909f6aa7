//go:build !race

package proxy

// Allocations and benchmarks of the edge middleware on the request path:
// a cache hit, an authenticated request (ES256), a rate-limited route
// (local store). As in alloc_test.go, g.Handle is called directly on a
// replayed raw request, the upstream a stub on an in-memory listener.

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// edgeBenchConfig has a route per middleware under test and a plain one;
// the rate limit is high enough never to reject in a benchmark. With
// withCache the [cache] table is there (and /cached caches); without it
// the other routes' costs are their own.
func edgeBenchConfig(tb testing.TB, withCache bool) string {
	cache := ""
	if withCache {
		cache = "[cache]\nmax_bytes = \"16MiB\"\n[[routes]]\nprefix = \"/cached\"\nservice = \"svc\"\ncache_ttl = \"1h\"\n"
	}
	return cache + `
[log]
access = true
[[services]]
name = "svc"
timeout = "5s"
  [[services.instances]]
  id = "u1"
  addr = "upstream:1"
[[rate_limits]]
name = "bench"
rate = 1000000000
per = "1s"
burst = 1000000000
[[routes]]
prefix = "/plain"
service = "svc"
[[routes]]
prefix = "/jwt"
service = "svc"
auth = "jwt"
[[routes]]
prefix = "/limited"
service = "svc"
rate_limit = "bench"
` + edgeJWTTable(tb)
}

// newEdgeBenchGateway is newBenchGateway with edgeBenchConfig; it returns
// the gateway and a valid ES256 token for its /jwt route.
func newEdgeBenchGateway(tb testing.TB, withCache bool) (*Gateway, string) {
	tb.Helper()
	upLn := fasthttputil.NewInmemoryListener()
	up, err := stub.Start(stub.Options{ID: "u1", Listener: upLn, BodySize: 256})
	if err != nil {
		tb.Fatal(err)
	}
	toml := edgeBenchConfig(tb, withCache)
	cfg, err := config.Parse([]byte(toml))
	if err != nil {
		tb.Fatal(err)
	}
	logw := NewAsyncWriter(io.Discard, 0, 0)
	g := mustNew(tb, cfg, Options{Log: zerolog.Nop(), Access: logw, Dial: func(string) (net.Conn, error) { return upLn.Dial() }})
	tb.Cleanup(func() {
		g.edge.close()
		for _, u := range g.upstreams {
			u.svc.Close()
		}
		_ = up.Close()
		_ = logw.Close()
	})
	return g, mint(tb, cfg.Auth.JWT, "42", 24*time.Hour, time.Now())
}

// edgeRequests are the raw requests of the three cases.
func edgeRequests(token string) map[string]string {
	return map[string]string{
		"cache hit":    "GET /cached/v1/items/1?b=2&a=1 HTTP/1.1\r\nHost: gateway\r\nUser-Agent: bench\r\n\r\n",
		"jwt":          "GET /jwt/v1/me HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer " + token + "\r\nX-User-ID: 999\r\n\r\n",
		"rate limited": "GET /limited/v1/items HTTP/1.1\r\nHost: gateway\r\n\r\n",
		"plain":        "GET /plain/v1/items HTTP/1.1\r\nHost: gateway\r\n\r\n",
	}
}

// edgeCtx is a RequestCtx from 127.0.0.1, as the server would make it.
func edgeCtx() *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}, nil)
	return &ctx
}

// jwtAllocsMax bounds an authenticated request's allocations once its
// token has been verified: the verifier remembers it (auth/seen.go), so
// golang-jwt's parse and the ECDSA check (84 allocations) run once per
// token, not per request.
const jwtAllocsMax = 0

// TestEdgeAllocs keeps the cache hit and the rate-limited route
// allocation-free, and the authenticated request near its measured cost.
func TestEdgeAllocs(t *testing.T) {
	for _, tt := range []struct {
		name      string
		withCache bool   // a [cache] table in the config
		xcache    string // X-Cache, when checked
		max       float64
	}{
		{"cache hit", true, "HIT", 0},
		{"rate limited", false, "", 0},
		{"jwt", false, "", jwtAllocsMax},
		// A route without cache_ttl does not touch the cache, even when
		// a [cache] table exists: it pays nothing for it.
		{"plain", true, "", 0},
		{"rate limited", true, "", 0},
	} {
		name := tt.name
		if tt.withCache {
			name += " with [cache]"
		}
		t.Run(name, func(t *testing.T) {
			g, token := newEdgeBenchGateway(t, tt.withCache)
			ctx := edgeCtx()
			rr := newRawRequest(edgeRequests(token)[tt.name])
			rr.handleOnce(g, ctx) // warm pools; for the cache, store the entry
			rr.handleOnce(g, ctx)
			if got := ctx.Response.StatusCode(); got != 200 {
				t.Fatalf("status %d (%s), want 200", got, ctx.Response.Body())
			}
			if got := string(ctx.Response.Header.Peek("X-Cache")); got != tt.xcache {
				t.Fatalf("X-Cache %q, want %q", got, tt.xcache)
			}
			allocs := testing.AllocsPerRun(200, func() { rr.handleOnce(g, ctx) })
			t.Logf("%s: %v allocs per request", name, allocs)
			if allocs > tt.max {
				t.Errorf("%v allocs per request, want <= %v", allocs, tt.max)
			}
		})
	}
}

func benchmarkEdge(b *testing.B, name string, withCache bool) {
	g, token := newEdgeBenchGateway(b, withCache)
	ctx := edgeCtx()
	rr := newRawRequest(edgeRequests(token)[name])
	rr.handleOnce(g, ctx)
	b.ReportAllocs()
	for b.Loop() {
		rr.handleOnce(g, ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkHandleCacheHit is a GET answered from the response cache.
func BenchmarkHandleCacheHit(b *testing.B) { benchmarkEdge(b, "cache hit", true) }

// BenchmarkHandleJWT is a GET with a valid ES256 bearer token, proxied.
func BenchmarkHandleJWT(b *testing.B) { benchmarkEdge(b, "jwt", false) }

// BenchmarkHandleRateLimited is a GET on a route with a local rate limit,
// proxied.
func BenchmarkHandleRateLimited(b *testing.B) { benchmarkEdge(b, "rate limited", false) }
