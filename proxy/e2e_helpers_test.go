package proxy

// Helpers for the end-to-end tests in e2e_test.go: a gateway, stub upstreams
// and scripted raw upstreams, all on real loopback sockets, and clients that
// talk to the gateway with fasthttp or with raw bytes.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
	"github.com/valyala/fasthttp"
)

// e2eTimeout bounds every wait of the end-to-end tests: a test that reaches
// it has failed.
const e2eTimeout = 5 * time.Second

// e2eGateway is a gateway serving on a loopback port.
type e2eGateway struct {
	g    *Gateway
	addr string
	done chan struct{} // closed when Serve returns
	err  error         // Serve's result; read after done
}

// startGateway parses toml, serves the gateway on 127.0.0.1:0 and shuts it
// down when the test ends. Register upstreams before calling it, so that the
// gateway drains before they close.
func startGateway(t *testing.T, toml string) *e2eGateway {
	t.Helper()
	return startGatewayWith(t, toml, Options{})
}

// startStub starts a stub upstream that records what it receives and closes
// it when the test ends.
func startStub(t *testing.T, id string, latency time.Duration) *stub.Server {
	t.Helper()
	s, err := stub.Start(stub.Options{ID: id, Addr: "127.0.0.1:0", Latency: latency})
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

// closedAddr returns a loopback address where nothing listens: dials to it
// are refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// rawUpstream is a loopback upstream with scripted misbehaviour: on each
// connection it reads one whole request, counts it, keeps its body, runs
// then and closes the connection.
type rawUpstream struct {
	ln       net.Listener
	then     func(u *rawUpstream, c net.Conn)
	stop     chan struct{} // closed by close
	wg       sync.WaitGroup
	requests atomic.Int64

	mu     sync.Mutex // protects open and bodies
	open   map[net.Conn]struct{}
	bodies [][]byte
}

// What a rawUpstream does once it has read a request.
var (
	// closeAfterRead closes the connection without answering (a FIN).
	closeAfterRead = func(*rawUpstream, net.Conn) {}
	// resetAfterRead resets the connection without answering (an RST).
	resetAfterRead = func(_ *rawUpstream, c net.Conn) {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	// hangAfterRead never answers: it holds the connection until the test ends.
	hangAfterRead = func(u *rawUpstream, _ net.Conn) { <-u.stop }
)

// respondRaw writes raw as the answer, then closes the connection.
func respondRaw(raw string) func(*rawUpstream, net.Conn) {
	return func(_ *rawUpstream, c net.Conn) { _, _ = io.WriteString(c, raw) }
}

func startRawUpstream(t *testing.T, then func(*rawUpstream, net.Conn)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, then: then, stop: make(chan struct{}), open: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.close)
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.open[c] = struct{}{}
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serve(c)
	}
}

func (u *rawUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		delete(u.open, c)
		u.mu.Unlock()
		_ = c.Close()
	}()
	_ = c.SetReadDeadline(time.Now().Add(e2eTimeout))
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(c)); err != nil {
		return // the gateway closed an idle connection, or the test ended
	}
	u.mu.Lock()
	u.bodies = append(u.bodies, append([]byte(nil), req.Body()...))
	u.mu.Unlock()
	u.requests.Add(1)
	u.then(u, c)
}

// lastBody is the body of the last request read.
func (u *rawUpstream) lastBody() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return nil
	}
	return u.bodies[len(u.bodies)-1]
}

