package aggregate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/stub"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// upstreams are stub services over real loopback sockets, one HostClient
// each, configured as the gateway configures its instances.
type upstreams map[string]*stub.Server

func startUpstreams(t testing.TB, names ...string) upstreams {
	t.Helper()
	u := upstreams{}
	t.Cleanup(u.close)
	for _, n := range names {
		s, err := stub.Start(stub.Options{ID: n})
		if err != nil {
			t.Fatal(err)
		}
		u[n] = s
	}
	return u
}

// close closes the stubs at once (each Shutdown waits for its handlers).
func (u upstreams) close() {
	var wg sync.WaitGroup
	for _, s := range u {
		wg.Go(func() { _ = s.Close() })
	}
	wg.Wait()
}

func hostClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      addr,
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		ReadTimeout:               5 * time.Second,
		WriteTimeout:              5 * time.Second,
	}
}

// resolver gives each upstream its HostClient; "down" is a closed port.
func (u upstreams) resolver(t testing.TB) func(string) Doer {
	doers := map[string]Doer{}
	for n, s := range u {
		doers[n] = hostClient(s.Addr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	doers["down"] = hostClient(ln.Addr().String())
	_ = ln.Close()
	return func(name string) Doer { return doers[name] }
}

// answerDoc is the aggregate's answer, decoded by encoding/json.
type answerDoc struct {
	Status string                     `json:"status"`
	Data   map[string]json.RawMessage `json:"data"`
	Errors map[string]struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"errors"`
	Meta struct {
		AggregatedAt      string  `json:"aggregated_at"`
		ServicesCalled    int     `json:"services_called"`
		ServicesSucceeded int     `json:"services_succeeded"`
		DurationMS        float64 `json:"duration_ms"`
	} `json:"meta"`
}

func decode(t *testing.T, resp *fasthttp.Response) answerDoc {
	t.Helper()
	var doc answerDoc
	if err := json.Unmarshal(resp.Body(), &doc); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, resp.Body())
	}
	if _, err := time.Parse(time.RFC3339, doc.Meta.AggregatedAt); err != nil {
		t.Errorf("aggregated_at: %v", err)
	}
	return doc
}

// newCtx is a client request as the gateway hands it to Handle.
func newCtx(uri string, headers ...string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost("gw.example")
	ctx.Request.Header.Set("X-Request-ID", "req-1")
	ctx.Request.Header.Set("X-Forwarded-For", "192.0.2.7")
	ctx.Request.Header.Set("X-Forwarded-Proto", "https")
	ctx.Request.Header.Set("X-Forwarded-Host", "api.example")
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	return ctx
}

func feedSpec(timeout time.Duration) Spec {
	return Spec{
		Name:            "/api/v1/feed",
		Timeout:         timeout,
		TrustUserHeader: true,
		Parts: []PartSpec{
			{Key: "profile", Service: "users", Path: "/api/internal/users/{user_id}/profile", Required: true, ForwardHeaders: []string{"Accept-Language"}},
			{Key: "posts", Service: "posts", Path: "/api/internal/feed/{user_id}?limit=20"},
			{Key: "notifications", Service: "notifications", Path: "/api/internal/notifications/{user_id}/count"},
			{Key: "trending", Service: "analytics", Path: "/api/internal/trending"},
		},
	}
}

func mustNew(t testing.TB, spec Spec, resolve func(string) Doer, set *metrics.Set) *Endpoint {
	t.Helper()
	e, err := New(spec, resolve, set)
	if err != nil {
		t.Fatal(err)
	}
	e.workerIdle = 50 * time.Millisecond // tests wait for idle workers to exit
	return e
}

func TestAllSucceed(t *testing.T) {
	u := startUpstreams(t, "users", "posts", "notifications", "analytics")
	u["users"].Record(true)
	set := metrics.NewSet()
	e := mustNew(t, feedSpec(2*time.Second), u.resolver(t), set)

	ctx := newCtx("/api/v1/feed", "X-User-ID", "42/7", "Accept-Language", "de", "Cookie", "secret=1")
	sum := e.Handle(ctx)
	resp := &ctx.Response
	if sum.Status != 200 || resp.StatusCode() != 200 {
		t.Fatalf("status %d (summary %d): %s", resp.StatusCode(), sum.Status, resp.Body())
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "X-Aggregated": "true", "X-Aggregate-Complete": "true", "Cache-Control": ""} {
		if got := string(resp.Header.Peek(h)); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	doc := decode(t, resp)
	if doc.Status != "success" || len(doc.Errors) != 0 || doc.Meta.ServicesCalled != 4 || doc.Meta.ServicesSucceeded != 4 {
		t.Errorf("answer %s", resp.Body())
	}
	// The stubs answer {"instance":ID,"path":PATH}: each part's raw JSON.
	for key, want := range map[string]string{
		"profile":       `{"instance":"users","path":"/api/internal/users/42%2F7/profile"}`,
		"posts":         `{"instance":"posts","path":"/api/internal/feed/42%2F7"}`,
		"notifications": `{"instance":"notifications","path":"/api/internal/notifications/42%2F7/count"}`,
		"trending":      `{"instance":"analytics","path":"/api/internal/trending"}`,
	} {
		if got := string(doc.Data[key]); got != want {
			t.Errorf("data.%s = %s, want %s", key, got, want)
		}
	}
	if sum.Called != 4 || sum.Succeeded != 4 || sum.Failed != 0 || sum.Outcomes[0] != OutcomeOK || sum.Outcomes[4] != OutcomePending {
		t.Errorf("summary %+v", sum)
	}
	if got := string(e.AppendParts(nil, &sum)); got != "profile=ok posts=ok notifications=ok trending=ok" {
		t.Errorf("AppendParts = %q", got)
	}

	// The part request: GET, the filled target, the client's Host, the
	// gateway's headers and the part's forward_headers, nothing else.
	rs := u["users"].Received()
	if len(rs) != 1 {
		t.Fatalf("users received %d requests", len(rs))
	}
	r := rs[0]
	if r.Method != "GET" || r.URI != "/api/internal/users/42%2F7/profile" || r.Host != "gw.example" {
		t.Errorf("part request %s %s Host %s", r.Method, r.URI, r.Host)
	}
	for h, want := range map[string]string{
		"X-Request-Id": "req-1", "X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "https",
		"X-Forwarded-Host": "api.example", "Accept-Language": "de", "X-Gateway-Service": "users", "X-User-Id": "42/7",
	} {
		if got := strings.Join(r.Header[h], ","); got != want {
			t.Errorf("part header %s = %q, want %q (headers %v)", h, got, want, r.Header)
		}
	}
	if _, ok := r.Header["Cookie"]; ok {
		t.Errorf("Cookie forwarded without forward_headers")
	}

	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	for _, want := range []string{
		`fastgate_aggregate_requests_total{aggregate="/api/v1/feed",status="success"} 1`,
		`fastgate_aggregate_requests_total{aggregate="/api/v1/feed",status="error"} 0`,
		`fastgate_aggregate_part_total{aggregate="/api/v1/feed",part="posts",outcome="ok"} 1`,
		`fastgate_aggregate_part_total{aggregate="/api/v1/feed",part="posts",outcome="timeout"} 0`,
		`fastgate_aggregate_duration_seconds_count{aggregate="/api/v1/feed"} 1`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestFailures runs one aggregate per failure cause. Each case changes the
// spec or the upstreams, then checks the answer.
func TestFailures(t *testing.T) {
	tests := []struct {
		name       string
		timeout    time.Duration
		setup      func(u upstreams, s *Spec)
		status     int
		doc        string // "status" field
		complete   string
		failedPart string
		partStatus int
		partError  string
		maxElapsed time.Duration
		minElapsed time.Duration
	}{
		{
			name: "slow part beyond its timeout", timeout: 2 * time.Second,
			setup: func(u upstreams, s *Spec) {
				u["posts"].SetLatency(time.Second)
				s.Parts[1].Timeout = 150 * time.Millisecond
			},
			status: 200, doc: "partial", complete: "false", failedPart: "posts", partStatus: 504, partError: "timeout",
			// Loose bounds (the machine may be loaded), well before the part's answer.
			minElapsed: 150 * time.Millisecond, maxElapsed: 750 * time.Millisecond,
		},
		{
			name:   "part down",
			setup:  func(u upstreams, s *Spec) { s.Parts[2].Service = "down" },
			status: 200, doc: "partial", complete: "false", failedPart: "notifications", partStatus: 502, partError: "unreachable",
		},
		{
			name: "non-JSON part",
			setup: func(u upstreams, s *Spec) {
				s.Parts[3].Service = "html"
			},
			status: 200, doc: "partial", complete: "false", failedPart: "trending", partStatus: 502, partError: "invalid_json",
		},
		{
			name:   "part answers 503",
			setup:  func(u upstreams, s *Spec) { u["analytics"].SetStatus(503) },
			status: 200, doc: "partial", complete: "false", failedPart: "trending", partStatus: 503, partError: "bad_status",
		},
		{
			name: "part too large",
			setup: func(u upstreams, s *Spec) {
				s.MaxPartBytes = 100
				s.Parts[1].Path = "/api/internal/feed/{user_id}/" + strings.Repeat("x", 80)
			},
			status: 200, doc: "partial", complete: "false", failedPart: "posts", partStatus: 502, partError: "too_large",
		},
		{
			name:   "status_on_partial",
			setup:  func(u upstreams, s *Spec) { s.StatusOnPartial = 206; s.Parts[2].Service = "down" },
			status: 206, doc: "partial", complete: "false", failedPart: "notifications", partStatus: 502, partError: "unreachable",
		},
		{
			name:   "required part failing",
			setup:  func(u upstreams, s *Spec) { u["users"].SetStatus(500) },
			status: 502, doc: "error", complete: "false", failedPart: "profile", partStatus: 500, partError: "bad_status",
		},
		{
			name: "required part timing out", timeout: 250 * time.Millisecond,
			setup:  func(u upstreams, s *Spec) { u["users"].SetLatency(time.Second) },
			status: 504, doc: "error", complete: "false", failedPart: "profile", partStatus: 504,
			minElapsed: 250 * time.Millisecond, maxElapsed: 850 * time.Millisecond,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := startUpstreams(t, "users", "posts", "notifications", "analytics")
			html, err := stub.Start(stub.Options{ID: "html", Handler: func(ctx *fasthttp.RequestCtx) bool {
				ctx.SetContentType("text/html")
				ctx.SetBodyString("<html>oops</html>")
				return true
			}})
			if err != nil {
				t.Fatal(err)
			}
			u["html"] = html
			if tc.timeout == 0 {
				tc.timeout = 2 * time.Second
			}
			spec := feedSpec(tc.timeout)
			tc.setup(u, &spec)
			e := mustNew(t, spec, u.resolver(t), nil)

			ctx := newCtx("/api/v1/feed", "X-User-ID", "42")
			start := time.Now()
			sum := e.Handle(ctx)
			elapsed := time.Since(start)
			resp := &ctx.Response
			if resp.StatusCode() != tc.status || sum.Status != tc.status {
				t.Errorf("status %d (summary %d), want %d: %s", resp.StatusCode(), sum.Status, tc.status, resp.Body())
			}
			if got := string(resp.Header.Peek("X-Aggregate-Complete")); got != tc.complete {
				t.Errorf("X-Aggregate-Complete = %q, want %q", got, tc.complete)
			}
			if got := string(resp.Header.Peek("Cache-Control")); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			doc := decode(t, resp)
			if doc.Status != tc.doc {
				t.Errorf("status %q, want %q", doc.Status, tc.doc)
			}
			pe, ok := doc.Errors[tc.failedPart]
			if !ok || pe.Status != tc.partStatus || tc.partError != "" && pe.Error != tc.partError {
				t.Errorf("errors.%s = %+v, want %d %s: %s", tc.failedPart, pe, tc.partStatus, tc.partError, resp.Body())
			}
			if string(doc.Data[tc.failedPart]) != "null" {
				t.Errorf("data.%s = %s, want null", tc.failedPart, doc.Data[tc.failedPart])
			}
			if len(doc.Errors) != 1 || doc.Meta.ServicesSucceeded != 3 || sum.Failed != 1 {
				t.Errorf("want exactly one failed part: %s", resp.Body())
			}
			if tc.maxElapsed > 0 && (elapsed < tc.minElapsed || elapsed > tc.maxElapsed) {
				t.Errorf("answered after %s, want %s..%s", elapsed, tc.minElapsed, tc.maxElapsed)
			}
		})
	}
}

func TestBadRequest(t *testing.T) {
	u := startUpstreams(t, "users", "posts", "notifications", "analytics")
	spec := feedSpec(time.Second)
	spec.TrustUserHeader = false
	spec.Parts[3].Path = "/api/internal/trending?limit={query.limit}"
	e := mustNew(t, spec, u.resolver(t), nil)

	for _, tc := range []struct {
		name, uri string
		headers   []string
		want      string
	}{
		{"untrusted X-User-ID", "/api/v1/feed?limit=3", []string{"X-User-ID", "42", "X-Request-ID", `r"1`}, `{"error":"missing value for {user_id}","request_id":"r\"1"}`},
		{"no user", "/api/v1/feed", nil, `{"error":"missing value for {user_id}","request_id":"req-1"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newCtx(tc.uri, tc.headers...)
			sum := e.Handle(ctx)
			if ctx.Response.StatusCode() != 400 || sum.Status != 400 || string(ctx.Response.Body()) != tc.want {
				t.Errorf("answer %d %s, want 400 %s", ctx.Response.StatusCode(), ctx.Response.Body(), tc.want)
			}
		})
	}
	t.Run("authenticated user, missing query", func(t *testing.T) {
		ctx := newCtx("/api/v1/feed")
		ctx.SetUserValue(UserID, "42")
		e.Handle(ctx)
		if want := `{"error":"missing value for {query.limit}","request_id":"req-1"}`; string(ctx.Response.Body()) != want {
			t.Errorf("answer %s, want %s", ctx.Response.Body(), want)
		}
	})
	t.Run("authenticated user", func(t *testing.T) {
		u["users"].Record(true)
		ctx := newCtx("/api/v1/feed?limit=3", "X-User-ID", "spoofed")
		ctx.SetUserValue(UserID, []byte("42"))
		e.Handle(ctx)
		doc := decode(t, &ctx.Response)
		if doc.Status != "success" || !strings.Contains(string(doc.Data["profile"]), "/users/42/profile") {
			t.Errorf("answer %s", ctx.Response.Body())
		}
		if rs := u["users"].Received(); len(rs) != 1 || strings.Join(rs[0].Header["X-User-Id"], ",") != "42" {
			t.Errorf("part X-User-ID: %+v, want the authenticated user only", rs)
		}
	})
	for _, s := range u {
		if n := s.Requests(); n != 1 {
			t.Errorf("%s served %d requests, want 1: a 400 calls no part", s.ID(), n)
		}
	}
}

