package proxy

// End-to-end tests of issue 6 (the edge middleware: JWT auth, rate limiting,
// local and shared through Redis, CORS, the response cache): the gateway,
// stub upstreams and a real redis-server on loopback sockets. Helpers
// shared with e2e_test.go are in e2e_helpers_test.go.

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

// edgeKeyFile is the absolute path of a demo key file in keys/.
func edgeKeyFile(tb testing.TB, name string) string {
	tb.Helper()
	p, err := filepath.Abs(filepath.Join("..", "keys", name))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// edgeJWTTable is an [auth.jwt] table on the demo keys, as the demo config
// has it, with absolute file names.
func edgeJWTTable(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf(`
[auth.jwt]
algorithms = ["RS256", "ES256"]
issuer = "https://auth.fastgate.local"
audience = ["api"]
jwks_file = %q
signing_key_file = %q
leeway = "30s"
`, edgeKeyFile(tb, "jwks.json"), edgeKeyFile(tb, "demo-es256.pem"))
}

// edgeJWT parses toml (which must hold an [auth.jwt] table) and returns
// that table, for auth.Mint.
func edgeJWT(tb testing.TB, toml string) *config.JWT {
	tb.Helper()
	cfg, err := config.Parse([]byte(toml))
	if err != nil {
		tb.Fatalf("config.Parse: %v", err)
	}
	if cfg.Auth.JWT == nil {
		tb.Fatal("no [auth.jwt] table")
	}
	return cfg.Auth.JWT
}

// mint is auth.Mint for tests.
func mint(tb testing.TB, cfg *config.JWT, sub string, ttl time.Duration, now time.Time) string {
	tb.Helper()
	tok, err := auth.Mint(cfg, sub, ttl, now)
	if err != nil {
		tb.Fatalf("auth.Mint: %v", err)
	}
	return tok
}

// jwtHeader decodes the JOSE header of a compact token.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("token header %q: %v", seg, err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("token header %s: %v", raw, err)
	}
	return h
}

// edgeService is a [[services]] entry with one instance.
func edgeService(name, addr string) string {
	return fmt.Sprintf(`
[[services]]
name = %q
timeout = "2s"
  [[services.instances]]
  id = "%s-1"
  addr = %q
`, name, name, addr)
}

// startHandlerStub is startStub with a stub.Options.Handler.
func startHandlerStub(t *testing.T, id string, latency time.Duration, h func(ctx *fasthttp.RequestCtx) bool) *stub.Server {
	t.Helper()
	s, err := stub.Start(stub.Options{ID: id, Addr: "127.0.0.1:0", Latency: latency, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	s.Record(true)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stub %s Close: %v", id, err)
		}
	})
	return s
}

// receivedURI counts the requests for uri the stub recorded.
func receivedURI(s *stub.Server, uri string) int {
	n := 0
	for _, r := range s.Received() {
		if r.URI == uri {
			n++
		}
	}
	return n
}

// lastReceivedURI is the last recorded request for uri.
func lastReceivedURI(t *testing.T, s *stub.Server, uri string) stub.Request {
	t.Helper()
	got := s.Received()
	for i := len(got) - 1; i >= 0; i-- {
		if got[i].URI == uri {
			return got[i]
		}
	}
	t.Fatalf("stub %s never received %s (got %d requests)", s.ID(), uri, len(got))
	return stub.Request{}
}

// metricDelta returns a function that reports how much series grew since
// metricDelta was called.
func metricDelta(t *testing.T, gw *e2eGateway, series string) func() float64 {
	t.Helper()
	before := metricValue(t, scrape(t, gw), series)
	return func() float64 {
		t.Helper()
		return metricValue(t, scrape(t, gw), series) - before
	}
}

