package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// serveHealth answers the health path with the gateway's status and, per
// service, how many instances are healthy:
//
//	{"status":"healthy","timestamp":"...","services":{"user-service":
//	 {"healthy_instances":2,"total_instances":2,"status":"2/2"}}}
//
// status is "degraded" while some service has no healthy instance. The
// answer is 200 either way: the gateway itself is up.
func (g *Gateway) serveHealth(ctx *fasthttp.RequestCtx, x *exchange) {
	b := x.scratch[:0]
	status := "healthy"
	b = append(b, `{"services":{`...)
	for i, s := range g.services {
		up, total := s.Counts()
		if up == 0 {
			status = "degraded"
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, s.Name())
		b = append(b, `:{"healthy_instances":`...)
		b = strconv.AppendInt(b, int64(up), 10)
		b = append(b, `,"total_instances":`...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `,"status":"`...)
		b = strconv.AppendInt(b, int64(up), 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `"}`...)
	}
	b = append(b, `},"status":"`...)
	b = append(b, status...)
	b = append(b, `","timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `"}`...)
	x.scratch = b
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.SetBytesKV(headerRequestID, x.id)
	ctx.Response.SetBodyRaw(nil)
	ctx.Response.AppendBody(b)
}

// serveMetrics answers the metrics path with the Prometheus text format:
// the gateway's series, then Go runtime and process metrics.
func (g *Gateway) serveMetrics(ctx *fasthttp.RequestCtx, x *exchange) {
	ctx.Response.Header.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.Response.Header.SetBytesKV(headerRequestID, x.id)
	w := ctx.Response.BodyWriter()
	g.metrics.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}

// clientIP is the client's address for logs and limits (see
// trustedProxies.clientIP).
func (g *Gateway) clientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	peer := peerAddr(ctx)
	if len(g.trusted) == 0 {
		return peer
	}
	return g.trusted.clientIP(peer, ctx.Request.Header.PeekBytes(headerXFF))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