// TestRouterParams fills {id} from the user value fasthttp/router sets when
// matching the normalized path, as the gateway's aggregate lookup does: the
// path segment as a string, still percent-encoded. The part gets each value
// escaped once.
func TestRouterParams(t *testing.T) {
	u := startUpstreams(t, "users")
	spec := Spec{Name: "/api/v1/dashboard/{id}", Timeout: time.Second, Parts: []PartSpec{
		{Key: "profile", Service: "users", Path: "/api/internal/users/{id}/profile?lang={query.lang}"},
	}}
	e := mustNew(t, spec, u.resolver(t), nil)
	r := router.New()
	r.GET(spec.Name, func(*fasthttp.RequestCtx) {})
	for _, tc := range []struct {
		name string
		path string // normalized: unreserved escapes decoded, others kept in upper case
		want string // the part's path
	}{
		{"plain", "/api/v1/dashboard/42", "/api/internal/users/42/profile"},
		{"space", "/api/v1/dashboard/john%20doe", "/api/internal/users/john%20doe/profile"},
		{"utf8", "/api/v1/dashboard/caf%C3%A9", "/api/internal/users/caf%C3%A9/profile"},
		{"escaped percent", "/api/v1/dashboard/100%25", "/api/internal/users/100%25/profile"},
		{"double escape", "/api/v1/dashboard/a%2520b", "/api/internal/users/a%2520b/profile"},
		{"reserved", "/api/v1/dashboard/a+b@c%3F", "/api/internal/users/a%2Bb%40c%3F/profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newCtx(tc.path + "?lang=pt-BR")
			if h, _ := r.Lookup(fasthttp.MethodGet, tc.path, ctx); h == nil {
				t.Fatalf("router: no match for %s", tc.path)
			}
			e.Handle(ctx)
			doc := decode(t, &ctx.Response)
			if want := `{"instance":"users","path":"` + tc.want + `"}`; string(doc.Data["profile"]) != want {
				t.Errorf("data.profile = %s, want %s", doc.Data["profile"], want)
			}
		})
	}
	t.Run("decoded value", func(t *testing.T) { // from a caller other than the router
		ctx := newCtx("/api/v1/dashboard/x?lang=pt-BR")
		ctx.SetUserValue("id", "a b")
		e.Handle(ctx)
		doc := decode(t, &ctx.Response)
		if want := `{"instance":"users","path":"/api/internal/users/a%20b/profile"}`; string(doc.Data["profile"]) != want {
			t.Errorf("data.profile = %s, want %s", doc.Data["profile"], want)
		}
	})
}

