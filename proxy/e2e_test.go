package proxy

// End-to-end tests: the gateway and its upstreams on real loopback sockets,
// checked against the behaviour issue 2 requires. Helpers are in
// e2e_helpers_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

func TestE2ERouting(t *testing.T) {
	api := startStub(t, "api-1", 0)
	users := startStub(t, "users-1", 0)
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "api"
  [[services.instances]]
  id = "api-1"
  addr = %q
[[services]]
name = "users"
  [[services.instances]]
  id = "users-1"
  addr = %q

[[routes]]
prefix = "/api"
service = "api"
[[routes]]
prefix = "/api/v1/users"
service = "users"
strip_prefix = "/api"
[[routes]]
prefix = "/api/v1/reports"
service = "api"
methods = ["GET", "HEAD"]
`, api.Addr(), users.Addr()))

	t.Run("forwarded", func(t *testing.T) {
		tests := []struct {
			name, target string
			instance     string // stub that must get the request
			upstreamURI  string // request target the stub must see
		}{
			{"longest prefix", "/api/v1/users/7", "users-1", "/v1/users/7"},
			{"prefix itself", "/api/v1/users", "users-1", "/v1/users"},
			{"shorter prefix", "/api/v1/orders/1", "api-1", "/api/v1/orders/1"},
			{"short prefix itself", "/api", "api-1", "/api"},
			{"segment boundary", "/api/v1/usersX", "api-1", "/api/v1/usersX"},
			{"path parameters end a segment's name", "/api/v1/users;jsessionid=1/7", "users-1", "/v1/users;jsessionid=1/7"},
			{"path parameters on the prefix itself", "/api/v1/users;v=2", "users-1", "/v1/users;v=2"},
			{"dot-dot leaves users", "/api/v1/users/../admin", "api-1", "/api/v1/admin"},
			{"dot segment", "/api/v1/users/./7", "users-1", "/v1/users/7"},
			{"merged slashes", "//api//v1///users//7", "users-1", "/v1/users/7"},
			{"encoded unreserved", "/api/v1/%75sers/1", "users-1", "/v1/users/1"},
			{"encoded dot-dot", "/api/v1/users/%2e%2E/admin", "api-1", "/api/v1/admin"},
			{"query preserved", "/api/v1/users/7?a=1&b=%20x&c=%2F&d=", "users-1", "/v1/users/7?a=1&b=%20x&c=%2F&d="},
			{"query preserved, target unchanged", "/api/v1/orders/1?a=1&b=%20x&c=%2F&d=", "api-1", "/api/v1/orders/1?a=1&b=%20x&c=%2F&d="},
			{"absolute form", "http://gw.test/api/v1/orders/2?q=1", "api-1", "/api/v1/orders/2?q=1"},
			{"allowed method", "/api/v1/reports/q", "api-1", "/api/v1/reports/q"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want, other := users, api
				if tt.instance == "api-1" {
					want, other = api, users
				}
				nWant, nOther := want.Requests(), other.Requests()
				r := dialRaw(t, gw.addr).roundTrip(rawGet(tt.target))
				if r.status != 200 {
					t.Fatalf("GET %s: status %d, want 200 (body %s)", tt.target, r.status, r.body)
				}
				if got := decodeStub(t, r).Instance; got != tt.instance {
					t.Errorf("GET %s answered by %q, want %q", tt.target, got, tt.instance)
				}
				if d := want.Requests() - nWant; d != 1 {
					t.Errorf("%s got %d requests, want 1", tt.instance, d)
				}
				if d := other.Requests() - nOther; d != 0 {
					t.Errorf("%s got %d requests, want 0", other.ID(), d)
				}
				if got := lastReceived(t, want).URI; got != tt.upstreamURI {
					t.Errorf("upstream saw %q, want %q", got, tt.upstreamURI)
				}
			})
		}
	})

	t.Run("encoded separator or dot segment with parameters rejected", func(t *testing.T) {
		for _, target := range []string{
			"/api/v1/users/a%2Fb", "/api/v1/users/a%2fb", "/api/v1/users/a%5Cb", "/api/v1/users/a%00b", "/api%2Fv1/users",
			"/api/v1/users/..;/orders", "/api/v1/users/.;/7", "/api/v1/users/%2e%2e;x=1/orders",
		} {
			t.Run(target, func(t *testing.T) {
				before := api.Requests() + users.Requests()
				c := dialRaw(t, gw.addr)
				checkErrorAnswer(t, c.roundTrip(rawGet(target)), 400)
				if ok, how := c.closed(); !ok {
					t.Errorf("connection not closed after 400: %s", how)
				}
				if d := api.Requests() + users.Requests() - before; d != 0 {
					t.Errorf("upstreams got %d requests, want 0", d)
				}
			})
		}
	})

	// Spellings a servlet container (Tomcat, Jetty, Spring) serves as
	// /api/v1/reports/q: each is routed by the reports route, which allows
	// GET and HEAD only, or refused, and never reaches the upstream.
	t.Run("path parameters keep the route", func(t *testing.T) {
		for _, tc := range []struct {
			target string
			status int
		}{
			{"/api/v1/reports;x/q", 405},
			{"/api/v1;x/reports/q", 405},
			{"/api;x/v1/reports/q", 405},
			{"/api;a/v1;b/reports;c/q;d", 405},
			{"/api/;/v1/reports/q", 400},
			{"/api/;jsessionid=1/v1/reports/q", 400},
			{"/;/api/v1/reports/q", 400},
			{"/api/v1/x/..;/reports/q", 400},
		} {
			t.Run(tc.target, func(t *testing.T) {
				before := api.Requests()
				r := dialRaw(t, gw.addr).roundTrip("POST " + tc.target + " HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n")
				if r.status != tc.status {
					t.Errorf("status %d, want %d", r.status, tc.status)
				}
				if d := api.Requests() - before; d != 0 {
					t.Errorf("upstream got %d requests, want 0", d)
				}
			})
		}
	})

	t.Run("method not allowed", func(t *testing.T) {
		before := api.Requests()
		r := dialRaw(t, gw.addr).roundTrip("POST /api/v1/reports/q HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n")
		checkErrorAnswer(t, r, 405)
		if got := r.get("Allow"); got != "GET, HEAD" {
			t.Errorf("Allow %q, want %q", got, "GET, HEAD")
		}
		if d := api.Requests() - before; d != 0 {
			t.Errorf("upstream got %d requests, want 0", d)
		}
	})

	t.Run("unmatched", func(t *testing.T) {
		only := startStub(t, "only-1", 0)
		gw2 := startGateway(t, fmt.Sprintf(`
[[services]]
name = "users"
  [[services.instances]]
  id = "only-1"
  addr = %q
[[routes]]
prefix = "/api/v1/users"
service = "users"
`, only.Addr()))
		for _, target := range []string{"/api/v1/usersX", "/api/v1/usersX/1", "/api/v1/user", "/api/v1", "/", "/api/v1/users/../../v1/users2"} {
			t.Run(target, func(t *testing.T) {
				before := only.Requests()
				checkErrorAnswer(t, dialRaw(t, gw2.addr).roundTrip(rawGet(target)), 404)
				if d := only.Requests() - before; d != 0 {
					t.Errorf("upstream got %d requests, want 0", d)
				}
			})
		}
	})
}

func TestE2EWeights(t *testing.T) {
	a := startStub(t, "a", 0)
	b := startStub(t, "b", 0)
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "w"
retries = 0
  [[services.instances]]
  id = "a"
  addr = %q
  weight = 3
  [[services.instances]]
  id = "b"
  addr = %q
  weight = 1
[[routes]]
prefix = "/w"
service = "w"
`, a.Addr(), b.Addr()))
	c := newClient(t, gw.addr)

	const n = 400
	seq := make([]string, n)
	for i := range seq {
		r := do(t, c, "GET", "/w/item", nil)
		if r.status != 200 {
			t.Fatalf("request %d: status %d", i, r.status)
		}
		seq[i] = decodeStub(t, r).Instance
	}
	if a.Requests() != 300 || b.Requests() != 100 {
		t.Errorf("a got %d, b got %d; want 300 and 100", a.Requests(), b.Requests())
	}
	for i := 0; i+4 <= n; i++ {
		na := 0
		for _, id := range seq[i : i+4] {
			if id == "a" {
				na++
			}
		}
		if na != 3 {
			t.Fatalf("window %d..%d is %v: %d a, want 3 a and 1 b", i, i+3, seq[i:i+4], na)
		}
	}
}

