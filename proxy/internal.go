package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/balance"
	"github.com/fastgate/fastgate/health"
	"github.com/valyala/fasthttp"
)

// serveHealth answers the health path with the gateway's status and, per
// service, how many instances are healthy and the state of each:
//
//	{"services":{"user-service":{"healthy_instances":2,"total_instances":2,"status":"2/2",
//	  "instances":[{"id":"user-1","addr":"...","up":true,"breaker":"closed",
//	  "consecutive_failures":0,"effective_weight":3,"last_check":"RFC3339","last_error":""}]}},
//	 "status":"healthy","timestamp":"..."}
//
// status is "degraded" while some service has no healthy instance. The
// answer is 200 either way: the gateway itself is up. last_check and
// last_error are present when the service has active checks.
func (g *Gateway) serveHealth(ctx *fasthttp.RequestCtx, x *exchange) {
	b := x.scratch[:0]
	status := "healthy"
	b = append(b, `{"services":{`...)
	for i, u := range g.upstreams {
		up, total := u.svc.Counts()
		if up == 0 {
			status = "degraded"
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, u.svc.Name())
		b = append(b, `:{"healthy_instances":`...)
		b = strconv.AppendInt(b, int64(up), 10)
		b = append(b, `,"total_instances":`...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `,"status":"`...)
		b = strconv.AppendInt(b, int64(up), 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, `","instances":[`...)
		for j, in := range u.svc.Instances() {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendInstanceHealth(b, in, u.checker, j)
		}
		b = append(b, `]}`...)
	}
	b = append(b, `},"status":"`...)
	b = append(b, status...)
	b = append(b, `","timestamp":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `"}`...)
	x.scratch = b
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	ctx.Response.Header.SetCanonical(headerRequestID, x.id)
	ctx.Response.SetBodyRaw(nil)
	ctx.Response.AppendBody(b)
}

func appendInstanceHealth(b []byte, in *balance.Instance, c *health.Checker, i int) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, in.ID())
	b = append(b, `,"addr":`...)
	b = appendJSONString(b, in.Addr())
	b = append(b, `,"up":`...)
	b = strconv.AppendBool(b, in.Healthy())
	b = append(b, `,"breaker":"`...)
	b = append(b, in.Breaker().State().String()...)
	b = append(b, `","consecutive_failures":`...)
	b = strconv.AppendInt(b, int64(in.Breaker().ConsecutiveFailures()), 10)
	b = append(b, `,"effective_weight":`...)
	b = strconv.AppendInt(b, int64(in.EffectiveWeight()), 10)
	b = append(b, `,"in_flight":`...)
	b = strconv.AppendInt(b, in.InFlight(), 10)
	if c != nil {
		if r := c.Last(i); r != nil {
			b = append(b, `,"last_check":"`...)
			b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `","last_error":`...)
			b = appendJSONString(b, r.Err)
		}
	}
	return append(b, '}')
}

// serveMetrics answers the metrics path with the Prometheus text format:
// the gateway's series, then Go runtime and process metrics.
func (g *Gateway) serveMetrics(ctx *fasthttp.RequestCtx, x *exchange) {
	ctx.Response.Header.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.Response.Header.SetCanonical(headerRequestID, x.id)
	w := ctx.Response.BodyWriter()
	g.metrics.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}

// clientIP is the client's address for logs and limits (see
// trustedProxies.clientIP).
func (g *Gateway) clientIP(ctx *fasthttp.RequestCtx, x *exchange) netip.Addr {
	peer := x.peerAddr(ctx)
	if len(g.trusted) == 0 {
		return peer
	}
	return g.trusted.clientIP(peer, ctx.Request.Header.PeekCanonical(headerXFF))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