// lateDoer ignores the deadline: it answers extra after it, like a Doer
// whose retry overshoots. Parts using it are abandoned at the aggregate's
// deadline and finish on their own.
type lateDoer struct {
	d     Doer
	extra time.Duration
}

func (l lateDoer) DoDeadline(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	time.Sleep(time.Until(deadline) + l.extra)
	return l.d.DoDeadline(req, resp, time.Now().Add(time.Second))
}

// partGoroutines counts goroutines running a part.
func partGoroutines() int { return countStacks("aggregate.(*slot).do") }

// workers counts part workers, busy or idle.
func workers() int { return countStacks("aggregate.(*Endpoint).worker") }

func countStacks(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte(fn))
}

// waitFor polls cond until it holds, for at most 5s (a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("timed out waiting for %s; goroutines:\n%s", what, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeadlineAbandonsParts(t *testing.T) {
	u := startUpstreams(t, "users", "posts", "notifications", "analytics")
	resolve := u.resolver(t)
	late := map[string]bool{"posts": true, "analytics": true}
	e := mustNew(t, feedSpec(200*time.Millisecond), func(s string) Doer {
		if late[s] {
			return lateDoer{resolve(s), 600 * time.Millisecond}
		}
		return resolve(s)
	}, nil)
	// Concurrent requests: abandoned parts finish while later requests
	// reuse pooled calls, which the race detector checks. The goroutines
	// this package starts are the parts' (the total count varies with the
	// keep-alive connections the HostClients open; TestClientDisconnect
	// checks it).
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				abandonOnce(t, e)
			}
		}()
	}
	wg.Wait()
	if partGoroutines() == 0 {
		t.Errorf("no part still running after the answers: nothing was abandoned")
	}
	waitFor(t, "abandoned parts to finish", func() bool { return partGoroutines() == 0 })
	waitFor(t, "idle workers to exit", func() bool { return workers() == 0 })
}