// bearer is an Authorization header pair for do.
func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestE2EEdgeJWT(t *testing.T) {
	s := startStub(t, "u1", 0)
	toml := edgeService("svc", s.Addr()) + `
[[routes]]
prefix = "/auth"
service = "svc"
auth = "jwt"
[[routes]]
prefix = "/open"
service = "svc"
auth = "none"

[[aggregates]]
path = "/agg/me"
auth = "jwt"
  [[aggregates.parts]]
  key = "profile"
  service = "svc"
  path = "/internal/users/{user_id}/profile"
  required = true
` + edgeJWTTable(t)
	gw := startGateway(t, toml)
	c := newClient(t, gw.addr)
	jc := edgeJWT(t, toml)
	now := time.Now()
	valid := mint(t, jc, "42", time.Hour, now)

	t.Run("valid ES256", func(t *testing.T) {
		if h := jwtHeader(t, valid); h["alg"] != "ES256" || h["kid"] != "demo-es256" {
			t.Fatalf("minted token header %v, want alg ES256 kid demo-es256", h)
		}
		r := do(t, c, "GET", "/auth/x", nil, append(bearer(valid), "X-User-ID", "999")...)
		if r.status != 200 {
			t.Fatalf("status %d (%s), want 200", r.status, r.body)
		}
		got := upstreamHeaders(lastReceivedURI(t, s, "/auth/x"))["x-user-id"]
		if len(got) != 1 || got[0] != "42" {
			t.Errorf("upstream X-User-ID %q, want exactly [42] (the client's 999 removed, sub set)", got)
		}
	})

	t.Run("X-User-ID named in Connection", func(t *testing.T) {
		// Hop-by-hop headers go before the middleware runs: the client
		// cannot make the gateway strip the X-User-ID it sets.
		r := do(t, c, "GET", "/auth/conn", nil, append(bearer(valid), "Connection", "X-User-ID")...)
		if r.status != 200 {
			t.Fatalf("status %d (%s), want 200", r.status, r.body)
		}
		if got := upstreamHeaders(lastReceivedURI(t, s, "/auth/conn"))["x-user-id"]; len(got) != 1 || got[0] != "42" {
			t.Errorf("upstream X-User-ID %q, want [42]", got)
		}
	})

	t.Run("repeated X-User-ID", func(t *testing.T) {
		r := dialRaw(t, gw.addr).roundTrip("GET /auth/dup HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer " + valid +
			"\r\nX-User-ID: 999\r\nx-user-id: 998\r\n\r\n")
		if r.status != 200 {
			t.Fatalf("status %d (%s), want 200", r.status, r.body)
		}
		if got := upstreamHeaders(lastReceivedURI(t, s, "/auth/dup"))["x-user-id"]; len(got) != 1 || got[0] != "42" {
			t.Errorf("upstream X-User-ID %q, want [42]", got)
		}
	})

	t.Run("valid RS256", func(t *testing.T) {
		rs := *jc
		rs.SigningKeyFile = edgeKeyFile(t, "demo-rs256.pem")
		tok := mint(t, &rs, "rsa-user", time.Hour, now)
		if h := jwtHeader(t, tok); h["alg"] != "RS256" {
			t.Fatalf("minted token header %v, want alg RS256", h)
		}
		if r := do(t, c, "GET", "/auth/rs", nil, bearer(tok)...); r.status != 200 {
			t.Fatalf("status %d (%s), want 200", r.status, r.body)
		}
		if got := upstreamHeaders(lastReceivedURI(t, s, "/auth/rs"))["x-user-id"]; len(got) != 1 || got[0] != "rsa-user" {
			t.Errorf("upstream X-User-ID %q, want [rsa-user]", got)
		}
	})

	t.Run("demo config mints accepted tokens", func(t *testing.T) {
		// What `fastgate token` does: auth.Mint with the demo config's
		// [auth.jwt], its files resolved next to it.
		demo, err := config.Load(filepath.Join("..", "config.toml"))
		if err != nil {
			t.Fatalf("loading the demo config: %v", err)
		}
		if demo.Auth.JWT == nil {
			t.Fatal("the demo config has no [auth.jwt]")
		}
		tok := mint(t, demo.Auth.JWT, "7", time.Hour, time.Now())
		if r := do(t, c, "GET", "/auth/demo", nil, bearer(tok)...); r.status != 200 {
			t.Fatalf("status %d (%s), want 200 for a token minted with the demo config", r.status, r.body)
		}
		if got := upstreamHeaders(lastReceivedURI(t, s, "/auth/demo"))["x-user-id"]; len(got) != 1 || got[0] != "7" {
			t.Errorf("upstream X-User-ID %q, want [7]", got)
		}
	})

	t.Run("client X-User-ID removed on a route without auth", func(t *testing.T) {
		for _, hdr := range [][]string{
			{"X-User-ID", "999"},
			{"x-user-id", "999"},
			append(bearer(valid), "X-User-Id", "999"), // a token does not count on auth = "none"
		} {
			if r := do(t, c, "GET", "/open/x", nil, hdr...); r.status != 200 {
				t.Fatalf("status %d, want 200", r.status)
			}
			if got, ok := upstreamHeaders(lastReceivedURI(t, s, "/open/x"))["x-user-id"]; ok {
				t.Errorf("headers %q: upstream got X-User-ID %q, want none", hdr, got)
			}
		}
	})

	t.Run("missing token", func(t *testing.T) {
		calls := s.Requests()
		failed := metricDelta(t, gw, `fastgate_auth_failures_total{reason="missing"}`)
		for _, hdr := range [][]string{nil, {"Authorization", "Basic dXNlcjpwdw=="}, {"Authorization", "Bearer "}} {
			r := do(t, c, "GET", "/auth/x", nil, hdr...)
			checkErrorAnswer(t, r, 401)
			if w := r.get("WWW-Authenticate"); !strings.HasPrefix(w, "Bearer") {
				t.Errorf("Authorization %q: WWW-Authenticate %q, want a Bearer challenge", hdr, w)
			}
		}
		if n := s.Requests(); n != calls {
			t.Errorf("upstream called %d times for 401s", n-calls)
		}
		if d := failed(); d != 3 {
			t.Errorf(`fastgate_auth_failures_total{reason="missing"} grew by %v, want 3`, d)
		}
	})

	payload := strings.Split(valid, ".")[1]
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + "."
	sig := []byte(strings.Split(valid, ".")[2])
	if sig[20] == 'A' {
		sig[20] = 'B'
	} else {
		sig[20] = 'A'
	}
	badSig := strings.Join(strings.Split(valid, ".")[:2], ".") + "." + string(sig)
	expired := mint(t, jc, "42", time.Minute, now.Add(-time.Hour))
	otherIss := *jc
	otherIss.Issuer = "https://evil.example"
	wrongIss := mint(t, &otherIss, "42", time.Hour, now)

	// alg switched to HS256, signed with the RSA public key as the secret.
	rsaPub := func() []byte {
		raw, err := os.ReadFile(edgeKeyFile(t, "demo-rs256.pem"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(raw)
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(k.(crypto.Signer).Public())
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: "42", Issuer: jc.Issuer, Audience: jwt.ClaimStrings{"api"},
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	})
	hs.Header["kid"] = "demo-rs256"
	hsTok, err := hs.SignedString(rsaPub)
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ name, token, reason string }{
		{"expired", expired, "expired"},
		{"alg none", noneTok, "algorithm"},
		{"bad signature", badSig, "signature"},
		{"HS256 with the RSA public key", hsTok, "algorithm"},
		{"wrong issuer", wrongIss, "issuer"},
		{"malformed", "abc.def", "malformed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := s.Requests()
			failed := metricDelta(t, gw, `fastgate_auth_failures_total{reason="`+tt.reason+`"}`)
			r := do(t, c, "GET", "/auth/x", nil, append(bearer(tt.token), "X-User-ID", "42")...)
			checkErrorAnswer(t, r, 401)
			if w := r.get("WWW-Authenticate"); w != `Bearer error="invalid_token"` {
				t.Errorf(`WWW-Authenticate %q, want Bearer error="invalid_token"`, w)
			}
			if n := s.Requests(); n != calls {
				t.Errorf("upstream called %d times for a 401", n-calls)
			}
			if d := failed(); d != 1 {
				t.Errorf(`fastgate_auth_failures_total{reason=%q} grew by %v, want 1`, tt.reason, d)
			}
		})
	}

	t.Run("aggregate user_id from sub", func(t *testing.T) {
		tok := mint(t, jc, "sub-77", time.Hour, now)
		r := do(t, c, "GET", "/agg/me", nil, append(bearer(tok), "X-User-ID", "999")...)
		if r.status != 200 {
			t.Fatalf("status %d (%s), want 200", r.status, r.body)
		}
		got := lastReceivedURI(t, s, "/internal/users/sub-77/profile")
		if h := upstreamHeaders(got)["x-user-id"]; len(h) != 1 || h[0] != "sub-77" {
			t.Errorf("part X-User-ID %q, want [sub-77]", h)
		}
		if n := receivedURI(s, "/internal/users/999/profile"); n != 0 {
			t.Errorf("the client's X-User-ID filled {user_id} (%d calls)", n)
		}

		calls := s.Requests()
		checkErrorAnswer(t, do(t, c, "GET", "/agg/me", nil, "X-User-ID", "999"), 401)
		if n := s.Requests(); n != calls {
			t.Errorf("parts called %d times for a 401", n-calls)
		}
	})
}