func TestE2ERequestHeaders(t *testing.T) {
	users := startStub(t, "users-1", 0)
	const routes = `
[[routes]]
prefix = "/api/v1/users"
service = "users"
`
	svc := fmt.Sprintf(`
[[services]]
name = "users"
  [[services.instances]]
  id = "users-1"
  addr = %q
`, users.Addr())
	direct := startGateway(t, svc+routes)
	behindProxy := startGateway(t, "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"+svc+routes)

	hopByHop := "Connection: keep-alive, X-Custom-Hop\r\n" +
		"X-Custom-Hop: secret\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"TE: trailers\r\n" +
		"Upgrade: websocket\r\n"
	long128 := strings.Repeat("a", 128)
	long129 := strings.Repeat("b", 129)

	tests := []struct {
		name      string
		gw        *e2eGateway
		extra     string // header lines sent besides Host and the hop-by-hop ones
		wantXFF   string
		wantID    string // "" = a generated id, not the client's
		clientID  string
		wantProto string
		wantXFH   string
	}{
		{"spoofed XFF replaced", direct, "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed.example\r\n", "127.0.0.1", "", "", "http", "front.example:8443"},
		{"lower-case spoofs replaced", direct, "x-forwarded-for: 1.2.3.4\r\nx-forwarded-proto: https\r\nX-FORWARDED-HOST: spoofed.example\r\nx-gateway-service: evil\r\nx-request-id: bad id\r\n", "127.0.0.1", "", "", "http", "front.example:8443"},
		{"trusted XFF appended", behindProxy, "X-Forwarded-For: 1.2.3.4\r\n", "1.2.3.4, 127.0.0.1", "", "", "http", "front.example:8443"},
		{"no XFF from trusted", behindProxy, "", "127.0.0.1", "", "", "http", "front.example:8443"},
		{"request id kept", direct, "", "127.0.0.1", "req-42_a.B", "req-42_a.B", "http", "front.example:8443"},
		{"request id of 128 kept", direct, "", "127.0.0.1", long128, long128, "http", "front.example:8443"},
		{"request id of 129 replaced", direct, "", "127.0.0.1", "", long129, "http", "front.example:8443"},
		{"request id with space replaced", direct, "", "127.0.0.1", "", "bad id", "http", "front.example:8443"},
		{"request id with slash replaced", direct, "", "127.0.0.1", "", "a/b", "http", "front.example:8443"},
		{"request id with quote replaced", direct, "", "127.0.0.1", "", `a"b`, "http", "front.example:8443"},
		// A second Connection line naming the kept id: stripped with the
		// client's header, then set again by the gateway, the same value.
		{"kept request id named in Connection", direct, "Connection: X-Request-ID\r\n", "127.0.0.1", "trace-1", "trace-1", "http", "front.example:8443"},
		// Repeated lines of the headers the gateway owns: one value arrives.
		{"repeated spoofs replaced", direct, "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: http\r\nx-forwarded-proto: https\r\n" +
			"X-Forwarded-Host: a.example\r\nX-Forwarded-Host: evil.example\r\nX-Gateway-Service: a\r\nX-Gateway-Service: evil\r\nX-Request-ID: bad id\r\n", "127.0.0.1", "", "evil-2", "http", "front.example:8443"},
		{"repeated request id: the first kept", direct, "X-Request-ID: first-1\r\n", "127.0.0.1", "first-1", "second-2", "http", "front.example:8443"},
		{"trusted XFF lines joined", behindProxy, "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8, 9.9.9.9\r\n", "1.2.3.4, 5.6.7.8, 9.9.9.9, 127.0.0.1", "", "", "http", "front.example:8443"},
		{"second Connection line", direct, "Connection: X-Second-Hop\r\nX-Second-Hop: 1\r\n", "127.0.0.1", "", "", "http", "front.example:8443"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := "GET /api/v1/users/7 HTTP/1.1\r\nHost: front.example:8443\r\n" + hopByHop + tt.extra + "X-End-To-End: kept\r\n"
			if tt.clientID != "" {
				req += "X-Request-ID: " + tt.clientID + "\r\n"
			}
			before := users.Requests()
			r := dialRaw(t, tt.gw.addr).roundTrip(req + "\r\n")
			if r.status != 200 {
				t.Fatalf("status %d, want 200 (body %s)", r.status, r.body)
			}
			if d := users.Requests() - before; d != 1 {
				t.Fatalf("upstream got %d requests, want 1", d)
			}
			got := lastReceived(t, users)
			h := upstreamHeaders(got)
			for _, name := range []string{"connection", "x-custom-hop", "x-second-hop", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"} {
				if v, ok := h[name]; ok {
					t.Errorf("upstream got hop-by-hop %s: %q", name, v)
				}
			}
			want := map[string]string{
				"x-forwarded-for":   tt.wantXFF,
				"x-forwarded-proto": tt.wantProto,
				"x-forwarded-host":  tt.wantXFH,
				"x-gateway-service": "users",
				"x-end-to-end":      "kept",
			}
			for name, v := range want {
				if g := h[name]; len(g) != 1 || g[0] != v {
					t.Errorf("upstream %s = %q, want [%q]", name, g, v)
				}
			}
			if got.Host != "front.example:8443" {
				t.Errorf("upstream Host %q, want front.example:8443", got.Host)
			}
			ids := h["x-request-id"]
			if len(ids) != 1 {
				t.Fatalf("upstream X-Request-ID %q, want one value", ids)
			}
			id := ids[0]
			switch {
			case tt.wantID != "" && id != tt.wantID:
				t.Errorf("upstream X-Request-ID %q, want the client's %q", id, tt.wantID)
			case tt.wantID == "" && (id == tt.clientID || !requestIDPattern.MatchString(id)):
				t.Errorf("upstream X-Request-ID %q, want a generated well-formed id (client sent %q)", id, tt.clientID)
			case tt.wantID == "" && seen[id]:
				t.Errorf("generated X-Request-ID %q was used before", id)
			}
			seen[id] = true
			if echo := r.header["x-request-id"]; len(echo) != 1 || echo[0] != id {
				t.Errorf("response X-Request-ID %q, want [%q] as sent upstream", echo, id)
			}
		})
	}
}