// abandonOnce runs the feed with posts and trending answering 600ms after
// the 200ms deadline: the answer comes at the deadline without them.
func abandonOnce(t *testing.T, e *Endpoint) {
	ctx := newCtx("/api/v1/feed", "X-User-ID", "42")
	start := time.Now()
	sum := e.Handle(ctx)
	if el := time.Since(start); el < 200*time.Millisecond || el > 700*time.Millisecond {
		t.Errorf("answered after %s, want about the 200ms deadline", el)
	}
	var doc answerDoc
	if err := json.Unmarshal(ctx.Response.Body(), &doc); err != nil {
		t.Errorf("answer: %v", err)
		return
	}
	if sum.Outcomes[1] != OutcomeDeadline || sum.Outcomes[3] != OutcomeDeadline || doc.Errors["posts"].Error != "deadline" || doc.Errors["trending"].Status != 504 {
		t.Errorf("summary %+v answer %s", sum, ctx.Response.Body())
	}
	// profile and notifications answer at once, unless the machine stalls
	// past the deadline.
	if sum.Outcomes[0] == OutcomeOK && (sum.Status != 200 || doc.Status != "partial" || !strings.Contains(string(doc.Data["profile"]), `"/api/internal/users/42/profile"`)) {
		t.Errorf("summary %+v answer %s", sum, ctx.Response.Body())
	}
}