// TestE2EEdgeTrustedUserHeaderAggregate: an aggregate with
// trust_user_header = true (the demo's /api/v1/dashboard, "for gateways
// behind an authenticating proxy") takes {user_id} from the client's
// X-User-ID; routes and other aggregates still drop that header.
func TestE2EEdgeTrustedUserHeaderAggregate(t *testing.T) {
	s := startStub(t, "u1", 0)
	gw := startGateway(t, edgeService("svc", s.Addr())+`
[[aggregates]]
path = "/agg/dashboard"
trust_user_header = true
  [[aggregates.parts]]
  key = "profile"
  service = "svc"
  path = "/internal/users/{user_id}/profile"
  required = true
`)
	c := newClient(t, gw.addr)
	r := do(t, c, "GET", "/agg/dashboard", nil, "X-User-ID", "42")
	if r.status != 200 {
		t.Fatalf("status %d (%s), want 200 with {user_id} = 42 from the trusted X-User-ID", r.status, r.body)
	}
	if n := receivedURI(s, "/internal/users/42/profile"); n != 1 {
		t.Errorf("part /internal/users/42/profile called %d times, want 1", n)
	}
}

func TestE2EEdgeRateLimitLocal(t *testing.T) {
	s := startStub(t, "u1", 0)
	toml := edgeService("svc", s.Addr()) + `
[[rate_limits]]
name = "per-ip"
rate = 1
per = "1h"
burst = 3
[[rate_limits]]
name = "spoof"
rate = 1
per = "1h"
burst = 2
[[rate_limits]]
name = "per-key"
rate = 1
per = "1h"
burst = 2
key = "header:X-Api-Key"
[[rate_limits]]
name = "per-user"
rate = 1
per = "1h"
burst = 2
key = "user"

[[routes]]
prefix = "/ip"
service = "svc"
rate_limit = "per-ip"
[[routes]]
prefix = "/spoof"
service = "svc"
rate_limit = "spoof"
[[routes]]
prefix = "/key"
service = "svc"
rate_limit = "per-key"
[[routes]]
prefix = "/user"
service = "svc"
auth = "jwt"
rate_limit = "per-user"
[[routes]]
prefix = "/free"
service = "svc"
` + edgeJWTTable(t)
	gw := startGateway(t, toml)
	c := newClient(t, gw.addr)

	// allowed checks an allowed answer and its RateLimit-* headers.
	allowed := func(t *testing.T, r *response, limit, remaining int) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d (%s), want 200 (remaining %d)", r.status, r.body, remaining)
		}
		if got := r.get("RateLimit-Limit"); got != strconv.Itoa(limit) {
			t.Errorf("RateLimit-Limit %q, want %d", got, limit)
		}
		if got := r.get("RateLimit-Remaining"); got != strconv.Itoa(remaining) {
			t.Errorf("RateLimit-Remaining %q, want %d", got, remaining)
		}
		if n, err := strconv.Atoi(r.get("RateLimit-Reset")); err != nil || n < 1 || n > limit*3600 {
			t.Errorf("RateLimit-Reset %q, want whole seconds in 1..%d", r.get("RateLimit-Reset"), limit*3600)
		}
	}
	// rejected checks a 429 answer and its headers.
	rejected := func(t *testing.T, r *response, limit int) {
		t.Helper()
		checkErrorAnswer(t, r, 429)
		// rate 1 per hour: the next request fits in an hour.
		if n, err := strconv.Atoi(r.get("Retry-After")); err != nil || n < 3500 || n > 3600 {
			t.Errorf("Retry-After %q, want about 3600 (seconds)", r.get("Retry-After"))
		}
		if got := r.get("RateLimit-Limit"); got != strconv.Itoa(limit) {
			t.Errorf("RateLimit-Limit %q, want %d", got, limit)
		}
		if got := r.get("RateLimit-Remaining"); got != "0" {
			t.Errorf("RateLimit-Remaining %q, want 0", got)
		}
		if n, err := strconv.Atoi(r.get("RateLimit-Reset")); err != nil || n < 1 {
			t.Errorf("RateLimit-Reset %q, want whole seconds > 0", r.get("RateLimit-Reset"))
		}
	}

	t.Run("exact burst then 429", func(t *testing.T) {
		rej := metricDelta(t, gw, `fastgate_ratelimit_rejected_total{limit="per-ip"}`)
		for i := range 3 {
			allowed(t, do(t, c, "GET", "/ip/x", nil), 3, 2-i)
		}
		calls := s.Requests()
		for range 2 {
			rejected(t, do(t, c, "GET", "/ip/x", nil), 3)
		}
		if n := s.Requests(); n != calls {
			t.Errorf("upstream called %d times for 429s", n-calls)
		}
		if d := rej(); d != 2 {
			t.Errorf(`fastgate_ratelimit_rejected_total{limit="per-ip"} grew by %v, want 2`, d)
		}
		// A route without rate_limit is not limited and has no headers.
		r := do(t, c, "GET", "/free/x", nil)
		if r.status != 200 || r.get("RateLimit-Limit") != "" {
			t.Errorf("unlimited route: status %d, RateLimit-Limit %q", r.status, r.get("RateLimit-Limit"))
		}
	})

	t.Run("spoofed X-Forwarded-For from an untrusted peer", func(t *testing.T) {
		for i := range 2 {
			allowed(t, do(t, c, "GET", "/spoof/x", nil, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)), 2, 1-i)
		}
		for i := range 5 {
			r := do(t, c, "GET", "/spoof/x", nil, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
			if r.status != 429 {
				t.Fatalf("request %d with a fresh X-Forwarded-For: status %d, want 429 (the peer's bucket is empty)", i, r.status)
			}
		}
	})

	t.Run("key header", func(t *testing.T) {
		for i := range 2 {
			allowed(t, do(t, c, "GET", "/key/x", nil, "X-Api-Key", "alpha"), 2, 1-i)
		}
		rejected(t, do(t, c, "GET", "/key/x", nil, "X-Api-Key", "alpha"), 2)
		allowed(t, do(t, c, "GET", "/key/x", nil, "X-Api-Key", "beta"), 2, 1)
		// Values over 64 bytes are keyed by their hash: still one bucket
		// per value, even when they share a long prefix.
		long := strings.Repeat("k", 100)
		for i := range 2 {
			allowed(t, do(t, c, "GET", "/key/x", nil, "X-Api-Key", long+"1"), 2, 1-i)
		}
		rejected(t, do(t, c, "GET", "/key/x", nil, "X-Api-Key", long+"1"), 2)
		allowed(t, do(t, c, "GET", "/key/x", nil, "X-Api-Key", long+"2"), 2, 1)
	})

	t.Run("key user", func(t *testing.T) {
		jc := edgeJWT(t, toml)
		one, two := mint(t, jc, "user-1", time.Hour, time.Now()), mint(t, jc, "user-2", time.Hour, time.Now())
		for i := range 2 {
			allowed(t, do(t, c, "GET", "/user/x", nil, bearer(one)...), 2, 1-i)
		}
		rejected(t, do(t, c, "GET", "/user/x", nil, bearer(one)...), 2)
		allowed(t, do(t, c, "GET", "/user/x", nil, bearer(two)...), 2, 1)
	})

	t.Run("trusted proxy: X-Forwarded-For picks the bucket", func(t *testing.T) {
		gw2 := startGateway(t, edgeService("svc", s.Addr())+`
[server]
trusted_proxies = ["127.0.0.1/32"]
[[rate_limits]]
name = "per-ip"
rate = 1
per = "1h"
burst = 2
[[routes]]
prefix = "/ip"
service = "svc"
rate_limit = "per-ip"
`)
		c2 := newClient(t, gw2.addr)
		for i := range 2 {
			allowed(t, do(t, c2, "GET", "/ip/x", nil, "X-Forwarded-For", "203.0.113.1"), 2, 1-i)
		}
		rejected(t, do(t, c2, "GET", "/ip/x", nil, "X-Forwarded-For", "203.0.113.1"), 2)
		// The client's own spoofed entry left of the proxy's is not used:
		// the rightmost untrusted entry is.
		rejected(t, do(t, c2, "GET", "/ip/x", nil, "X-Forwarded-For", "192.0.2.9, 203.0.113.1"), 2)
		allowed(t, do(t, c2, "GET", "/ip/x", nil, "X-Forwarded-For", "203.0.113.2"), 2, 1)
	})
}