// parsingUpstream answers 200 to every request, handing each, as fasthttp
// parsed it (trailer section included), to got.
func parsingUpstream(t *testing.T) (addr string, got chan *fasthttp.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	got = make(chan *fasthttp.Request, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req := &fasthttp.Request{}
					_ = c.SetReadDeadline(time.Now().Add(e2eTimeout))
					if req.Read(br) != nil {
						return
					}
					got <- req
					if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), got
}

// startRawGateway starts a gateway with one service, "raw", at addr, routed
// at /raw, without retries.
func startRawGateway(t *testing.T, addr string) *e2eGateway {
	t.Helper()
	return startGateway(t, fmt.Sprintf(`
[[services]]
name = "raw"
retries = 0
  [[services.instances]]
  id = "raw-1"
  addr = %q
[[routes]]
prefix = "/raw"
service = "raw"
`, addr))
}

// nextParsed is the next request a parsingUpstream got.
func nextParsed(t *testing.T, got chan *fasthttp.Request) *fasthttp.Request {
	t.Helper()
	select {
	case req := <-got:
		return req
	case <-time.After(e2eTimeout):
		t.Fatal("the upstream got no request")
		return nil
	}
}

// TestE2ERequestTrailers: request trailer fields are dropped, never sent
// upstream nor merged into the header section; header-section fields of
// the same names stay.
func TestE2ERequestTrailers(t *testing.T) {
	addr, got := parsingUpstream(t)
	gw := startRawGateway(t, addr)
	const chunked = "Transfer-Encoding: chunked\r\n"
	tests := []struct {
		name    string
		head    string            // header lines besides Host
		trailer string            // trailer section lines; "" with chunked: none
		want    map[string]string // upstream fields: the only value, or "" for none
	}{
		{"trailer named like a gateway header", chunked, "X-Gateway-Service: evil\r\n", map[string]string{"X-Gateway-Service": "raw"}},
		{"announced trailer", chunked + "Trailer: X-Checksum\r\n", "X-Checksum: abc\r\n", map[string]string{"X-Checksum": "", "Trailer": ""}},
		{"unannounced trailer", chunked, "X-Checksum: abc\r\n", map[string]string{"X-Checksum": ""}},
		{"trailer repeating a header field", chunked + "X-Tag: a\r\n", "X-Tag: b\r\n", map[string]string{"X-Tag": "a"}},
		{"announced, sent up front", "Content-Length: 5\r\nTrailer: X-Tag\r\nX-Tag: a\r\n", "", map[string]string{"X-Tag": "a", "Trailer": ""}},
		{"request id only in a trailer", chunked, "X-Request-ID: from-trailer\r\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "hello"
			if strings.Contains(tt.head, chunked) {
				body = "5\r\nhello\r\n0\r\n" + tt.trailer + "\r\n"
			}
			r := dialRaw(t, gw.addr).roundTrip("POST /raw/x HTTP/1.1\r\nHost: gw.test\r\n" + tt.head + "\r\n" + body)
			if r.status != 200 {
				t.Fatalf("status %d (%s), want 200", r.status, r.body)
			}
			req := nextParsed(t, got)
			if keys := req.Header.PeekTrailerKeys(); len(keys) != 0 {
				t.Errorf("upstream request announces trailers %q", keys)
			}
			if string(req.Body()) != "hello" {
				t.Errorf("upstream body %q, want hello", req.Body())
			}
			for name, want := range tt.want {
				v := req.Header.PeekAll(name)
				if want == "" && len(v) != 0 || want != "" && (len(v) != 1 || string(v[0]) != want) {
					t.Errorf("upstream %s %q, want %q", name, v, want)
				}
			}
			ids := req.Header.PeekAll("X-Request-ID")
			if len(ids) != 1 || string(ids[0]) == "from-trailer" || string(ids[0]) != r.get("X-Request-ID") {
				t.Errorf("upstream X-Request-ID %q, answered %q: want one generated id, the same", ids, r.get("X-Request-ID"))
			}
		})
	}
}

