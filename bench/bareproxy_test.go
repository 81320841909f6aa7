package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/fastgate/fastgate/stub"
)

func TestBareConfigRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		pc       peerConfig
		maxConns int
	}{
		{"defaults", peerConfig{}.at("127.0.0.1:9000", "/tmp/x", true, []string{"127.0.0.1:1", "127.0.0.1:2"}), 1024},
		{"weights and max_conns", peerConfig{MaxConns: 7, Upstreams: []upstream{{Addr: "[::1]:5", Weight: 3}, {Addr: "127.0.0.1:6", Weight: 1}}, Listen: "127.0.0.1:9"}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := parseBareConfig(strings.NewReader(bareConfig(tt.pc)))
			if err != nil {
				t.Fatal(err)
			}
			if spec.Listen != tt.pc.Listen || spec.MaxConns != tt.maxConns || len(spec.Upstreams) != len(tt.pc.Upstreams) {
				t.Fatalf("spec %+v from %+v", spec, tt.pc)
			}
			for i, u := range tt.pc.Upstreams {
				if got := spec.Upstreams[i]; got.Addr != u.Addr || got.Weight != u.Weight {
					t.Errorf("upstream %d = %+v, want %+v", i, got, u)
				}
			}
		})
	}
}

func TestParseBareConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string // every one must appear in the error
	}{
		{"empty", "", []string{"no listen line", "no upstream line"}},
		{"bad weight", "listen :1\nupstream a:1 0\n", []string{"line 2: upstream weight", "no upstream line"}},
		{"every bad line", "listen :1\nmax_conns -3\nupstream a:1 x\nbogus\n", []string{"line 2: max_conns", "line 3: upstream weight", "line 4: want listen"}},
		{"missing field", "listen\nupstream a:1 1\n", []string{"line 1: want listen", "no listen line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBareConfig(strings.NewReader(tt.conf))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestBareHandlerWeights checks the reference proxy spreads requests by
// weight and answers 502 when the upstream is gone.
func TestBareHandlerWeights(t *testing.T) {
	var addrs []string
	var servers []*stub.Server
	for range 2 {
		s, err := stub.Start(stub.Options{})
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
	}
	h := bareHandler(bareSpec{MaxConns: 4, Upstreams: []upstream{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 3}}})
	do := func() int {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("http://x/")
		h(&ctx)
		return ctx.Response.StatusCode()
	}
	for i := range 40 {
		if code := do(); code != 200 {
			t.Fatalf("request %d: status %d", i, code)
		}
	}
	if a, b := servers[0].Requests(), servers[1].Requests(); a != 10 || b != 30 {
		t.Errorf("requests %d and %d, want 10 and 30", a, b)
	}
	for _, s := range servers {
		_ = s.Close()
	}
	if code := do(); code != fasthttp.StatusBadGateway {
		t.Errorf("upstreams gone: status %d, want 502", code)
	}
}

// TestReferenceTarget runs the fasthttp reference as the suite does (this
// test binary re-executed in -fasthttp-proxy mode) for half a second of
// open-loop load, and checks it sits out the feature scenarios.
func TestReferenceTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	const rate, d = 1000, 500 * time.Millisecond
	s := &suite{
		opts: options{
			Targets: []string{referenceTarget}, OpenDuration: d, Rounds: 1, Rate: rate,
			Timeout: 2 * time.Second, Open: true, OpenFraction: 0.5,
		},
		workDir: t.TempDir(),
		peers:   map[string]peer{referenceTarget: fasthttpPeer(self)},
		missing: map[string]string{},
		stubs:   inProcessStubs,
		keysDir: filepath.Join(root, "keys"),
	}
	for _, sc := range scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			if sc.Feature == featureProxy && sc.Name != "proxy-small" {
				t.Skip("one plain proxy scenario is enough")
			}
			res := s.runScenario(t.Context(), sc)
			tr := res.target(referenceTarget)
			if tr == nil {
				t.Fatalf("no %s result in %+v", referenceTarget, res)
			}
			if sc.Feature != featureProxy {
				if tr.Skipped != notReference || tr.Open != nil {
					t.Errorf("%s = %+v, want skipped: %s", referenceTarget, tr, notReference)
				}
				return
			}
			m := tr.Open
			if tr.Skipped != "" || len(tr.Failures) > 0 || m == nil {
				t.Fatalf("%s result %+v", referenceTarget, tr)
			}
			if m.Requests != int64(rate*d.Seconds()) || m.Errors.Total() != 0 || m.CPUPerReqUS <= 0 {
				t.Errorf("sample %+v", *m)
			}
		})
	}
}