// edgeRedis is a redis-server process on a free loopback port.
type edgeRedis struct {
	addr string
	mu   sync.Mutex // protects cmd
	cmd  *exec.Cmd
}

// startEdgeRedis starts redis-server and kills it when the test ends; it
// skips the test when redis-server is not installed.
func startEdgeRedis(t *testing.T) *edgeRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH (Debian package redis-server; `make test` installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	r := &edgeRedis{addr: addr, cmd: cmd}
	t.Cleanup(r.kill)
	deadline := time.Now().Add(e2eTimeout)
	for {
		reply, err := redisCommand(addr, "PING")
		if err == nil && reply == "+PONG" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not answering: %q, %v", addr, reply, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops redis-server at once (SIGKILL), as a crash would.
func (r *edgeRedis) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// redisCommand sends one inline command and returns the first reply line.
func redisCommand(addr, command string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", command); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// TestE2EEdgeRateLimitRedis: two gateways sharing one Redis enforce one
// limit; with Redis gone they follow on_store_error, fast.
func TestE2EEdgeRateLimitRedis(t *testing.T) {
	rd := startEdgeRedis(t)
	s := startStub(t, "u1", 0)
	toml := edgeService("svc", s.Addr()) + fmt.Sprintf(`
[[rate_limits]]
name = "shared-allow"
rate = 1
per = "1h"
burst = 10
backend = "redis"
redis_addr = %[1]q
on_store_error = "allow"
[[rate_limits]]
name = "shared-deny"
rate = 1
per = "1h"
burst = 10
backend = "redis"
redis_addr = %[1]q
on_store_error = "deny"
[[routes]]
prefix = "/a"
service = "svc"
rate_limit = "shared-allow"
[[routes]]
prefix = "/d"
service = "svc"
rate_limit = "shared-deny"
`, rd.addr)
	gws := []*e2eGateway{startGateway(t, toml), startGateway(t, toml)}
	clients := []*fasthttp.HostClient{newClient(t, gws[0].addr), newClient(t, gws[1].addr)}

	// One shared limit: 10 in total across both gateways, then 429 from
	// both.
	for i := range 10 {
		r := do(t, clients[i%2], "GET", "/a/x", nil)
		if r.status != 200 {
			t.Fatalf("request %d (gateway %d): status %d (%s), want 200", i, i%2, r.status, r.body)
		}
		if got := r.get("RateLimit-Remaining"); got != strconv.Itoa(9-i) {
			t.Errorf("request %d (gateway %d): RateLimit-Remaining %q, want %d (one shared bucket)", i, i%2, got, 9-i)
		}
	}
	for i := range 4 {
		r := do(t, clients[i%2], "GET", "/a/x", nil)
		checkErrorAnswer(t, r, 429)
		if r.get("Retry-After") == "" {
			t.Errorf("gateway %d: 429 without Retry-After", i%2)
		}
	}
	if got := redisKeys(t, rd.addr); !strings.Contains(got, "fastgate:rl:shared-allow:") {
		t.Errorf("redis KEYS: %q, want a fastgate:rl:shared-allow: key", got)
	}
	// The deny limit works while Redis is up.
	if r := do(t, clients[0], "GET", "/d/x", nil); r.status != 200 {
		t.Fatalf("/d with Redis up: status %d, want 200", r.status)
	}

	errs := []func() float64{
		metricDelta(t, gws[0], `fastgate_ratelimit_store_errors_total{limit="shared-allow"}`),
		metricDelta(t, gws[1], `fastgate_ratelimit_store_errors_total{limit="shared-allow"}`),
	}
	rd.kill()

	var slow stalls
	const n = 6
	for i := range n {
		for gi, c := range clients {
			start := time.Now()
			r := do(t, c, "GET", "/a/x", nil)
			slow.check(t, fmt.Sprintf("gateway %d /a request %d", gi, i), time.Since(start), 200*time.Millisecond)
			if r.status != 200 {
				t.Errorf("gateway %d, Redis down, on_store_error allow: status %d (%s), want 200", gi, r.status, r.body)
			}
		}
	}
	for gi, d := range errs {
		if got := d(); got < n {
			t.Errorf("gateway %d: fastgate_ratelimit_store_errors_total{limit=\"shared-allow\"} grew by %v, want >= %d", gi, got, n)
		}
	}
	for i := range n {
		for gi, c := range clients {
			start := time.Now()
			r := do(t, c, "GET", "/d/x", nil)
			slow.check(t, fmt.Sprintf("gateway %d /d request %d", gi, i), time.Since(start), 200*time.Millisecond)
			if r.status != 429 {
				t.Errorf("gateway %d, Redis down, on_store_error deny: status %d, want 429", gi, r.status)
			} else if r.get("Retry-After") == "" {
				t.Errorf("gateway %d: 429 without Retry-After", gi)
			}
		}
	}
}

// redisKeys lists the keys of a Redis (inline KEYS *, the whole reply).
func redisKeys(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprint(c, "KEYS *\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "*")))
	var out strings.Builder
	for range 2 * n {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(line)
	}
	return out.String()
}

// stalls checks that requests take under a bound. A loaded test machine
// (-race, packages tested in parallel on 2 cores) can deschedule a
// goroutine for a few hundred ms: two requests over the bound are
// forgiven, none over 500ms (past Redis's 100ms decision timeout several
// times over, so a request that waited on a dead Redis still shows).
type stalls int

func (s *stalls) check(t *testing.T, what string, took, bound time.Duration) {
	t.Helper()
	if took <= bound {
		return
	}
	if *s++; *s > 2 || took > 500*time.Millisecond {
		t.Errorf("%s took %v, want under %v", what, took, bound)
	} else {
		t.Logf("%s took %v, over %v (forgiven as a scheduler stall)", what, took, bound)
	}
}

func TestE2EEdgeCORS(t *testing.T) {
	s := startStub(t, "u1", 0)
	toml := edgeService("svc", s.Addr()) + `
[cors]
allowed_origins = ["https://app.example.com", "https://*.example.com"]
allowed_methods = ["GET", "POST", "PUT", "DELETE"]
allowed_headers = ["Authorization", "Content-Type"]
allow_credentials = true
max_age = "10m"

[[rate_limits]]
name = "one"
rate = 1
per = "1h"
burst = 1

[[routes]]
prefix = "/c"
service = "svc"
methods = ["GET", "POST"]
cors = true
[[routes]]
prefix = "/cauth"
service = "svc"
cors = true
auth = "jwt"
[[routes]]
prefix = "/crl"
service = "svc"
cors = true
rate_limit = "one"
[[routes]]
prefix = "/plain"
service = "svc"

[[aggregates]]
path = "/agg/c"
cors = true
  [[aggregates.parts]]
  key = "a"
  service = "svc"
  path = "/internal/a"
` + edgeJWTTable(t)
	gw := startGateway(t, toml)
	c := newClient(t, gw.addr)
	const origin = "https://app.example.com"

	// corsOK checks the CORS headers of an answer to an allowed origin.
	corsOK := func(t *testing.T, r *response, origin string) {
		t.Helper()
		if got := r.get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("Access-Control-Allow-Origin %q, want %q (status %d)", got, origin, r.status)
		}
		if got := r.get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("Access-Control-Allow-Credentials %q, want true", got)
		}
		if !varies(r, "Origin") {
			t.Errorf("Vary %q, want Origin in it", r.header["vary"])
		}
	}
	// noCORS checks that an answer carries no CORS grant.
	noCORS := func(t *testing.T, r *response) {
		t.Helper()
		for name := range r.header {
			if strings.HasPrefix(name, "access-control-") {
				t.Errorf("%s: %q, want no CORS headers", name, r.header[name])
			}
		}
	}
	preflight := []string{"Origin", origin, "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "authorization, content-type"}

	t.Run("preflight", func(t *testing.T) {
		calls := s.Requests()
		// PUT is not among the route's methods, nor OPTIONS: the gateway
		// answers the preflight itself anyway.
		r := do(t, c, "OPTIONS", "/c/x", nil, preflight...)
		if r.status != 204 {
			t.Fatalf("status %d (%s), want 204", r.status, r.body)
		}
		corsOK(t, r, origin)
		if got := r.get("Access-Control-Allow-Methods"); !strings.Contains(got, "PUT") {
			t.Errorf("Access-Control-Allow-Methods %q, want PUT in it", got)
		}
		if got := r.get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(got), "authorization") {
			t.Errorf("Access-Control-Allow-Headers %q, want Authorization in it", got)
		}
		if got := r.get("Access-Control-Max-Age"); got != "600" {
			t.Errorf("Access-Control-Max-Age %q, want 600", got)
		}
		// A preflight on an auth route needs no token.
		if r := do(t, c, "OPTIONS", "/cauth/x", nil, preflight...); r.status != 204 {
			t.Errorf("preflight on an auth route: status %d, want 204", r.status)
		}
		// A disallowed origin's preflight is answered too, without a grant.
		r = do(t, c, "OPTIONS", "/c/x", nil, "Origin", "https://evil.test", "Access-Control-Request-Method", "GET")
		if r.status != 204 {
			t.Errorf("disallowed preflight: status %d, want 204", r.status)
		}
		noCORS(t, r)
		if n := s.Requests(); n != calls {
			t.Errorf("upstream called %d times for preflights", n-calls)
		}
	})

	t.Run("preflight on an aggregate", func(t *testing.T) {
		calls := s.Requests()
		r := do(t, c, "OPTIONS", "/agg/c", nil, "Origin", origin, "Access-Control-Request-Method", "GET")
		if r.status != 204 {
			t.Fatalf("status %d (%s), want 204 (aggregate with cors = true)", r.status, r.body)
		}
		corsOK(t, r, origin)
		if n := s.Requests(); n != calls {
			t.Errorf("parts called %d times for a preflight", n-calls)
		}
		r = do(t, c, "GET", "/agg/c", nil, "Origin", origin)
		if r.status != 200 {
			t.Fatalf("GET: status %d (%s)", r.status, r.body)
		}
		corsOK(t, r, origin)
	})

	t.Run("simple requests", func(t *testing.T) {
		for _, o := range []string{origin, "https://a.example.com", "https://a.b.example.com"} {
			r := do(t, c, "GET", "/c/x", nil, "Origin", o)
			if r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			corsOK(t, r, o)
			if got := r.get("Access-Control-Expose-Headers"); !strings.Contains(got, "X-Request-ID") {
				t.Errorf("Access-Control-Expose-Headers %q, want X-Request-ID", got)
			}
		}
		for _, o := range []string{"https://evil.test", "https://example.com", "http://app.example.com", "null"} {
			r := do(t, c, "GET", "/c/x", nil, "Origin", o)
			if r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			noCORS(t, r)
			if !varies(r, "Origin") {
				t.Errorf("origin %s: Vary %q, want Origin (the answer depends on it)", o, r.header["vary"])
			}
		}
	})

	t.Run("route without cors", func(t *testing.T) {
		r := do(t, c, "GET", "/plain/x", nil, "Origin", origin)
		if r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
		noCORS(t, r)
		// The gateway does not answer preflights there: the upstream does.
		calls := s.Requests()
		r = do(t, c, "OPTIONS", "/plain/x", nil, preflight...)
		noCORS(t, r)
		if n := s.Requests(); n != calls+1 {
			t.Errorf("OPTIONS on a route without cors: upstream called %d times, want 1", n-calls)
		}
	})

	t.Run("on 401", func(t *testing.T) {
		r := do(t, c, "GET", "/cauth/x", nil, "Origin", origin)
		checkErrorAnswer(t, r, 401)
		corsOK(t, r, origin)
	})

	t.Run("on 429", func(t *testing.T) {
		r := do(t, c, "GET", "/crl/x", nil, "Origin", origin)
		if r.status != 200 {
			t.Fatalf("first request: status %d", r.status)
		}
		corsOK(t, r, origin)
		r = do(t, c, "GET", "/crl/x", nil, "Origin", origin)
		checkErrorAnswer(t, r, 429)
		corsOK(t, r, origin)
	})
}

// concurrentGets sends n GETs for target at once, each on its own
// connection dialed beforehand, and returns the answers and how long each
// took.
func concurrentGets(t *testing.T, addr, target string, n int) ([]*fasthttp.Response, []time.Duration) {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		cn, err := net.DialTimeout("tcp", addr, e2eTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cn.Close() })
		conns[i] = cn
	}
	results := make([]*fasthttp.Response, n)
	took := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, cn := range conns {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			_ = cn.SetDeadline(t0.Add(e2eTimeout))
			if _, err := fmt.Fprintf(cn, "GET %s HTTP/1.1\r\nHost: gw.test\r\n\r\n", target); err != nil {
				errs[i] = err
				return
			}
			results[i] = &fasthttp.Response{}
			errs[i] = results[i].Read(bufio.NewReader(cn))
			took[i] = time.Since(t0)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("GET %s #%d: %v", target, i, err)
		}
	}
	return results, took
}