// TestE2ERequestContentType: a request body's Content-Type goes upstream
// as the client sent it, and none is added when the client sent none.
func TestE2ERequestContentType(t *testing.T) {
	addr, got := parsingUpstream(t)
	gw := startRawGateway(t, addr)
	for _, tt := range []struct{ name, head, want string }{
		{"none sent, none added", "", ""},
		{"kept", "Content-Type: text/plain\r\n", "text/plain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, gw.addr).roundTrip("POST /raw/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n" + tt.head + "\r\nhello")
			if r.status != 200 {
				t.Fatalf("status %d (%s), want 200", r.status, r.body)
			}
			req := nextParsed(t, got)
			if ct := req.Header.PeekAll("Content-Type"); tt.want == "" && len(ct) != 0 || tt.want != "" && (len(ct) != 1 || string(ct[0]) != tt.want) {
				t.Errorf("upstream Content-Type %q, want %q", ct, tt.want)
			}
			if string(req.Body()) != "hello" {
				t.Errorf("upstream body %q", req.Body())
			}
		})
	}
}

func TestE2EResponseHeaders(t *testing.T) {
	up := startRawUpstream(t, respondRaw("HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/plain\r\n"+
		"Content-Length: 2\r\n"+
		"Connection: close, X-Foo\r\n"+
		"X-Foo: 1\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Authenticate: Basic\r\n"+
		"Upgrade: h2c\r\n"+
		"X-Kept: yes\r\n"+
		"\r\nok"))
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "raw"
  [[services.instances]]
  id = "raw-1"
  addr = %q
[[routes]]
prefix = "/raw"
service = "raw"
`, up.addr()))

	c := dialRaw(t, gw.addr) // one keep-alive connection for every request
	for i := range 3 {
		r := c.roundTrip(rawGet("/raw/x"))
		if r.status != 200 || string(r.body) != "ok" {
			t.Fatalf("request %d: status %d body %q, want 200 ok", i, r.status, r.body)
		}
		for _, name := range []string{"connection", "x-foo", "keep-alive", "proxy-authenticate", "upgrade"} {
			if v, ok := r.header[name]; ok {
				t.Errorf("request %d: client got hop-by-hop %s: %q", i, name, v)
			}
		}
		if got := r.get("X-Kept"); got != "yes" {
			t.Errorf("request %d: X-Kept %q, want yes", i, got)
		}
		if got := r.get("X-Request-ID"); !requestIDPattern.MatchString(got) {
			t.Errorf("request %d: X-Request-ID %q", i, got)
		}
	}
	if got := up.requests.Load(); got != 3 {
		t.Errorf("upstream read %d requests, want 3", got)
	}
}

// TestE2EResponseTrailers: an upstream answer's trailer fields are dropped,
// never merged into the header section the client (and the cache) sees;
// header-section fields of the same names stay.
func TestE2EResponseTrailers(t *testing.T) {
	for _, tt := range []struct {
		name, head string
	}{
		{"announced", "Trailer: X-Checksum, Cache-Control, Server-Timing\r\n"},
		{"unannounced", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := startRawUpstream(t, respondRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer-Timing: app;dur=1\r\n"+tt.head+
				"\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nCache-Control: public, max-age=60\r\nServer-Timing: total;dur=2\r\n\r\n"))
			gw := startRawGateway(t, up.addr())
			r := dialRaw(t, gw.addr).roundTrip(rawGet("/raw/x"))
			if r.status != 200 || string(r.body) != "ok" {
				t.Fatalf("status %d body %q, want 200 ok", r.status, r.body)
			}
			for _, name := range []string{"x-checksum", "cache-control", "trailer"} {
				if v, ok := r.header[name]; ok {
					t.Errorf("client got the trailer's %s as a header: %q", name, v)
				}
			}
			if v := r.header["server-timing"]; len(v) != 1 || v[0] != "app;dur=1" {
				t.Errorf("Server-Timing %q, want the header section's [app;dur=1]", v)
			}
		})
	}
}

// startRetryGateway starts a gateway with one service, name, routed at
// prefix, whose two instances (ids, addrs) take up to retries retries per
// request, with the breaker and the retry budget out of the way: issue 2's
// retry semantics only, no ejection.
func startRetryGateway(t *testing.T, name, prefix string, retries int, ids, addrs [2]string) *e2eGateway {
	t.Helper()
	return startGateway(t, fmt.Sprintf(`
[[services]]
name = %q
retries = %d
[services.breaker]
consecutive_failures = 1000
[services.limits]
retry_budget = 1.0
min_retries_per_second = 1000
  [[services.instances]]
  id = %q
  addr = %q
  [[services.instances]]
  id = %q
  addr = %q
[[routes]]
prefix = %q
service = %q
`, name, retries, ids[0], addrs[0], ids[1], addrs[1], prefix, name))
}

func TestE2ERetries(t *testing.T) {
	series := func(svc, inst, outcome string) string {
		return fmt.Sprintf(`fastgate_upstream_requests_total{service=%q,instance=%q,outcome=%q}`, svc, inst, outcome)
	}
	retries := func(svc string) string { return fmt.Sprintf(`fastgate_retries_total{service=%q}`, svc) }

	t.Run("dial error retried for every method", func(t *testing.T) {
		live := startStub(t, "live", 0)
		gw := startRetryGateway(t, "mixed", "/m", 1, [2]string{"dead", "live"}, [2]string{closedAddr(t), live.Addr()})
		c := newClient(t, gw.addr)
		n := 0
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			for i := range 4 {
				body := []byte(nil)
				if method == "POST" || method == "PUT" || method == "PATCH" {
					body = []byte(fmt.Sprintf("%s body %d", method, i))
				}
				r := do(t, c, method, "/m/x", body)
				n++
				if r.status != 200 || decodeStub(t, r).Instance != "live" {
					t.Fatalf("%s %d: status %d body %s, want 200 from live", method, i, r.status, r.body)
				}
			}
		}
		text := scrape(t, gw)
		ret := metricValue(t, text, retries("mixed"))
		if ret <= 0 {
			t.Errorf("%s = %v, want > 0", retries("mixed"), ret)
		}
		if got := metricValue(t, text, series("mixed", "dead", "connect_error")); got != ret {
			t.Errorf("dead connect_error = %v, want %v (one per retry)", got, ret)
		}
		if got := metricValue(t, text, series("mixed", "live", "success")); got != float64(n) || live.Requests() != int64(n) {
			t.Errorf("live success = %v, live got %d requests; want %d", got, live.Requests(), n)
		}
	})

	t.Run("failure after send: GET retried, POST not", func(t *testing.T) {
		closer := startRawUpstream(t, closeAfterRead)
		live := startStub(t, "live", 0)
		gw := startRetryGateway(t, "flaky", "/f", 1, [2]string{"closer", "live"}, [2]string{closer.addr(), live.Addr()})
		c := newClient(t, gw.addr)
		for i := range 6 {
			if r := do(t, c, "GET", "/f/x", nil); r.status != 200 || decodeStub(t, r).Instance != "live" {
				t.Fatalf("GET %d: status %d body %s, want 200 from live", i, r.status, r.body)
			}
		}
		hits := closer.requests.Load()
		if hits == 0 {
			t.Fatalf("no GET was sent to the closing instance: the test proves nothing")
		}
		text := scrape(t, gw)
		if got := metricValue(t, text, retries("flaky")); got != float64(hits) {
			t.Errorf("retries = %v, want %d (one per GET the closer dropped)", got, hits)
		}
		if got := metricValue(t, text, series("flaky", "closer", "error")); got != float64(hits) {
			t.Errorf("closer error outcomes = %v, want %d", got, hits)
		}

		failed := 0
		for i := range 4 {
			nc, nl := closer.requests.Load(), live.Requests()
			r := do(t, c, "POST", "/f/x", []byte("post body"))
			dc, dl := closer.requests.Load()-nc, live.Requests()-nl
			switch r.status {
			case 502:
				failed++
				checkErrorAnswer(t, r, 502)
				if dc != 1 || dl != 0 {
					t.Errorf("POST %d: 502 after closer got %d and live got %d, want 1 and 0 (no retry)", i, dc, dl)
				}
			case 200:
				if dc != 0 || dl != 1 {
					t.Errorf("POST %d: 200 after closer got %d and live got %d, want 0 and 1", i, dc, dl)
				}
			default:
				t.Errorf("POST %d: status %d, want 502 or 200 (body %s)", i, r.status, r.body)
			}
		}
		if failed == 0 {
			t.Errorf("no POST went to the closing instance first: want at least one 502")
		}
	})

	t.Run("body intact on retry", func(t *testing.T) {
		body := pattern(48 << 10)
		tests := []struct {
			name, method string
			first        func(t *testing.T) (addr string, hit func() int64)
		}{
			{"POST after dial error", "POST", nil},
			{"PUT after reset", "PUT", func(t *testing.T) (string, func() int64) {
				u := startRawUpstream(t, resetAfterRead)
				t.Cleanup(func() {
					if got := u.lastBody(); !bytes.Equal(got, body) {
						t.Errorf("reset instance read a body of %d bytes, want the %d sent", len(got), len(body))
					}
				})
				return u.addr(), u.requests.Load
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				live := startStub(t, "live", 0)
				firstAddr := closedAddr(t)
				var hit func() int64
				if tt.first != nil {
					firstAddr, hit = tt.first(t)
				}
				gw := startRetryGateway(t, "b", "/b", 1, [2]string{"first", "live"}, [2]string{firstAddr, live.Addr()})
				c := newClient(t, gw.addr)
				retried := false
				for i := 0; i < 4 && !retried; i++ {
					r := do(t, c, tt.method, "/b/upload", body)
					if r.status != 200 {
						t.Fatalf("%s %d: status %d (body %s), want 200", tt.method, i, r.status, r.body)
					}
					got := lastReceived(t, live)
					if got.Method != tt.method || !bytes.Equal(got.Body, body) {
						t.Fatalf("live got %s with a body of %d bytes, want %s with the %d sent", got.Method, len(got.Body), tt.method, len(body))
					}
					retried = metricValue(t, scrape(t, gw), retries("b")) > 0
				}
				if !retried {
					t.Fatalf("no request was retried: the test proves nothing")
				}
				if hit != nil && hit() == 0 {
					t.Errorf("the failing instance read no request")
				}
			})
		}
	})

	t.Run("never the same instance twice", func(t *testing.T) {
		tests := []struct {
			name  string
			start func(t *testing.T) (addr string, hits func(text string) float64)
		}{
			{"closed after read", func(t *testing.T) (string, func(string) float64) {
				u := startRawUpstream(t, closeAfterRead)
				return u.addr(), func(string) float64 { return float64(u.requests.Load()) }
			}},
			{"refused", func(t *testing.T) (string, func(string) float64) {
				addr := closedAddr(t)
				return addr, nil
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				addr1, hits1 := tt.start(t)
				addr2, hits2 := tt.start(t)
				gw := startRetryGateway(t, "bad", "/bad", 3, [2]string{"bad-1", "bad-2"}, [2]string{addr1, addr2})
				if hits1 == nil { // refused: count attempts from the metrics
					hits1 = func(text string) float64 { return metricValue(t, text, series("bad", "bad-1", "connect_error")) }
					hits2 = func(text string) float64 { return metricValue(t, text, series("bad", "bad-2", "connect_error")) }
				}
				c := newClient(t, gw.addr)
				for i := range 3 {
					text := scrape(t, gw)
					h1, h2, rt := hits1(text), hits2(text), metricValue(t, text, retries("bad"))
					checkErrorAnswer(t, do(t, c, "GET", "/bad/x", nil), 502)
					text = scrape(t, gw)
					d1, d2, drt := hits1(text)-h1, hits2(text)-h2, metricValue(t, text, retries("bad"))-rt
					if d1 != 1 || d2 != 1 || drt != 1 {
						t.Errorf("GET %d: attempts bad-1 %v, bad-2 %v, retries %v; want 1, 1, 1", i, d1, d2, drt)
					}
				}
			})
		}
	})
}

func TestE2EStatusMapping(t *testing.T) {
	down := startStub(t, "down-1", 0)
	hang := startRawUpstream(t, hangAfterRead)
	slow := []*rawUpstream{startRawUpstream(t, hangAfterRead), startRawUpstream(t, hangAfterRead), startRawUpstream(t, hangAfterRead)}
	garbage := startRawUpstream(t, respondRaw("HELLO\r\n\r\n"))
	truncated := startRawUpstream(t, respondRaw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Encoding: gzip\r\n"+
		"Set-Cookie: session=s3cret\r\nCache-Control: public, max-age=3600\r\nLocation: https://elsewhere.example/\r\n\r\npartial"))
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "refused"
[services.breaker]  # issue 2 retry semantics only: no ejection, no retry budget
consecutive_failures = 1000
[services.limits]
retry_budget = 1.0
min_retries_per_second = 1000
  [[services.instances]]
  id = "r1"
  addr = %q
  [[services.instances]]
  id = "r2"
  addr = %q
[[services]]
name = "down"
  [[services.instances]]
  id = "down-1"
  addr = %q
[[services]]
name = "hang"
timeout = "200ms"
retries = 0
  [[services.instances]]
  id = "hang-1"
  addr = %q
[[services]]
name = "slow"
timeout = "400ms"
retries = 3
[services.breaker]  # issue 2 retry semantics only: no ejection, no retry budget
consecutive_failures = 1000
[services.limits]
retry_budget = 1.0
min_retries_per_second = 1000
  [[services.instances]]
  id = "slow-1"
  addr = %q
  [[services.instances]]
  id = "slow-2"
  addr = %q
  [[services.instances]]
  id = "slow-3"
  addr = %q
[[services]]
name = "garbage"
  [[services.instances]]
  id = "garbage-1"
  addr = %q
[[services]]
name = "truncated"
  [[services.instances]]
  id = "truncated-1"
  addr = %q

[[routes]]
prefix = "/refused"
service = "refused"
[[routes]]
prefix = "/down"
service = "down"
[[routes]]
prefix = "/hang"
service = "hang"
[[routes]]
prefix = "/slow"
service = "slow"
timeout = "500ms"
[[routes]]
prefix = "/garbage"
service = "garbage"
[[routes]]
prefix = "/truncated"
service = "truncated"
`, closedAddr(t), closedAddr(t), down.Addr(), hang.addr(), slow[0].addr(), slow[1].addr(), slow[2].addr(), garbage.addr(), truncated.addr()))
	for _, s := range gw.g.Services() {
		if s.Name() == "down" {
			s.Instances()[0].SetHealthy(false)
		}
	}
	slowHits := func() (n int64) {
		for _, u := range slow {
			n += u.requests.Load()
		}
		return n
	}

	tests := []struct {
		name     string
		path     string
		status   int
		min, max time.Duration
		check    func(t *testing.T, r *response)
	}{
		{"all refused", "/refused/x", 502, 0, time.Second, nil},
		{"malformed upstream answer", "/garbage/x", 502, 0, time.Second, nil},
		{"answer cut off after its headers", "/truncated/x", 502, 0, time.Second, func(t *testing.T, r *response) {
			for _, name := range []string{"set-cookie", "content-encoding", "cache-control", "location"} {
				if v, ok := r.header[name]; ok {
					t.Errorf("the error answer carries the failed answer's %s: %q", name, v)
				}
			}
		}},
		{"no available instance", "/down/x", 503, 0, time.Second, func(t *testing.T, r *response) {
			if got := r.get("Retry-After"); got == "" || strings.Trim(got, "0123456789") != "" {
				t.Errorf("Retry-After %q, want a number of seconds", got)
			}
			if down.Requests() != 0 {
				t.Errorf("the instance marked down got %d requests", down.Requests())
			}
		}},
		{"upstream timeout", "/hang/x", 504, 150 * time.Millisecond, time.Second, func(t *testing.T, r *response) {
			if got := hang.requests.Load(); got != 1 {
				t.Errorf("hanging upstream read %d requests, want 1 (retries = 0)", got)
			}
		}},
		{"route deadline stops retries", "/slow/x", 504, 450 * time.Millisecond, 900 * time.Millisecond, func(t *testing.T, r *response) {
			if got := slowHits(); got != 2 {
				t.Errorf("slow instances read %d requests, want 2 (400ms attempts in a 500ms route timeout)", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, gw.addr)
			start := time.Now()
			r := do(t, c, "GET", tt.path, nil)
			elapsed := time.Since(start)
			checkErrorAnswer(t, r, tt.status)
			if elapsed < tt.min || elapsed >= tt.max {
				t.Errorf("answered in %v, want within [%v, %v)", elapsed, tt.min, tt.max)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestE2EMalformedRequests(t *testing.T) {
	s := startStub(t, "s-1", 0)
	gw := startGateway(t, fmt.Sprintf(`
[server]
max_uri_bytes = "1KiB"
max_header_bytes = "2KiB"
max_request_body = "1KiB"
[[services]]
name = "s"
  [[services.instances]]
  id = "s-1"
  addr = %q
[[routes]]
prefix = "/api"
service = "s"
`, s.Addr()))

	// Valid requests first: the guard must not reject these.
	t.Run("valid chunked POST passes", func(t *testing.T) {
		before := s.Requests()
		r := dialRaw(t, gw.addr).roundTrip("POST /api/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		if r.status != 200 || s.Requests()-before != 1 {
			t.Fatalf("status %d, upstream got %d requests; want 200 and 1", r.status, s.Requests()-before)
		}
		if got := lastReceived(t, s).Body; string(got) != "hello" {
			t.Errorf("upstream body %q, want hello", got)
		}
	})
	t.Run("valid POST at the body limit passes", func(t *testing.T) {
		body := pattern(1024)
		r := dialRaw(t, gw.addr).roundTrip(fmt.Sprintf("POST /api/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		if r.status != 200 || !bytes.Equal(lastReceived(t, s).Body, body) {
			t.Fatalf("status %d, want 200 with the body forwarded", r.status)
		}
	})

	const head = "POST /api/x HTTP/1.1\r\nHost: gw.test\r\n"
	tests := []struct {
		name   string
		raw    string
		status int
	}{
		{"Content-Length and Transfer-Encoding", head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding and Content-Length", head + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
		{"two equal Content-Length", head + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"two different Content-Length", head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"Content-Length abc", head + "Content-Length: abc\r\n\r\nhello", 400},
		{"Content-Length negative", head + "Content-Length: -5\r\n\r\nhello", 400},
		{"Content-Length with sign", head + "Content-Length: +5\r\n\r\nhello", 400},
		{"Transfer-Encoding gzip, chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501},
		{"Transfer-Encoding gzip", head + "Transfer-Encoding: gzip\r\n\r\nhello", 501},
		{"two Transfer-Encoding", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
		{"two Host", "GET /api/x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400},
		{"missing Host", "GET /api/x HTTP/1.1\r\nX-A: 1\r\n\r\n", 400},
		{"header name with space", "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nBad Header: x\r\n\r\n", 400},
		{"space before colon", "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nX-A : x\r\n\r\n", 400},
		{"control byte in value", "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nX-A: a\x01b\r\n\r\n", 400},
		{"URI over max_uri_bytes", "GET /api/" + strings.Repeat("u", 2048) + " HTTP/1.1\r\nHost: gw.test\r\n\r\n", 414},
		{"headers over max_header_bytes", "GET /api/x HTTP/1.1\r\nHost: gw.test\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 90)+"\r\n", 30) + "\r\n", 431},
		{"body over max_request_body", head + "Content-Length: 2048\r\n\r\n" + string(pattern(2048)), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Requests()
			c := dialRaw(t, gw.addr)
			checkErrorAnswer(t, c.roundTrip(tt.raw), tt.status)
			if ok, how := c.closed(); !ok {
				t.Errorf("connection not closed after %d: %s", tt.status, how)
			}
			if d := s.Requests() - before; d != 0 {
				t.Errorf("upstream got %d requests, want 0", d)
			}
		})
	}
}

func TestE2EShutdownDrain(t *testing.T) {
	s := startStub(t, "slow-1", 300*time.Millisecond)
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "slow"
  [[services.instances]]
  id = "slow-1"
  addr = %q
[[routes]]
prefix = "/slow"
service = "slow"
`, s.Addr()))
	c := newClient(t, gw.addr)

	type result struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("/slow/x")
		req.Header.SetHost("gw.test")
		err := c.DoTimeout(req, resp, e2eTimeout)
		answered <- result{resp.StatusCode(), append([]byte(nil), resp.Body()...), err}
	}()
	waitFor(t, "the upstream to get the request", func() bool { return s.Requests() == 1 })

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		shutdown <- gw.g.Shutdown(ctx)
	}()
	// Shutdown has started once the listener is closed.
	waitFor(t, "the listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", gw.addr, time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	select {
	case r := <-answered:
		t.Fatalf("answered before Shutdown started (%d %s): the test proves nothing", r.status, r.body)
	default:
	}

	select {
	case r := <-answered:
		if r.err != nil || r.status != 200 {
			t.Fatalf("in-flight request: status %d, err %v; want 200", r.status, r.err)
		}
		var a stubAnswer
		if err := json.Unmarshal(r.body, &a); err != nil || a.Instance != "slow-1" {
			t.Errorf("in-flight body %q, want the stub's answer", r.body)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("in-flight request not answered")
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Errorf("Shutdown: %v, want nil", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("Shutdown did not return")
	}
	if conn, err := net.DialTimeout("tcp", gw.addr, time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("new connection accepted after Shutdown")
	}
}

func TestE2EHealthAndMetrics(t *testing.T) {
	metrics.ExposeMetadata(true) // as main does
	t.Cleanup(func() { metrics.ExposeMetadata(false) })
	u1, u2, p1 := startStub(t, "u1", 0), startStub(t, "u2", 0), startStub(t, "p1", 0)
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "users"
  [[services.instances]]
  id = "u1"
  addr = %q
  [[services.instances]]
  id = "u2"
  addr = %q
[[services]]
name = "posts"
  [[services.instances]]
  id = "p1"
  addr = %q
[[routes]]
prefix = "/api/v1/users"
service = "users"
[[routes]]
prefix = "/api/v1/posts"
service = "posts"
`, u1.Addr(), u2.Addr(), p1.Addr()))
	users, posts := gw.g.Services()[0], gw.g.Services()[1]
	if users.Name() != "users" || posts.Name() != "posts" {
		t.Fatalf("services %q, %q: want users, posts in config order", users.Name(), posts.Name())
	}

	type svcHealth struct {
		Healthy *int   `json:"healthy_instances"`
		Total   *int   `json:"total_instances"`
		Status  string `json:"status"`
	}
	type health struct {
		Status    string               `json:"status"`
		Timestamp string               `json:"timestamp"`
		Services  map[string]svcHealth `json:"services"`
	}
	t.Run("health", func(t *testing.T) {
		tests := []struct {
			name        string
			mark        func()
			status      string
			users, post [2]int
		}{
			{"all up", func() {}, "healthy", [2]int{2, 2}, [2]int{1, 1}},
			{"one user instance down", func() { users.Instances()[1].SetHealthy(false) }, "healthy", [2]int{1, 2}, [2]int{1, 1}},
			{"posts down", func() { posts.Instances()[0].SetHealthy(false) }, "degraded", [2]int{1, 2}, [2]int{0, 1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.mark()
				r := dialRaw(t, gw.addr).roundTrip(rawGet("/health"))
				if r.status != 200 || r.get("Content-Type") != "application/json" {
					t.Fatalf("status %d, Content-Type %q; want 200 application/json", r.status, r.get("Content-Type"))
				}
				var h health
				if err := json.Unmarshal(r.body, &h); err != nil {
					t.Fatalf("health body %s: %v", r.body, err)
				}
				if h.Status != tt.status {
					t.Errorf("status %q, want %q", h.Status, tt.status)
				}
				if _, err := time.Parse(time.RFC3339, h.Timestamp); err != nil {
					t.Errorf("timestamp %q: %v", h.Timestamp, err)
				}
				if len(h.Services) != 2 {
					t.Errorf("services %v, want users and posts", h.Services)
				}
				for name, want := range map[string][2]int{"users": tt.users, "posts": tt.post} {
					got := h.Services[name]
					wantStatus := fmt.Sprintf("%d/%d", want[0], want[1])
					if got.Healthy == nil || got.Total == nil || *got.Healthy != want[0] || *got.Total != want[1] || got.Status != wantStatus {
						t.Errorf("%s: %s, want healthy %d total %d status %s", name, r.body, want[0], want[1], wantStatus)
					}
				}
			})
		}
	})

	t.Run("metrics", func(t *testing.T) {
		users.Instances()[1].SetHealthy(false) // every request goes to u1
		c := newClient(t, gw.addr)
		const n = 7
		for i := range n {
			if r := do(t, c, "GET", fmt.Sprintf("/api/v1/users/%d", i), nil); r.status != 200 {
				t.Fatalf("GET %d: status %d", i, r.status)
			}
		}
		text := scrape(t, gw)
		const labels = `route="/api/v1/users",service="users"`
		want := map[string]float64{
			`fastgate_requests_total{` + labels + `,code="200"}`:                                      n,
			`fastgate_requests_total{` + labels + `,code="502"}`:                                      0,
			`fastgate_request_duration_seconds_count{` + labels + `}`:                                 n,
			`fastgate_request_duration_seconds_bucket{` + labels + `,le="+Inf"}`:                      n,
			`fastgate_request_duration_seconds_bucket{` + labels + `,le="10"}`:                        n,
			`fastgate_upstream_requests_total{service="users",instance="u1",outcome="success"}`:       n,
			`fastgate_upstream_requests_total{service="users",instance="u2",outcome="success"}`:       0,
			`fastgate_upstream_requests_total{service="users",instance="u1",outcome="connect_error"}`: 0,
			`fastgate_upstream_in_flight{service="users",instance="u1"}`:                              0,
			`fastgate_instance_up{service="users",instance="u1"}`:                                     1,
			`fastgate_instance_up{service="users",instance="u2"}`:                                     0,
			`fastgate_retries_total{service="users"}`:                                                 0,
		}
		for series, v := range want {
			if got := metricValue(t, text, series); got != v {
				t.Errorf("%s = %v, want %v", series, got, v)
			}
		}
		for _, s := range []string{"# TYPE fastgate_requests_total counter", "# TYPE fastgate_request_duration_seconds histogram", "go_goroutines "} {
			if !strings.Contains(text, s) {
				t.Errorf("metrics lack %q", s)
			}
		}
		if u1.Requests() != n || u2.Requests() != 0 {
			t.Errorf("u1 got %d, u2 got %d; want %d and 0", u1.Requests(), u2.Requests(), n)
		}

		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not on PATH")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("promtool: %v", err)
		}
		if (code != 0 && code != 3) || strings.Contains(string(out), "error while linting") {
			t.Errorf("promtool check metrics exited %d:\n%s", code, out)
		} else if len(out) > 0 {
			t.Logf("promtool lint findings (not parse errors):\n%s", out)
		}
	})
}

// TestE2EIgnoreCase: a route with ignore_case owns every letter case of
// its prefix (an Express or ASP.NET upstream serves /api/v1/Reports/q as
// /api/v1/reports/q), and strips its strip_prefix in any case; a route
// without it matches the exact case, as nginx and Envoy do by default.
func TestE2EIgnoreCase(t *testing.T) {
	api := startStub(t, "api-1", 0)
	gw := startGateway(t, fmt.Sprintf(`
[[services]]
name = "api"
  [[services.instances]]
  id = "api-1"
  addr = %q
[[routes]]
prefix = "/api"
service = "api"
[[routes]]
prefix = "/api/v1/reports"
service = "api"
methods = ["GET", "HEAD"]
ignore_case = true
[[routes]]
prefix = "/api/v1/orders"
service = "api"
methods = ["GET", "HEAD"]
[[routes]]
prefix = "/Svc/V2"
service = "api"
ignore_case = true
strip_prefix = "/svc"
`, api.Addr()))
	for _, tc := range []struct {
		method, target string
		status         int
		upstreamURI    string // "" when the upstream must get nothing
	}{
		{"POST", "/api/v1/reports/q", 405, ""},
		{"POST", "/api/v1/Reports/q", 405, ""},
		{"POST", "/API/V1/REPORTS;x/q", 405, ""},
		{"GET", "/api/V1/reports/q", 200, "/api/V1/reports/q"},
		{"POST", "/api/v1/orders/q", 405, ""},
		{"POST", "/api/v1/Orders/q", 200, "/api/v1/Orders/q"},
		{"GET", "/SVC/v2/items?x=1", 200, "/v2/items?x=1"},
		{"GET", "/svc;j=1/V2/items", 200, "/V2/items"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			before := api.Requests()
			r := dialRaw(t, gw.addr).roundTrip(tc.method + " " + tc.target + " HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\n\r\n")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			got := api.Requests() - before
			switch {
			case tc.upstreamURI == "" && got != 0:
				t.Errorf("upstream got %d requests, want 0", got)
			case tc.upstreamURI != "" && got != 1:
				t.Errorf("upstream got %d requests, want 1", got)
			case tc.upstreamURI != "":
				if uri := lastReceived(t, api).URI; uri != tc.upstreamURI {
					t.Errorf("upstream saw %q, want %q", uri, tc.upstreamURI)
				}
			}
		})
	}
}
