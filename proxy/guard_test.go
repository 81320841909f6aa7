package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

// TestCheckRequest covers what fasthttp's parser accepts but the gateway
// must refuse (see guard.go); requests fasthttp itself rejects are covered
// end to end.
func TestCheckRequest(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[server]
max_uri_bytes = 64
max_header_bytes = "1KiB"
[[services]]
name = "s"
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
[[routes]]
prefix = "/"
service = "s"
`))
	if err != nil {
		t.Fatal(err)
	}
	g := mustNew(t, cfg, Options{})
	tests := []struct {
		name   string
		raw    string
		status int
	}{
		{"plain GET", "GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n", 0},
		{"host with port", "GET /a HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 0},
		{"ipv6 host", "GET /a HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0},
		{"chunked", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
		{"CHUNKED upper case", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n", 0},
		{"absolute form, same host", "GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n", 0},
		{"HTTP/1.0", "GET /a HTTP/1.0\r\nHost: h\r\n\r\n", 0},
		{"long target", "GET /" + strings.Repeat("a", 64) + " HTTP/1.1\r\nHost: h\r\n\r\n", fasthttp.StatusRequestURITooLong},
		{"large headers", "GET /a HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 1100) + "\r\n\r\n", fasthttp.StatusRequestHeaderFieldsTooLarge},
		{"CL and TE", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", fasthttp.StatusBadRequest},
		{"TE identity", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", fasthttp.StatusNotImplemented},
		{"space in name", "GET /a HTTP/1.1\r\nHost: h\r\nContent Length: 5\r\n\r\n", fasthttp.StatusBadRequest},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", fasthttp.StatusBadRequest},
		{"bare LF", "GET /a HTTP/1.1\r\nHost: h\nX-A: a\r\n\r\n", fasthttp.StatusBadRequest},
		{"userinfo in host", "GET /a HTTP/1.1\r\nHost: good@evil\r\n\r\n", fasthttp.StatusBadRequest},
		{"sub-delims in host", "GET /a HTTP/1.1\r\nHost: a!b\r\n\r\n", fasthttp.StatusBadRequest},
		{"absolute form, other host", "GET http://evil/x HTTP/1.1\r\nHost: good\r\n\r\n", fasthttp.StatusBadRequest},
		{"CONNECT", "CONNECT /a HTTP/1.1\r\nHost: h\r\n\r\n", fasthttp.StatusMethodNotAllowed},
		{"TRACE", "TRACE /a HTTP/1.1\r\nHost: h\r\n\r\n", fasthttp.StatusMethodNotAllowed},
		{"lower-case method", "get /a HTTP/1.1\r\nHost: h\r\n\r\n", fasthttp.StatusBadRequest},
		{"HTTP/1.9", "GET /a HTTP/1.9\r\nHost: h\r\n\r\n", fasthttp.StatusHTTPVersionNotSupported},
		{"missing host, HTTP/1.0", "GET /a HTTP/1.0\r\n\r\n", fasthttp.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
			if err := ctx.Request.Header.Read(bufio.NewReader(strings.NewReader(tt.raw))); err != nil {
				t.Fatalf("fasthttp rejected it first (%v): move this case to the end-to-end tests", err)
			}
			if status, _ := g.checkRequest(&ctx, &exchange{}); status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
		})
	}
}

func TestValidHost(t *testing.T) {
	for host, want := range map[string]bool{
		"example.com": true, "example.com:80": true, "10.0.0.1": true, "[::1]": true, "[::1]:80": true, "a_b": true,
		"": false, "good@evil": false, "a/b": false, "a:b": false, "a:80:80": false, "[::1": false, "[::1]x": false, "a b": false,
	} {
		if got := validHost([]byte(host)); got != want {
			t.Errorf("validHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestIsHopByHopMatchesList keeps the fast length switch of isHopByHop in
// step with the list stripHopByHop removes.
func TestIsHopByHopMatchesList(t *testing.T) {
	names := append([][]byte{headerConnection, headerExpect}, hopByHopHeaders...)
	for _, n := range names {
		for _, v := range []string{string(n), strings.ToLower(string(n)), strings.ToUpper(string(n))} {
			if !isHopByHop([]byte(v)) {
				t.Errorf("isHopByHop(%q) = false", v)
			}
		}
	}
	for _, v := range []string{"Host", "X-Forwarded-For", "Content-Type", "Keep-Alive2", "T"} {
		if isHopByHop([]byte(v)) {
			t.Errorf("isHopByHop(%q) = true", v)
		}
	}
}