// TestE2EEdgeCacheUncachedRouteNotSerialized: with a [cache] table, a
// route without cache_ttl whose upstream sends no Cache-Control has
// nothing to share, so concurrent identical GETs must not wait for one
// another's upstream call.
func TestE2EEdgeCacheUncachedRouteNotSerialized(t *testing.T) {
	const latency = 300 * time.Millisecond
	s := startStub(t, "u1", latency)
	gw := startGateway(t, edgeService("svc", s.Addr())+`
[cache]
max_bytes = "1MiB"
[[routes]]
prefix = "/plain"
service = "svc"
`)
	const n = 8
	results, took := concurrentGets(t, gw.addr, "/plain/x", n)
	var slow []time.Duration
	for i, r := range results {
		if r.StatusCode() != 200 {
			t.Fatalf("request %d: status %d", i, r.StatusCode())
		}
		if took[i] > latency+200*time.Millisecond {
			slow = append(slow, took[i])
		}
	}
	if len(slow) > 0 {
		t.Errorf("%d of %d concurrent GETs took over %v (%v) with an upstream latency of %v: they waited for another request's uncacheable fetch", len(slow), n, latency+200*time.Millisecond, slow, latency)
	}
	if got := s.Requests(); got != n {
		t.Errorf("upstream called %d times, want %d (nothing cacheable)", got, n)
	}
}