func (u *rawUpstream) close() {
	close(u.stop)
	_ = u.ln.Close()
	u.mu.Lock()
	for c := range u.open {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// response is a gateway answer as a test sees it.
type response struct {
	status int
	header map[string][]string // lower-case names, values in arrival order
	body   []byte
}

func newResponse(r *fasthttp.Response) *response {
	out := &response{status: r.StatusCode(), header: map[string][]string{}, body: append([]byte(nil), r.Body()...)}
	for k, v := range r.Header.All() {
		name := strings.ToLower(string(k))
		out.header[name] = append(out.header[name], string(v))
	}
	return out
}

// get returns the first value of the header name, or "".
func (r *response) get(name string) string {
	if v := r.header[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// newClient returns a client of the gateway that sends paths as given and
// never retries by itself.
func newClient(t *testing.T, addr string) *fasthttp.HostClient {
	c := &fasthttp.HostClient{
		Addr:                      addr,
		DisablePathNormalizing:    true,
		MaxIdemponentCallAttempts: 1,
		ReadTimeout:               e2eTimeout,
		WriteTimeout:              e2eTimeout,
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// do sends one request through c; headers are name, value pairs.
func do(t *testing.T, c *fasthttp.HostClient, method, uri string, body []byte, headers ...string) *response {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("gw.test")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if body != nil {
		req.SetBody(body)
	}
	if err := c.DoTimeout(req, resp, e2eTimeout); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	return newResponse(resp)
}

// rawConn is a client connection to the gateway that writes bytes as given.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// roundTrip writes req and reads one whole response.
func (rc *rawConn) roundTrip(req string) *response {
	rc.t.Helper()
	_ = rc.c.SetDeadline(time.Now().Add(e2eTimeout))
	if _, err := io.WriteString(rc.c, req); err != nil {
		// The gateway may close before reading all of a rejected request;
		// its answer can still be read.
		rc.t.Logf("write %.40q: %v", req, err)
	}
	var resp fasthttp.Response
	if err := resp.Read(rc.br); err != nil {
		rc.t.Fatalf("reading the answer to %.60q: %v", req, err)
	}
	return newResponse(&resp)
}

// closed reports whether the gateway closed the connection: the next read
// returns no byte and EOF (or a reset, when the gateway closed with unread
// request bytes). how says what the read saw.
func (rc *rawConn) closed() (ok bool, how string) {
	_ = rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [64]byte
	n, err := rc.br.Read(b[:])
	switch {
	case n > 0:
		return false, fmt.Sprintf("read %q after the answer", b[:n])
	case errors.Is(err, io.EOF):
		return true, "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return true, "connection reset"
	}
	return false, fmt.Sprintf("read error %v (connection still open)", err)
}

// rawGet is a minimal HTTP/1.1 GET for target.
func rawGet(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: gw.test\r\n\r\n"
}

// stubAnswer is the JSON body of a stub upstream.
type stubAnswer struct {
	Instance string `json:"instance"`
	Path     string `json:"path"`
}

func decodeStub(t *testing.T, r *response) stubAnswer {
	t.Helper()
	var a stubAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("stub body %q: %v (status %d)", r.body, err, r.status)
	}
	return a
}

// requestIDPattern is what a kept or generated X-Request-ID must look like.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// checkErrorAnswer asserts an error answer of the gateway: status, JSON
// {"error":"...","request_id":"..."} with the id echoed in X-Request-ID.
func checkErrorAnswer(t *testing.T, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error     *string `json:"error"`
		RequestID *string `json:"request_id"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Error == nil || *e.Error == "" {
		t.Errorf("error body %s: no error message", r.body)
	}
	if e.RequestID == nil || !requestIDPattern.MatchString(*e.RequestID) {
		t.Errorf("error body %s: request_id missing or malformed", r.body)
	} else if got := r.get("X-Request-ID"); got != *e.RequestID {
		t.Errorf("X-Request-ID %q, body request_id %q: want the same", got, *e.RequestID)
	}
}

// upstreamHeaders returns what a stub received, with lower-case names.
func upstreamHeaders(r stub.Request) map[string][]string {
	h := map[string][]string{}
	for k, vs := range r.Header {
		h[strings.ToLower(k)] = append(h[strings.ToLower(k)], vs...)
	}
	return h
}

// lastReceived is the last request the stub recorded.
func lastReceived(t *testing.T, s *stub.Server) stub.Request {
	t.Helper()
	got := s.Received()
	if len(got) == 0 {
		t.Fatalf("stub %s received nothing", s.ID())
	}
	return got[len(got)-1]
}

// scrape reads the gateway's metrics path.
func scrape(t *testing.T, gw *e2eGateway) string {
	t.Helper()
	r := dialRaw(t, gw.addr).roundTrip("GET /metrics HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("GET /metrics: status %d", r.status)
	}
	return string(r.body)
}

// metricValue returns the value of series (name with labels, exactly as
// exposed) in a Prometheus text exposition.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("series %s: value %q: %v", series, rest, err)
			}
			return v
		}
	}
	t.Fatalf("series %s not exposed", series)
	return 0
}

// waitFor polls cond every millisecond until it holds, failing the test
// after e2eTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// pattern returns n bytes that differ from one position to the next, so
// that a lost, duplicated or reordered chunk of a body is seen.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23 + i/997%3)
	}
	return b
}
