package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
)

func TestOpenLoopRate(t *testing.T) {
	addr := startTestStub(t, 256)
	tests := []struct {
		name   string
		method string
		body   []byte
		rate   float64
		d      time.Duration
	}{
		{name: "get 1000/s", method: "GET", rate: 1000, d: 500 * time.Millisecond},
		{name: "post 400/s", method: "POST", body: make([]byte, 4096), rate: 400, d: 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := openLoop{Addr: addr, Method: tt.method, Path: "/", Body: tt.body, Rate: tt.rate, Duration: tt.d, Conns: 8}.run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := int64(tt.rate * tt.d.Seconds())
			if s.Requests != want || s.Errors.Total() != 0 {
				t.Fatalf("requests %d errors %+v, want %d and none", s.Requests, s.Errors, want)
			}
			if !near(s.RPS, tt.rate, 0.25) {
				t.Errorf("rps %.0f, want about %.0f", s.RPS, tt.rate)
			}
			if !(s.P50US > 0 && s.P50US <= s.P99US && s.P99US <= s.P999US && s.P999US <= s.MaxUS) {
				t.Errorf("percentiles out of order: %+v", s)
			}
		})
	}
}

// TestOpenLoopNoCoordinatedOmission stalls the server: one connection, 50 ms
// per answer, 100 requests due per second. Measured from the send, every
// latency would be 50 ms; measured from the intended send time, the queue
// shows and the last requests wait over a second.
func TestOpenLoopNoCoordinatedOmission(t *testing.T) {
	s, err := stub.Start(stub.Options{Latency: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	res, err := openLoop{Addr: s.Addr(), Method: "GET", Path: "/", Rate: 100, Duration: 300 * time.Millisecond,
		Conns: 1, Timeout: 3 * time.Second}.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 {
		t.Fatalf("requests = %d, want 30 (errors %+v)", res.Requests, res.Errors)
	}
	// Request i is due at 10i ms and done at about 50(i+1) ms.
	if res.MaxUS < 1_000_000 || res.P50US < 500_000 {
		t.Fatalf("queueing hidden: p50 %v max %v µs", res.P50US, res.MaxUS)
	}
}

func TestOpenLoopErrors(t *testing.T) {
	addr := startTestStub(t, 0)
	dead, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		o     openLoop
		check func(t *testing.T, s sample, err error)
	}{
		{name: "invalid", o: openLoop{Addr: addr, Rate: 0, Duration: time.Second, Conns: 1},
			check: func(t *testing.T, _ sample, err error) {
				if !errors.Is(err, errBadOpenLoop) {
					t.Fatalf("err = %v", err)
				}
			}},
		{name: "refused", o: openLoop{Addr: dead, Method: "GET", Path: "/", Rate: 100, Duration: 100 * time.Millisecond, Conns: 2},
			check: func(t *testing.T, s sample, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if s.Requests != 0 || s.Errors.Total() != 10 || s.Errors.Connect+s.Errors.Read != 10 {
					t.Fatalf("sample %+v, want 10 connection errors", s)
				}
			}},
	}
	slowStub, err := stub.Start(stub.Options{Latency: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slowStub.Close() })
	slow := slowStub.Addr()
	tests = append(tests, struct {
		name  string
		o     openLoop
		check func(t *testing.T, s sample, err error)
	}{name: "timeouts count in the percentiles", o: openLoop{Addr: slow, Method: "GET", Path: "/", Rate: 100, Duration: 100 * time.Millisecond, Conns: 10, Timeout: 100 * time.Millisecond},
		check: func(t *testing.T, s sample, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if s.Requests != 0 || s.Errors.Timeout != 10 {
				t.Fatalf("sample %+v, want 10 timeouts", s)
			}
			if s.P50US < 100_000 || s.MaxUS < 100_000 {
				t.Fatalf("p50 %v max %v µs: the timed-out requests are not in the percentiles", s.P50US, s.MaxUS)
			}
		}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.o.run(t.Context())
			tt.check(t, s, err)
		})
	}
}

func TestOpenLoopStatusErrors(t *testing.T) {
	s, err := stub.Start(stub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.SetStatus(502)
	res, err := openLoop{Addr: s.Addr(), Method: "GET", Path: "/", Rate: 200, Duration: 100 * time.Millisecond, Conns: 2}.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors.Status != 20 || res.Requests != 0 {
		t.Fatalf("sample %+v, want 20 status errors", res)
	}
}

// TestOpenLoopTokens: with Tokens, each request carries the next token,
// from the position in the cursor file on, and the run saves where it
// stopped; a second run goes on from there.
func TestOpenLoopTokens(t *testing.T) {
	st, err := stub.Start(stub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	st.Record(true)
	const n, conns = 40, 4
	toks := make([][]byte, n)
	for i := range toks {
		toks[i] = fmt.Appendf(nil, "Bearer tok-%d", i)
	}
	cursor := filepath.Join(t.TempDir(), "cursor-stub")
	if err := writeCursor(cursor, 30); err != nil { // where a wrk run stopped
		t.Fatal(err)
	}
	o := openLoop{Addr: st.Addr(), Method: "GET", Path: "/", Rate: 1000, Duration: 200 * time.Millisecond, Conns: conns,
		Tokens: toks, Cursor: cursor}
	for run, want := range []int64{230, 430} {
		before := len(st.Received())
		s, err := o.run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s.Requests != 200 || s.Errors.Total() != 0 {
			t.Fatalf("run %d: %d requests, errors %+v", run, s.Requests, s.Errors)
		}
		if c, err := readCursor(cursor); err != nil || c != want {
			t.Fatalf("run %d: cursor %d (%v), want %d", run, c, err, want)
		}
		// The positions want-200 .. want-1, each token 200/n times, a
		// token back only after the n-1 others (give or take the
		// requests in flight).
		counts := map[string]int{}
		last := map[string]int{}
		for i, r := range st.Received()[before:] {
			h := r.Header["Authorization"]
			if len(h) != 1 {
				t.Fatalf("run %d: request %d with Authorization %q", run, i, h)
			}
			tok := h[0]
			if j, ok := last[tok]; ok && i-j < n-2*conns {
				t.Fatalf("run %d: %s again after %d requests", run, tok, i-j)
			}
			last[tok] = i
			counts[tok]++
		}
		for i := range n {
			if c := counts[string(toks[i])]; c != 200/n {
				t.Fatalf("run %d: token %d sent %d times, want %d", run, i, c, 200/n)
			}
		}
	}
}