// TestClientDisconnect: the client goes away mid-aggregate; the parts
// finish (some abandoned at the deadline) and nothing is left running.
func TestClientDisconnect(t *testing.T) {
	u := startUpstreams(t, "users", "posts", "notifications", "analytics")
	u["posts"].SetLatency(150 * time.Millisecond)
	resolve := u.resolver(t)
	e := mustNew(t, feedSpec(300*time.Millisecond), func(s string) Doer {
		if s == "analytics" {
			return lateDoer{resolve(s), 100 * time.Millisecond}
		}
		return resolve(s)
	}, nil)
	handled := make(chan Summary, 1)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { handled <- e.Handle(ctx) }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	request := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET /api/v1/feed HTTP/1.1\r\nHost: gw\r\nX-User-ID: 7\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// One complete exchange first, so the server's worker exists.
	c := request()
	r, err := http1Status(c)
	if err != nil || r != 200 {
		t.Fatalf("warm-up: %d %v", r, err)
	}
	_ = c.Close()
	<-handled
	waitFor(t, "warm-up workers to exit", func() bool { return workers() == 0 })
	baseline := runtime.NumGoroutine()

	c = request()
	time.Sleep(50 * time.Millisecond)
	_ = c.Close() // mid-aggregate
	sum := <-handled
	if sum.Outcomes[3] != OutcomeDeadline {
		t.Errorf("summary %+v, want trending abandoned at the deadline", sum)
	}
	waitFor(t, "workers to exit", func() bool { return workers() == 0 })
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}

