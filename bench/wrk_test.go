package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
)

// wrkHuman is wrk 4.1 output with --latency and no suite script.
const wrkHuman = `Running 5s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.74ms    2.21ms 103.01ms   92.36%
    Req/Sec    23.22k     4.57k   45.07k    73.95%
  Latency Distribution
     50%  608.00us
     75%    1.97ms
     90%    3.39ms
     99%   10.09ms
  250000 requests in 5.00s, 80.00MB read
Requests/sec:  50000.00
Transfer/sec:     16.00MB
`

// wrkErrors has socket errors, non-2xx answers and second/minute units.
const wrkErrors = `Running 1m test @ http://127.0.0.1:8080/
  2 threads and 512 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   150.12ms  300.00ms    1.99s    90.00%
    Req/Sec     1.23k   100.00     2.00k    70.00%
  Latency Distribution
     50%   50.00ms
     75%  100.00ms
     90%  500.00ms
     99%    1.50s
  73800 requests in 1.00m, 10.00MB read
  Socket errors: connect 3, read 12, write 1, timeout 40
  Non-2xx or 3xx responses: 7
Requests/sec:   1230.00
Transfer/sec:    170.00KB
`

// wrkScripted is wrkHuman plus the suite's done() lines, which win.
const wrkScripted = wrkHuman + `FGBENCH requests 250010
FGBENCH duration_us 5000200
FGBENCH errors 1 2 3 4 5
FGBENCH max_us 103012
FGBENCH p 50 612
FGBENCH p 75 1974
FGBENCH p 90 3392
FGBENCH p 95 4952
FGBENCH p 99 10091
FGBENCH p 99.5 13261
FGBENCH p 99.9 25464
`

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name                     string
		out                      string
		requests                 int64
		rps, p50, p90, p99, p999 float64
		max                      float64
		errs                     errorCounts
		spectrumLen              int
	}{
		{name: "human us and ms", out: wrkHuman, requests: 250000, rps: 50000,
			p50: 608, p90: 3390, p99: 10090, p999: 0, max: 103010, spectrumLen: 4},
		// 7 non-2xx answers: not good requests, out of req/s too.
		{name: "errors and s units", out: wrkErrors, requests: 73793, rps: 1230 * 73793 / 73800.0,
			p50: 50000, p90: 500000, p99: 1500000, max: 1990000, spectrumLen: 4,
			errs: errorCounts{Connect: 3, Read: 12, Write: 1, Timeout: 40, Status: 7}},
		{name: "script lines take precedence", out: wrkScripted, requests: 250005, rps: 250005 / 5.0002,
			p50: 612, p90: 3392, p99: 10091, p999: 25464, max: 103012, spectrumLen: 7,
			errs: errorCounts{Connect: 1, Read: 2, Write: 3, Timeout: 4, Status: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseWrk(tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if s.Requests != tt.requests {
				t.Errorf("requests = %d, want %d", s.Requests, tt.requests)
			}
			checks := []struct {
				what      string
				got, want float64
			}{
				{"rps", s.RPS, tt.rps}, {"p50", s.P50US, tt.p50}, {"p90", s.P90US, tt.p90},
				{"p99", s.P99US, tt.p99}, {"p99.9", s.P999US, tt.p999}, {"max", s.MaxUS, tt.max},
			}
			for _, c := range checks {
				if !near(c.got, c.want, 0.001) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if s.Errors != tt.errs {
				t.Errorf("errors = %+v, want %+v", s.Errors, tt.errs)
			}
			if len(s.Spectrum) != tt.spectrumLen {
				t.Errorf("spectrum has %d points, want %d: %v", len(s.Spectrum), tt.spectrumLen, s.Spectrum)
			}
		})
	}
}

func TestParseWrkFailures(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want error
	}{
		{name: "connection refused", out: "unable to connect to 127.0.0.1:1 Connection refused\n", want: errNoWrkSummary},
		{name: "empty", out: "", want: errNoWrkSummary},
		{name: "bad unit", out: "  Latency Distribution\n     50%   12.00xs\n  10 requests in 1.00s, 1KB read\n"},
		{name: "bad script line", out: wrkHuman + "FGBENCH p fifty 12\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseWrk(tt.out)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "608.00us", want: 608 * time.Microsecond},
		{in: "1.23ms", want: 1230 * time.Microsecond},
		{in: "2.00s", want: 2 * time.Second},
		{in: "1.50m", want: 90 * time.Second},
		{in: "1.00h", want: time.Hour},
		{in: "12ns", bad: true},
		{in: "ms", bad: true},
		{in: "1.2.3ms", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseWrkDuration(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("parsed %q as %v, want error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestWrkArgs(t *testing.T) {
	tests := []struct {
		name string
		run  wrkRun
		want string
	}{
		{name: "rounds duration up", run: wrkRun{URL: "http://127.0.0.1:1/", Threads: 2, Conns: 64, Duration: 1500 * time.Millisecond, Timeout: 2 * time.Second, Script: "s.lua"},
			want: "-t 2 -c 64 -d 2s --timeout 2s --latency -s s.lua http://127.0.0.1:1/"},
		{name: "threads capped by conns", run: wrkRun{URL: "u", Threads: 8, Conns: 4, Duration: time.Second, Timeout: time.Second, Script: "s"},
			want: "-t 4 -c 4 -d 1s --timeout 1s --latency -s s u"},
		{name: "headers before the URL", run: wrkRun{URL: "u", Threads: 2, Conns: 64, Duration: time.Second, Timeout: time.Second, Script: "s",
			Headers: []string{"Authorization: Bearer t"}},
			want: "-t 2 -c 64 -d 1s --timeout 1s --latency -s s -H Authorization: Bearer t u"},
		// The script's init(args) gets wrk's actual thread count, capped
		// by the connections, and the cursor file.
		{name: "token cursor after the URL", run: wrkRun{URL: "u", Threads: 8, Conns: 4, Duration: time.Second, Timeout: time.Second, Script: "s",
			Cursor: "/w/cursor-gateway"},
			want: "-t 4 -c 4 -d 1s --timeout 1s --latency -s s u 4 /w/cursor-gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.run.args(), " "); got != tt.want {
				t.Fatalf("args = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteWrkScript(t *testing.T) {
	tests := []struct {
		name    string
		sc      scenario
		want    []string
		notWant []string
	}{
		{name: "get", sc: scenario{Name: "g", Method: "GET"},
			want:    []string{`wrk.method = "GET"`, "latency:percentile(99.9)", "FGBENCH errors"},
			notWant: []string{"wrk.body", "Authorization", "tokenFile", "saveCursor", "request = function"}},
		{name: "post", sc: scenario{Name: "p", Method: "POST", ReqBody: 4096},
			want: []string{`wrk.method = "POST"`, `wrk.body = string.rep("x", 4096)`, "Content-Type"}},
		{name: "tokens", sc: scenario{Name: "t", Method: "GET", Tokens: 10},
			want: []string{`wrk.method = "GET"`, "/" + tokenFile + `"`, "io.lines(tokenFile)", `thread:set("id", #threads)`,
				"pos = cursorAt(cursor) + id", `wrk.headers["Authorization"] = tokens[pos % #tokens + 1]`, "pos = pos + stride",
				"return wrk.format()", "  saveCursor()\n  local e = summary.errors", "FGBENCH errors", "latency:percentile(99.9)"},
			notWant: []string{"wrk.body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, err := writeWrkScript(dir, tt.sc)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.sc.Tokens > 0 {
				tt.want = append(tt.want, fmt.Sprintf("local tokenFile = %q", filepath.Join(dir, tokenFile)))
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("script lacks %q:\n%s", w, b)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(string(b), w) {
					t.Errorf("script has %q:\n%s", w, b)
				}
			}
			if filepath.Ext(path) != ".lua" {
				t.Errorf("path %s", path)
			}
		})
	}
}

// TestWrkScriptRuns runs the generated script through wrk against a stub to
// prove the Lua is valid and its lines parse.
func TestWrkScriptRuns(t *testing.T) {
	bin := findTool("", "wrk")
	if bin == "" {
		t.Skip("wrk not installed (make bench-deps)")
	}
	addr := startTestStub(t, 256)
	for _, sc := range []scenario{{Name: "get", Method: "GET", Conns: 4}, {Name: "post", Method: "POST", ReqBody: 4096, Conns: 4}} {
		t.Run(sc.Name, func(t *testing.T) {
			script, err := writeWrkScript(t.TempDir(), sc)
			if err != nil {
				t.Fatal(err)
			}
			s, out, err := wrkRun{Bin: bin, URL: "http://" + addr + "/", Threads: 1, Conns: sc.Conns,
				Duration: time.Second, Timeout: time.Second, Script: script}.run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "FGBENCH p 99.9 ") || s.Requests == 0 || s.P999US <= 0 || s.Errors.Total() != 0 {
				t.Fatalf("bad sample %+v from:\n%s", s, out)
			}
		})
	}
}

func near(got, want, rel float64) bool {
	if want == 0 {
		return got == 0
	}
	d := (got - want) / want
	return d < rel && d > -rel
}

// TestWrkScriptTokens runs the token script through wrk (two threads, two
// connections each) against a recording stub, three times: every request
// carries a token of the file; a run sends no token twice before it comes
// round; the two threads share the tokens out, one parity each; the next
// run goes on from the cursor the last one saved; and past the last token
// the order wraps round to the first.
func TestWrkScriptTokens(t *testing.T) {
	bin := findTool("", "wrk")
	if bin == "" {
		t.Skip("wrk not installed (make bench-deps)")
	}
	// 1 ms per answer over 4 connections: about 3500 requests a second,
	// well short of n in a run.
	st, err := stub.Start(stub.Options{Latency: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	st.Record(true)
	const n = 20000
	dir := t.TempDir()
	var toks strings.Builder
	for i := range n {
		fmt.Fprintf(&toks, "tok-%d\n", i) // the stub checks nothing
	}
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte(toks.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := writeWrkScript(dir, scenario{Name: "tokens", Method: "GET", Tokens: n})
	if err != nil {
		t.Fatal(err)
	}
	cursor := filepath.Join(dir, "cursor-stub")
	// run returns the token numbers the stub received, and the cursor after.
	run := func(t *testing.T) ([]int, int64) {
		t.Helper()
		before := len(st.Received())
		_, out, err := wrkRun{Bin: bin, URL: "http://" + st.Addr() + "/", Threads: 2, Conns: 4,
			Duration: time.Second, Timeout: time.Second, Script: script, Cursor: cursor}.run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, r := range st.Received()[before:] {
			var i int
			if h := r.Header["Authorization"]; len(h) != 1 || !strings.HasPrefix(h[0], "Bearer tok-") {
				t.Fatalf("request with Authorization %q; wrk said:\n%s", h, out)
			} else if _, err := fmt.Sscanf(h[0], "Bearer tok-%d", &i); err != nil || i < 0 || i >= n {
				t.Fatalf("token %q not in the file", h[0])
			}
			got = append(got, i)
		}
		c, err := readCursor(cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 100 || !strings.Contains(out, "FGBENCH p 99.9 ") {
			t.Fatalf("%d requests; wrk said:\n%s", len(got), out)
		}
		return got, c
	}
	// check: no token twice, both parities, every token in [lo, hi).
	check := func(t *testing.T, got []int, lo, hi int) {
		t.Helper()
		seen := map[int]bool{}
		var parity [2]int
		for _, i := range got {
			if seen[i] {
				t.Fatalf("token %d sent twice in a run of %d requests", i, len(got))
			}
			seen[i] = true
			parity[i%2]++
			if i < lo || i >= hi {
				t.Fatalf("token %d outside [%d, %d)", i, lo, hi)
			}
		}
		if parity[0] == 0 || parity[1] == 0 {
			t.Fatalf("tokens by parity %v: one thread sent nothing, or both the same tokens", parity)
		}
	}
	first, c1 := run(t)
	check(t, first, 0, int(c1))
	second, c2 := run(t)
	check(t, second, int(c1), int(c2))
	if c1 < int64(len(first)) || c2 < c1+int64(len(second)) {
		t.Fatalf("cursor %d after %d requests, %d after %d more", c1, len(first), c2, len(second))
	}

	if err := writeCursor(cursor, n-3); err != nil {
		t.Fatal(err)
	}
	wrapped, c3 := run(t)
	tail, head := 0, 0 // tokens from the cursor to n, and from 0 to the new cursor
	for _, i := range wrapped {
		if i >= n-3 {
			tail++
		} else if i < int(c3-n) {
			head++
		}
	}
	if tail == 0 || head+tail != len(wrapped) || c3 < n {
		t.Fatalf("from cursor %d: %d tokens at the end, %d from the start, of %d; cursor %d", n-3, tail, head, len(wrapped), c3)
	}
}
