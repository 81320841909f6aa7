package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// lineBuffer collects access-log lines; safe for concurrent use.
type lineBuffer struct {
	mu    sync.Mutex // guards lines
	lines [][]byte
}

func (w *lineBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.lines = append(w.lines, bytes.Clone(p))
	w.mu.Unlock()
	return len(p), nil
}

// decoded returns every line parsed as a JSON object; a line that is not
// one JSON object ending in a newline fails the test.
func (w *lineBuffer) decoded(t *testing.T) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, l := range w.lines {
		if !bytes.HasSuffix(l, []byte("\n")) || bytes.Count(l, []byte("\n")) != 1 {
			t.Fatalf("access-log write %q is not one line", l)
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("access-log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestAppendAccessLine(t *testing.T) {
	end := time.Date(2026, 11, 26, 9, 5, 7, 999_000_000, time.FixedZone("CET", 3600))
	r := &route{logFields: routeLogFields("/api/", "users")}
	tests := []struct {
		name string
		e    accessEntry
		want string
	}{
		{"proxied", accessEntry{x: &exchange{id: []byte("id-1"), path: []byte("/api/users/7"), route: r}, method: []byte("GET"), status: 200,
			duration: 12345678 * time.Nanosecond, bytes: 256, clientIP: netip.MustParseAddr("10.1.2.3"), end: end},
			`{"request_id":"id-1","method":"GET","path":"/api/users/7","status":200,"route":"/api/","service":"users","attempts":0,"duration":12.345,"bytes":256,"client_ip":"10.1.2.3","time":"2026-11-26T08:05:07Z"}` + "\n"},
		{"no route, escapes", accessEntry{x: &exchange{id: []byte("id-2"), path: []byte("/a\"b\\c\x01\xff\u00e9")}, method: []byte("GET"), status: 404,
			duration: 999 * time.Nanosecond, clientIP: netip.MustParseAddr("::1"), end: end},
			`{"request_id":"id-2","method":"GET","path":"/a\"b\\c\u0001\ufffd` + "\u00e9" + `","status":404,"attempts":0,"duration":0.000,"bytes":0,"client_ip":"::1","time":"2026-11-26T08:05:07Z"}` + "\n"},
		{"long duration", accessEntry{x: &exchange{id: []byte("id-3"), path: []byte("/")}, method: []byte("POST"), status: 504,
			duration: 61*time.Second + 7*time.Microsecond, clientIP: netip.MustParseAddr("192.0.2.1"), end: end},
			`{"request_id":"id-3","method":"POST","path":"/","status":504,"attempts":0,"duration":61000.007,"bytes":0,"client_ip":"192.0.2.1","time":"2026-11-26T08:05:07Z"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendAccessLine(nil, &tt.e))
			if got != tt.want {
				t.Fatalf("line\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("not valid JSON: %s", got)
			}
		})
	}
}

// FuzzAppendAddr: the IPv4 short path writes what netip does.
func FuzzAppendAddr(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{255, 9, 10, 100})
	f.Add([]byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		if got, want := string(appendAddr([]byte("x"), a)), "x"+a.String(); got != want {
			t.Fatalf("appendAddr(%v) = %q, want %q", raw, got, want)
		}
	})
}

// TestAppendStamp: the per-exchange cache gives the same text as a fresh
// format, across second boundaries and back.
func TestAppendStamp(t *testing.T) {
	x := &exchange{}
	base := time.Date(2026, 11, 26, 23, 59, 58, 0, time.UTC)
	for _, d := range []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, time.Second, 26 * time.Hour} {
		tm := base.Add(d)
		if got, want := string(x.appendStamp(nil, tm)), tm.Format(time.RFC3339); got != want {
			t.Errorf("appendStamp(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestAppendRFC3339(t *testing.T) {
	for _, tm := range []time.Time{
		time.Unix(0, 0),
		time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 2, 28, 1, 2, 3, 4, time.FixedZone("X", -7*3600)),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), // out of four digits: time's own format
	} {
		want := tm.UTC().Format(time.RFC3339)
		if got := string(appendRFC3339(nil, tm)); got != want {
			t.Errorf("appendRFC3339(%v) = %s, want %s", tm, got, want)
		}
	}
}

// startAccessLogGateway starts a gateway with the access log on, written to
// the returned buffer, and one route, /api, to a stub; extra is TOML put
// first (a [server] table, say).
func startAccessLogGateway(t *testing.T, extra string) (*e2eGateway, *lineBuffer) {
	t.Helper()
	up := startStub(t, "u1", 0)
	lines := &lineBuffer{}
	gw := startGatewayWith(t, extra+fmt.Sprintf(`
[log]
access = true
[[services]]
name = "users"
  [[services.instances]]
  id = "u1"
  addr = %q
[[routes]]
prefix = "/api"
service = "users"
`, up.Addr()), Options{Access: lines})
	return gw, lines
}

// TestAccessLogE2E checks the lines a gateway on loopback writes for a
// proxied request, a 404 and a percent-encoded path (logged as normalized,
// still encoded), against what the
// client saw.
func TestAccessLogE2E(t *testing.T) {
	gw, lines := startAccessLogGateway(t, "")
	c := newClient(t, gw.addr)
	ok := do(t, c, "GET", "/api/users/7", nil)
	missing := do(t, c, "GET", "/nothing", nil)
	odd := do(t, c, "GET", "/api/%22quoted%22/%C3%A9", nil)

	got := lines.decoded(t)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3", len(got))
	}
	for i, tt := range []struct {
		r      *response
		path   string
		fields map[string]any
	}{
		{ok, "/api/users/7", map[string]any{"route": "/api", "service": "users", "instance": "u1", "attempts": 1.0}},
		{missing, "/nothing", map[string]any{"attempts": 0.0}},
		{odd, "/api/%22quoted%22/%C3%A9", map[string]any{"instance": "u1"}},
	} {
		l := got[i]
		if l["request_id"] != tt.r.get("X-Request-ID") || l["request_id"] == "" {
			t.Errorf("line %d request_id %v, response X-Request-ID %q", i, l["request_id"], tt.r.get("X-Request-ID"))
		}
		if l["status"] != float64(tt.r.status) || l["method"] != "GET" || l["client_ip"] != "127.0.0.1" {
			t.Errorf("line %d: %v, want status %d, GET from 127.0.0.1", i, l, tt.r.status)
		}
		if p, _ := l["path"].(string); p != tt.path {
			t.Errorf("line %d path %q, want %q", i, p, tt.path)
		}
		if l["bytes"] != float64(len(tt.r.body)) {
			t.Errorf("line %d bytes %v, response body %d bytes", i, l["bytes"], len(tt.r.body))
		}
		for k, v := range tt.fields {
			if l[k] != v {
				t.Errorf("line %d %s = %v, want %v", i, k, l[k], v)
			}
		}
		if d, ok := l["duration"].(float64); !ok || d < 0 || d > 5000 {
			t.Errorf("line %d duration %v ms", i, l["duration"])
		}
		if ts, err := time.Parse(time.RFC3339, fmt.Sprint(l["time"])); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("line %d time %v: %v", i, l["time"], err)
		}
	}
	if _, ok := got[1]["route"]; ok {
		t.Errorf("404 line has a route: %v", got[1])
	}
}

// FuzzAppendJSONBytes: any bytes give one valid JSON string that decodes
// to the input with each invalid UTF-8 byte replaced by U+FFFD.
func FuzzAppendJSONBytes(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "\xff\xfe", "é€𝄞", "\xe2\x82"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out := appendJSONBytes(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, out, err)
		}
		var want strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRune(s[i:])
			want.WriteRune(r) // RuneError for an invalid byte
			i += n
		}
		if got != want.String() {
			t.Fatalf("%q -> %s decodes to %q, want %q", s, out, got, want.String())
		}
	})
}

func BenchmarkAppendAccessLine(b *testing.B) {
	r := &route{logFields: routeLogFields("/api/", "users")}
	e := accessEntry{x: &exchange{id: []byte("a8421bf5dd77d169-000000000001"), path: []byte("/api/users/7"), route: r}, method: []byte("GET"), status: 200,
		duration: 1234567, bytes: 256, clientIP: netip.MustParseAddr("10.1.2.3"), end: time.Now()}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendAccessLine(buf[:0], &e)
	}
}

// FuzzAppendDecimal: appendDecimal writes what strconv.AppendInt does.
func FuzzAppendDecimal(f *testing.F) {
	for _, n := range []int64{0, 9, 10, 99, 100, 200, 999, 1000, -1, -1000, math.MaxInt64, math.MinInt64} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if got, want := string(appendDecimal([]byte("x"), n)), "x"+strconv.FormatInt(n, 10); got != want {
			t.Fatalf("appendDecimal(%d) = %q, want %q", n, got, want)
		}
	})
}

// TestParseErrorDuration: a request fasthttp could not parse (here a body
// over max_request_body, first on its connection and after an idle wait
// on a kept-alive one) is logged and measured from when it was answered:
// fasthttp calls the error handler before it sets the request time, which
// is then zero or the previous request's.
func TestParseErrorDuration(t *testing.T) {
	gw, lines := startAccessLogGateway(t, "[server]\nmax_request_body = \"16B\"\n")
	tooLarge := "POST /api/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100)
	if r := dialRaw(t, gw.addr).roundTrip(tooLarge); r.status != 413 {
		t.Fatalf("first request: status %d, want 413", r.status)
	}
	rc := dialRaw(t, gw.addr)
	if r := rc.roundTrip(rawGet("/api/x")); r.status != 200 {
		t.Fatalf("status %d, want 200", r.status)
	}
	time.Sleep(300 * time.Millisecond) // idle on the kept-alive connection
	if r := rc.roundTrip(tooLarge); r.status != 413 {
		t.Fatalf("after a request: status %d, want 413", r.status)
	}
	got := lines.decoded(t)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3", len(got))
	}
	for _, i := range []int{0, 2} {
		if d, _ := got[i]["duration"].(float64); got[i]["status"] != 413.0 || d < 0 || d > 100 {
			t.Errorf("line %d: status %v duration %v ms, want 413 within 100 ms", i, got[i]["status"], got[i]["duration"])
		}
	}
	if sum := metricValue(t, scrape(t, gw), `fastgate_request_duration_seconds_sum{route="_rejected",service=""}`); sum > 1 {
		t.Errorf("_rejected duration sum %v s after two instant 413s", sum)
	}
}

// TestParseErrorLogLine: a request rejected before the handler is logged
// with its method and its path as the handler normalizes it when fasthttp
// kept its header (a Content-Length over max_request_body), and with
// neither when fasthttp reset it (a bad header, or a bad or too large
// chunked body): the reset header would say GET and "/".
func TestParseErrorLogLine(t *testing.T) {
	gw, lines := startAccessLogGateway(t, "[server]\nmax_request_body = \"16B\"\n")
	tests := []struct {
		name         string
		before       string // a good request first on the same connection
		req          string
		status       int
		method, path string
	}{
		{"body too large", "", "PUT /api/x/../y?q=1 HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100), 413, "PUT", "/api/y"},
		{"body too large, encoding kept", "", "PUT /api/a%20b HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100), 413, "PUT", "/api/a%20b"},
		{"body too large, target the handler refuses", "", "PUT /api/x%2F..%2F..%2Fadmin HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100), 413, "PUT", ""},
		{"bad host: header read, URI not parsed", "", "DELETE /api/x HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "DELETE", "/api/x"},
		{"chunked body too large", "", "PUT /api/y HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + strings.Repeat("a", 100) + "\r\n0\r\n\r\n", 413, "", ""},
		{"bad chunk size", "", "PUT /api/y HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "", ""},
		{"bad header line", "", "DELETE /api/zz HTTP/1.1\r\nHost: gw.test\r\nBad Header\r\n\r\n", 400, "", ""},
		{"bad header after a POST", "POST /api/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\n\r\na", "DELETE /api/zz HTTP/1.1\r\nHost: gw.test\r\nBad Header\r\n\r\n", 400, "", ""},
		{"bad content-length", "", "PATCH /api/zz HTTP/1.1\r\nHost: gw.test\r\nContent-Length: zz\r\n\r\n", 400, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, gw.addr)
			n := 1
			if tt.before != "" {
				if r := rc.roundTrip(tt.before); r.status != 200 {
					t.Fatalf("first request: status %d", r.status)
				}
				n++
			}
			if r := rc.roundTrip(tt.req); r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			got := lines.decoded(t)
			if len(got) < n {
				t.Fatalf("%d lines, want %d more", len(got), n)
			}
			l := got[len(got)-1]
			if l["status"] != float64(tt.status) || l["method"] != tt.method || l["path"] != tt.path {
				t.Errorf("line %v, want status %d method %q path %q", l, tt.status, tt.method, tt.path)
			}
		})
	}
}