// varies reports whether the answer's Vary names name.
func varies(r *response, name string) bool {
	for _, v := range r.header["vary"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// cacheStubHandler answers by path: /nostore with Cache-Control: no-store,
// /cookie with Set-Cookie, /vary with Vary: Accept-Language and the
// language in the body; anything else with the stub's default answer.
func cacheStubHandler(ctx *fasthttp.RequestCtx) bool {
	p := string(ctx.Request.URI().Path())
	switch {
	case strings.Contains(p, "/nostore"):
		ctx.Response.Header.Set("Cache-Control", "no-store")
	case strings.Contains(p, "/cookie"):
		ctx.Response.Header.Set("Set-Cookie", "session=s3cret; HttpOnly")
	case strings.Contains(p, "/internal/bycookie"): // a part answering per cookie, shareably
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"cookie":"` + string(ctx.Request.Header.Peek("Cookie")) + `"}`)
		return true
	case strings.Contains(p, "/internal/private"): // a part answering per client, privately
		ctx.Response.Header.Set("Cache-Control", "private")
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"peer":"` + string(ctx.Request.Header.Peek("X-Forwarded-For")) + `"}`)
		return true
	case strings.Contains(p, "/echo"): // an answer that depends on the query
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"uri":"` + string(ctx.Request.Header.RequestURI()) + `"}`)
		return true
	case strings.Contains(p, "/byxff"): // varies on a header the gateway rewrites
		ctx.Response.Header.Set("Vary", "X-Forwarded-For")
		ctx.SetBodyString("for " + string(ctx.Request.Header.Peek("X-Forwarded-For")))
		return true
	case strings.Contains(p, "/vary"):
		ctx.Response.Header.Set("Vary", "Accept-Language")
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"lang":"` + string(ctx.Request.Header.Peek("Accept-Language")) + `"}`)
		return true
	}
	return false
}

