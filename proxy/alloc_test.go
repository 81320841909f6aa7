//go:build !race

package proxy

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestHandleAllocs keeps the proxied GET allocation-free: access log and
// metrics on, request ID generated, X-Forwarded-* set, upstream pooled.
func TestHandleAllocs(t *testing.T) {
	bg := newBenchGateway(t)
	tests := []struct{ name, raw string }{
		{"get", "GET /api/v1/users/1?x=1 HTTP/1.1\r\nHost: gateway\r\n\r\n"},
		{"dot segments", "GET /api/v1/users/../x/%7euser HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: abc-123\r\n\r\n"},
		{"hop-by-hop", "GET /api/x HTTP/1.1\r\nHost: gateway\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n\r\n"},
		{"not found", "GET /nope HTTP/1.1\r\nHost: gateway\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}, nil)
			rr := newRawRequest(tt.raw)
			rr.handleOnce(bg.g, &ctx) // warm pools
			if allocs := testing.AllocsPerRun(200, func() { rr.handleOnce(bg.g, &ctx) }); allocs != 0 {
				t.Fatalf("%v allocs per request, want 0", allocs)
			}
		})
	}
}
