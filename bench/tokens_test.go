package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

// TestPrepareTokens checks the token file holds n distinct tokens, one per
// line, that the returned Authorization values are the same tokens in the
// same order, and that the gateway's own verifier, built from the config
// the suite generates, accepts token i with sub i.
func TestPrepareTokens(t *testing.T) {
	pc := featurePeerConfig(t, featureJWT)
	c, err := config.Parse([]byte(gatewayConfig(pc)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(c.Auth.JWT, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		n    int
	}{
		{name: "one", n: 1},
		{name: "more than the CPUs, not a multiple of them", n: 67},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tokenFile)
			bearers, err := prepareTokens(pc.JWT, path, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != tt.n || len(bearers) != tt.n || !bytes.HasSuffix(b, []byte("\n")) {
				t.Fatalf("%d lines, %d values, want %d", len(lines), len(bearers), tt.n)
			}
			distinct := map[string]bool{}
			for i, line := range lines {
				distinct[line] = true
				if string(bearers[i]) != "Bearer "+line {
					t.Fatalf("value %d = %q, line %q", i, bearers[i], line)
				}
				claims, err := v.Verify(bearers[i])
				if err != nil || claims.Subject != strconv.Itoa(i) {
					t.Fatalf("token %d: claims %+v, err %v", i, claims, err)
				}
			}
			if len(distinct) != tt.n {
				t.Fatalf("%d distinct tokens of %d", len(distinct), tt.n)
			}
		})
	}
	if _, err := prepareTokens(pc.JWT, filepath.Join(t.TempDir(), tokenFile), 0); err == nil {
		t.Fatal("0 tokens: no error")
	}
	bad := *pc.JWT
	bad.SigningKeyFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := prepareTokens(&bad, filepath.Join(t.TempDir(), tokenFile), 3); err == nil {
		t.Fatal("no signing key: no error")
	}
}

func TestTokenCycle(t *testing.T) {
	vals := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	tests := []struct {
		name  string
		start int64
		takes int
		want  string
	}{
		{name: "from the start", start: 0, takes: 4, want: "abca"},
		{name: "from a cursor", start: 2, takes: 3, want: "cab"},
		{name: "from a cursor past the end", start: 7, takes: 3, want: "bca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTokenCycle(vals, tt.start)
			var got strings.Builder
			for range tt.takes {
				got.Write(c.take())
			}
			if got.String() != tt.want || c.pos() != tt.start+int64(tt.takes) {
				t.Fatalf("took %q to pos %d, want %q to %d", got.String(), c.pos(), tt.want, tt.start+int64(tt.takes))
			}
		})
	}
}

// TestTokenCycleConcurrent: workers sharing a cycle take every value
// equally often, and each take moves it on by one.
func TestTokenCycleConcurrent(t *testing.T) {
	const n, workers, each = 10, 8, 1000
	vals := make([][]byte, n)
	for i := range vals {
		vals[i] = []byte{byte('0' + i)}
	}
	c := newTokenCycle(vals, 0)
	counts := make([][n]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				counts[w][c.take()[0]-'0']++
			}
		})
	}
	wg.Wait()
	for i := range n {
		total := 0
		for w := range workers {
			total += counts[w][i]
		}
		if total != workers*each/n {
			t.Fatalf("value %d taken %d times, want %d", i, total, workers*each/n)
		}
	}
	if c.pos() != workers*each {
		t.Fatalf("pos %d, want %d", c.pos(), workers*each)
	}
}

// TestTokenCycleNoAlloc: the open loop's per-request work on the token,
// the take and the header set, allocates nothing once the header's buffer
// has grown.
func TestTokenCycleNoAlloc(t *testing.T) {
	c := newTokenCycle([][]byte{[]byte("Bearer aaaa"), []byte("Bearer bbbb")}, 0)
	var req fasthttp.Request
	req.Header.SetBytesV(fasthttp.HeaderAuthorization, c.take())
	if n := testing.AllocsPerRun(1000, func() {
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, c.take())
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
	if got := string(req.Header.Peek(fasthttp.HeaderAuthorization)); got != "Bearer bbbb" {
		t.Fatalf("Authorization %q", got)
	}
}

func TestCursorFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "": no file
		want    int64
		wantErr bool
	}{
		{name: "no file yet", want: 0},
		{name: "written by wrk's script", content: "65536\n", want: 65536},
		{name: "no newline", content: "12", want: 12},
		{name: "garbage", content: "twelve\n", wantErr: true},
		{name: "negative", content: "-1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := readCursor(path)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("readCursor = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	path := filepath.Join(dir, "round-trip")
	if err := writeCursor(path, 123456); err != nil {
		t.Fatal(err)
	}
	if got, err := readCursor(path); err != nil || got != 123456 {
		t.Fatalf("read back %d, %v", got, err)
	}
}