func TestE2EEdgeCache(t *testing.T) {
	s := startHandlerStub(t, "u1", 0, cacheStubHandler)
	slow := startStub(t, "slow", 200*time.Millisecond)
	toml := edgeService("svc", s.Addr()) + edgeService("slow", slow.Addr()) + edgeService("down", closedAddr(t)) + `
[cache]
max_bytes = "4MiB"

[[routes]]
prefix = "/c"
service = "svc"
cache_ttl = "30s"
[[routes]]
prefix = "/strip"
service = "svc"
strip_prefix = "/strip"
cache_ttl = "30s"
[[routes]]
prefix = "/slow"
service = "slow"
cache_ttl = "30s"
timeout = "10s"
[[routes]]
prefix = "/nocache"
service = "svc"

[[aggregates]]
path = "/agg/full"
cache_ttl = "30s"
  [[aggregates.parts]]
  key = "a"
  service = "svc"
  path = "/internal/full/a"
  [[aggregates.parts]]
  key = "b"
  service = "svc"
  path = "/internal/full/b"
[[aggregates]]
path = "/agg/cookie"
cache_ttl = "30s"
  [[aggregates.parts]]
  key = "me"
  service = "svc"
  path = "/internal/bycookie"
  forward_headers = ["Cookie"]
[[aggregates]]
path = "/agg/private"
cache_ttl = "30s"
  [[aggregates.parts]]
  key = "me"
  service = "svc"
  path = "/internal/private"
[[aggregates]]
path = "/agg/partial"
cache_ttl = "30s"
  [[aggregates.parts]]
  key = "a"
  service = "svc"
  path = "/internal/partial/a"
  required = true
  [[aggregates.parts]]
  key = "b"
  service = "down"
  path = "/internal/partial/b"
`
	gw := startGateway(t, toml)
	c := newClient(t, gw.addr)

	xcache := func(t *testing.T, r *response, want string) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d (%s), want 200", r.status, r.body)
		}
		if got := r.get("X-Cache"); got != want {
			t.Errorf("X-Cache %q, want %q", got, want)
		}
	}

	t.Run("miss then hit", func(t *testing.T) {
		hits := metricDelta(t, gw, `fastgate_cache_requests_total{result="hit"}`)
		misses := metricDelta(t, gw, `fastgate_cache_requests_total{result="miss"}`)
		first := do(t, c, "GET", "/c/a?x=1&y=2", nil)
		xcache(t, first, "MISS")
		if first.get("Age") != "" {
			t.Errorf("a miss has Age %q", first.get("Age"))
		}
		second := do(t, c, "GET", "/c/a?y=2&x=1", nil) // the query sorted is the same key
		xcache(t, second, "HIT")
		if n, err := strconv.Atoi(second.get("Age")); err != nil || n < 0 || n > 5 {
			t.Errorf("hit Age %q, want whole seconds, about 0", second.get("Age"))
		}
		if string(second.body) != string(first.body) {
			t.Errorf("hit body %s, miss body %s", second.body, first.body)
		}
		if id1, id2 := first.get("X-Request-ID"), second.get("X-Request-ID"); id2 == "" || id1 == id2 {
			t.Errorf("X-Request-ID of the hit %q (miss %q): want the hit's own", id2, id1)
		}
		head := do(t, c, "HEAD", "/c/a?x=1&y=2", nil)
		if head.get("X-Cache") != "HIT" {
			t.Errorf("HEAD after a GET: X-Cache %q, want HIT", head.get("X-Cache"))
		}
		if n := receivedURI(s, "/c/a?x=1&y=2") + receivedURI(s, "/c/a?y=2&x=1"); n != 1 {
			t.Errorf("upstream called %d times, want 1", n)
		}
		if d := hits(); d != 2 {
			t.Errorf(`fastgate_cache_requests_total{result="hit"} grew by %v, want 2`, d)
		}
		if d := misses(); d != 1 {
			t.Errorf(`fastgate_cache_requests_total{result="miss"} grew by %v, want 1`, d)
		}
		if b := metricValue(t, scrape(t, gw), "fastgate_cache_bytes"); b <= 0 {
			t.Errorf("fastgate_cache_bytes %v, want > 0", b)
		}
	})

	// The forwarded target is written over the client's in place; the
	// query the answer is stored under must still be the client's.
	t.Run("rewritten target", func(t *testing.T) {
		for _, tt := range []struct {
			name, first, other, firstURI string
		}{
			{"strip_prefix", "/strip/echo?a=1&b=2", "/strip/echo?b=2&b=2", "/echo?a=1&b=2"},
			{"dot segment", "/c/./echo?xxpage=1&&", "/c/echo?page=1", "/c/echo?xxpage=1&&"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				want := `{"uri":"` + tt.firstURI + `"}`
				r := do(t, c, "GET", tt.first, nil)
				xcache(t, r, "MISS")
				if string(r.body) != want {
					t.Fatalf("GET %s: body %s, want %s", tt.first, r.body, want)
				}
				if o := do(t, c, "GET", tt.other, nil); o.get("X-Cache") == "HIT" {
					t.Errorf("GET %s answered from the cache with %s", tt.other, o.body)
				}
				again := do(t, c, "GET", tt.first, nil)
				xcache(t, again, "HIT")
				if string(again.body) != want {
					t.Errorf("repeated GET %s: body %s, want %s", tt.first, again.body, want)
				}
			})
		}
	})

	t.Run("route without cache_ttl", func(t *testing.T) {
		for range 2 {
			if r := do(t, c, "GET", "/nocache/x", nil); r.get("X-Cache") == "HIT" {
				t.Errorf("route without cache_ttl answered from the cache")
			}
		}
		if n := receivedURI(s, "/nocache/x"); n != 2 {
			t.Errorf("upstream called %d times, want 2", n)
		}
	})

	t.Run("no-store", func(t *testing.T) {
		for range 3 {
			xcache(t, do(t, c, "GET", "/c/nostore", nil), "MISS")
		}
		if n := receivedURI(s, "/c/nostore"); n != 3 {
			t.Errorf("upstream called %d times, want 3 (no-store is not cached)", n)
		}
	})

	t.Run("Set-Cookie", func(t *testing.T) {
		for range 3 {
			r := do(t, c, "GET", "/c/cookie", nil)
			xcache(t, r, "MISS")
			if r.get("Set-Cookie") == "" {
				t.Errorf("Set-Cookie not passed on")
			}
		}
		if n := receivedURI(s, "/c/cookie"); n != 3 {
			t.Errorf("upstream called %d times, want 3 (Set-Cookie is not cached)", n)
		}
	})

	t.Run("Vary", func(t *testing.T) {
		for i, want := range []string{"MISS", "MISS", "HIT", "HIT", "HIT"} {
			lang := []string{"en", "de"}[i%2]
			r := do(t, c, "GET", "/c/vary", nil, "Accept-Language", lang)
			xcache(t, r, want)
			if got := string(r.body); got != `{"lang":"`+lang+`"}` {
				t.Errorf("Accept-Language %s: body %s", lang, got)
			}
		}
		if n := receivedURI(s, "/c/vary"); n != 2 {
			t.Errorf("upstream called %d times, want 2 (one per Accept-Language)", n)
		}
	})

	t.Run("Vary on a header the gateway rewrites", func(t *testing.T) {
		// Looked up with the client's X-Forwarded-For, stored with the
		// gateway's: never stored, so a forged value reads nothing.
		for i, xff := range []string{"", "", "127.0.0.1"} {
			var h []string
			if xff != "" {
				h = []string{"X-Forwarded-For", xff}
			}
			xcache(t, do(t, c, "GET", "/c/byxff", nil, h...), "MISS")
			if n := receivedURI(s, "/c/byxff"); n != i+1 {
				t.Errorf("request %d: upstream called %d times, want %d", i, n, i+1)
			}
		}
	})

	t.Run("Authorization", func(t *testing.T) {
		xcache(t, do(t, c, "GET", "/c/shared", nil), "MISS")
		xcache(t, do(t, c, "GET", "/c/shared", nil), "HIT")
		r := do(t, c, "GET", "/c/shared", nil, "Authorization", "Bearer abc")
		if r.get("X-Cache") == "HIT" {
			t.Errorf("a request with Authorization got a shared entry")
		}
		if n := receivedURI(s, "/c/shared"); n != 2 {
			t.Errorf("upstream called %d times, want 2", n)
		}
		// Answers to requests with Authorization are not stored either.
		for range 2 {
			if r := do(t, c, "GET", "/c/private", nil, "Authorization", "Bearer abc"); r.get("X-Cache") == "HIT" {
				t.Errorf("a request with Authorization answered from the cache")
			}
		}
		xcache(t, do(t, c, "GET", "/c/private", nil), "MISS")
		if n := receivedURI(s, "/c/private"); n != 3 {
			t.Errorf("upstream called %d times, want 3", n)
		}
	})

	t.Run("POST bypasses", func(t *testing.T) {
		bypass := metricDelta(t, gw, `fastgate_cache_requests_total{result="bypass"}`)
		xcache(t, do(t, c, "GET", "/c/post", nil), "MISS")
		for range 2 {
			if r := do(t, c, "POST", "/c/post", []byte(`{}`)); r.status != 200 || r.get("X-Cache") == "HIT" {
				t.Errorf("POST: status %d X-Cache %q", r.status, r.get("X-Cache"))
			}
		}
		if n := receivedURI(s, "/c/post"); n != 3 {
			t.Errorf("upstream called %d times, want 3", n)
		}
		if d := bypass(); d != 2 {
			t.Errorf(`fastgate_cache_requests_total{result="bypass"} grew by %v, want 2`, d)
		}
	})

	t.Run("coalescing", func(t *testing.T) {
		const n = 30
		before := gw.g.edge.cache.Stats()
		results, _ := concurrentGets(t, gw.addr, "/slow/cold", n)
		xc := map[string]int{}
		for i, r := range results {
			if r.StatusCode() != 200 {
				t.Fatalf("request %d: status %d (%s)", i, r.StatusCode(), r.Body())
			}
			xc[string(r.Header.Peek("X-Cache"))]++
		}
		if got := slow.Requests(); got != 1 {
			t.Errorf("%d concurrent misses made %d upstream calls, want 1", n, got)
		}
		if xc["MISS"] != 1 || xc["HIT"] != n-1 {
			t.Errorf("X-Cache counts %v, want 1 MISS and %d HIT", xc, n-1)
		}
		after := gw.g.edge.cache.Stats()
		t.Logf("coalesced %d of %d", after.Coalesced-before.Coalesced, n-1)
		if after.Coalesced == before.Coalesced {
			t.Errorf("no request waited for the leader's fetch: the test did not exercise coalescing")
		}
	})

	t.Run("aggregates", func(t *testing.T) {
		r := do(t, c, "GET", "/agg/full", nil)
		xcache(t, r, "MISS")
		if r.get("X-Aggregate-Complete") != "true" {
			t.Fatalf("complete aggregate: X-Aggregate-Complete %q (%s)", r.get("X-Aggregate-Complete"), r.body)
		}
		xcache(t, do(t, c, "GET", "/agg/full", nil), "HIT")
		if a, b := receivedURI(s, "/internal/full/a"), receivedURI(s, "/internal/full/b"); a != 1 || b != 1 {
			t.Errorf("complete aggregate: parts called %d and %d times, want 1 each (cached)", a, b)
		}
		for i := range 2 {
			r := do(t, c, "GET", "/agg/partial", nil)
			if r.status != 200 || r.get("X-Aggregate-Complete") != "false" {
				t.Fatalf("partial aggregate %d: status %d X-Aggregate-Complete %q (%s)", i, r.status, r.get("X-Aggregate-Complete"), r.body)
			}
			if r.get("X-Cache") == "HIT" {
				t.Errorf("partial aggregate %d answered from the cache", i)
			}
		}
		if n := receivedURI(s, "/internal/partial/a"); n != 2 {
			t.Errorf("partial aggregate: part a called %d times, want 2 (not cached)", n)
		}
	})

	// An aggregate's answer depends on the headers its parts forward (it
	// says Vary) and is never shared when a part's answer was private.
	t.Run("aggregates answering per client", func(t *testing.T) {
		for i, tt := range []struct{ cookie, cache string }{{"sid=alice", "MISS"}, {"sid=bob", "MISS"}, {"sid=alice", "HIT"}} {
			r := do(t, c, "GET", "/agg/cookie", nil, "Cookie", tt.cookie)
			xcache(t, r, tt.cache)
			if !strings.Contains(string(r.body), tt.cookie) {
				t.Errorf("request %d with %s got %s", i, tt.cookie, r.body)
			}
			if got := r.get("Vary"); got != "Cookie" {
				t.Errorf("request %d: Vary %q, want Cookie", i, got)
			}
		}
		for i := range 2 {
			r := do(t, c, "GET", "/agg/private", nil)
			xcache(t, r, "MISS")
			if got := r.get("Cache-Control"); got != "no-store" {
				t.Errorf("request %d: Cache-Control %q, want no-store (a part answered private)", i, got)
			}
		}
		if n := receivedURI(s, "/internal/private"); n != 2 {
			t.Errorf("private part called %d times, want 2 (its aggregate not cached)", n)
		}
	})
}