func http1Status(c net.Conn) (int, error) {
	var resp fasthttp.Response
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

func TestNewErrors(t *testing.T) {
	resolve := func(s string) Doer {
		if s == "none" {
			return nil
		}
		return hostClient("127.0.0.1:1")
	}
	p := PartSpec{Key: "a", Service: "svc", Path: "/a"}
	for _, tc := range []struct {
		name string
		spec Spec
		want error
	}{
		{"no timeout", Spec{Parts: []PartSpec{p}}, ErrBadTimeout},
		{"no parts", Spec{Timeout: time.Second}, ErrNoParts},
		{"too many", Spec{Timeout: time.Second, Parts: make([]PartSpec, MaxParts+1)}, ErrTooManyParts},
		{"bad key", Spec{Timeout: time.Second, Parts: []PartSpec{{Key: `a"`, Service: "svc", Path: "/a"}}}, ErrBadKey},
		{"duplicate key", Spec{Timeout: time.Second, Parts: []PartSpec{p, p}}, ErrBadKey},
		{"bad path", Spec{Timeout: time.Second, Parts: []PartSpec{{Key: "a", Service: "svc", Path: "a"}}}, ErrBadPath},
		{"bad placeholder", Spec{Timeout: time.Second, Parts: []PartSpec{{Key: "a", Service: "svc", Path: "/{a b}"}}}, ErrBadPlaceholder},
		{"no doer", Spec{Timeout: time.Second, Parts: []PartSpec{{Key: "a", Service: "none", Path: "/a"}}}, ErrNoDoer},
		{"bad status", Spec{Timeout: time.Second, StatusOnPartial: 99, Parts: []PartSpec{p}}, ErrBadStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.spec, resolve, nil); !errors.Is(err, tc.want) {
				t.Errorf("New = %v, want %v", err, tc.want)
			}
		})
	}
}