// TestE2EJWTRouteSpellings: a path a servlet container serves under a
// jwt route (/api/admin) is routed there, or refused, whatever path
// parameters it carries: never to the open /api route without a token.
func TestE2EJWTRouteSpellings(t *testing.T) {
	s := startStub(t, "u1", 0)
	gw := startGateway(t, edgeService("svc", s.Addr())+`
[[routes]]
prefix = "/api"
service = "svc"
auth = "none"
[[routes]]
prefix = "/api/admin"
service = "svc"
auth = "jwt"
`+edgeJWTTable(t))
	c := newClient(t, gw.addr)
	if r := do(t, c, "GET", "/api/open", nil); r.status != 200 {
		t.Fatalf("open route: status %d", r.status)
	}
	for _, target := range []string{"/api/admin/users", "/api/admin;x/users", "/api;x/admin/users", "/api;x/admin;y/users", "/api/;/admin/users", "/api/x/..;/admin/users"} {
		t.Run(target, func(t *testing.T) {
			before := s.Requests()
			if r := do(t, c, "GET", target, nil); r.status != 401 && r.status != 400 {
				t.Errorf("GET %s without a token: status %d, want 401 or 400", target, r.status)
			}
			if d := s.Requests() - before; d != 0 {
				t.Errorf("upstream got %d requests, want 0", d)
			}
		})
	}
}
