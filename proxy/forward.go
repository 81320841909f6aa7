package proxy

import (
	"bytes"
	"errors"
	"time"

	"github.com/fastgate/fastgate/balance"
	"github.com/valyala/fasthttp"
)

// forward proxies ctx's request to r's service: it rewrites the request in
// place (no copy of the body), tries instances in balancer order within the
// route deadline, and leaves the upstream's response, or an error answer,
// in ctx.Response.
//
// query, a slice of the client's target, is invalid once forward has run:
// the forwarded target is written over the client's. forward returns the
// same bytes from x.uri, valid until x is released.
func (g *Gateway) forward(ctx *fasthttp.RequestCtx, x *exchange, r *route, query []byte, start time.Time) []byte {
	req, resp := &ctx.Request, &ctx.Response

	x.uri = r.appendForwardPath(x.uri[:0], x.path)
	if len(query) > 0 {
		x.uri = append(append(x.uri, '?'), query...)
		query = x.uri[len(x.uri)-len(query):]
	}
	// The server has parsed the client's target; setting the same bytes
	// again would only make the client parse them a second time, to the
	// same URI (about 500 instructions per request, bench/scripts/instr.sh).
	if !bytes.Equal(x.uri, req.Header.RequestURI()) {
		req.SetRequestURIBytes(x.uri)
	}

	// The client's Connection: close is about the client's connection: keep
	// it for the server, never send it upstream.
	closeClient := req.Header.ConnectionClose()
	req.Header.ResetConnectionClose()
	// A body without Content-Type goes on without one: fasthttp's client
	// would add application/octet-stream, a claim the client never made.
	req.Header.SetNoDefaultContentType(true)
	g.setForwardedHeaders(ctx, x, r)

	// Rate limiting (Redis, even when it failed) and a cache miss waiting
	// for another request's fetch may have taken a while: the attempt
	// deadlines start now.
	now := start
	if x.waited {
		now = time.Now()
	}
	err := r.up.try(req, resp, &x.attempts, r.attempt, r.retries, now, x.deadline)

	if closeClient {
		req.Header.SetConnectionClose()
	}
	if err != nil {
		// A failed attempt may have left an answer's headers (Set-Cookie,
		// Content-Encoding, Cache-Control...): none belongs on the error.
		resp.Reset()
		status, msg := statusFor(err)
		writeError(ctx, status, msg, x.id)
		return query
	}
	// The upstream's Connection: close is about the pooled connection.
	resp.Header.ResetConnectionClose()
	if len(resp.Header.PeekTrailerKeys()) > 0 { // before the strip, which would merge them
		x.scratch = dropTrailers(&resp.Header, x.scratch)
	}
	if responseHasHopByHop(&resp.Header) {
		stripHopByHop(resp.Header.PeekAll, resp.Header.DelBytes)
	}
	resp.Header.SetCanonical(headerRequestID, x.id)
	return query
}

// attemptLog records what try did, for the access log.
type attemptLog struct {
	n    int               // attempts made
	last *balance.Instance // the instance of the last attempt
}

// try runs the attempts: the first on the balancer's pick, each retry on
// another instance, while the error allows a retry, retries and the
// service's retry budget remain, and the deadline has not passed. Each
// attempt gets attempt time, within the deadline. It returns the last error,
// or nil once resp holds an upstream answer. Every attempt's outcome feeds
// the instance's breaker; an answer with a failure status (502/503/504 by
// default) counts as a failure there but is passed on, not retried.
//
// now is the time of the call (saving a clock read on the common path).
func (u *upstream) try(req *fasthttp.Request, resp *fasthttp.Response, a *attemptLog, attempt time.Duration, retries int, now, deadline time.Time) error {
	svc := u.svc
	svc.CountRequest(now)
	var tried uint64
	var err error = balance.ErrNoInstance
	for a.n <= retries {
		// Deadline and budget first: a pick may admit a half-open probe,
		// which must then be sent and its outcome recorded.
		if a.n > 0 {
			now = time.Now()
		}
		if !now.Before(deadline) {
			return errRouteTimeout
		}
		if a.n > 0 && !svc.RetryBudgetLeft(now) {
			return err
		}
		in := svc.Pick(tried)
		if in == nil {
			return err // ErrNoInstance on the first attempt, else the last failure
		}
		if a.n > 0 {
			svc.CountRetry(now)
			u.retried.Inc()
			resp.Reset()
		}
		tried = balance.Tried(tried, in)
		a.n++
		a.last = in
		attemptDeadline := now.Add(attempt)
		if deadline.Before(attemptDeadline) {
			attemptDeadline = deadline
		}
		err = in.DoDeadline(req, resp, attemptDeadline)
		sent := !notSent(err)
		if !sent {
			// Nothing reached the instance: no outcome for its breaker. A
			// passed attempt deadline is the route's (now is fresh).
			in.Cancel()
			if err == balance.ErrDeadline {
				return errRouteTimeout
			}
		}
		o := classify(err)
		u.instances[in.Index()].outcomes[o].Inc()
		if sent {
			in.Record(err != nil || svc.FailureStatus(resp.StatusCode()))
		}
		if err == nil {
			return nil
		}
		if !retryable(o, req.Header.Method()) {
			return err
		}
	}
	return err
}

// notSent reports an attempt's error that means the request never left
// the gateway: the attempt deadline had passed, or the instance's pool was
// at max_conns. Neither says anything about the instance's health.
func notSent(err error) bool {
	return err == balance.ErrDeadline || err != nil && errors.Is(err, fasthttp.ErrNoFreeConns)
}

// retryable reports whether a failed attempt may be repeated on another
// instance: always when nothing reached the upstream, otherwise only for
// idempotent methods (never POST or PATCH).
func retryable(o outcome, method []byte) bool {
	if o == outcomeConnectError {
		return true
	}
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodPut, fasthttp.MethodDelete:
		return true
	}
	return false
}

// setForwardedHeaders sets X-Forwarded-For/-Proto/-Host, X-Gateway-Service
// (when r is not nil) and X-Request-ID. X-Forwarded-* from a trusted proxy
// are extended or kept; from anyone else they are replaced.
func (g *Gateway) setForwardedHeaders(ctx *fasthttp.RequestCtx, x *exchange, r *route) {
	h := &ctx.Request.Header
	peer := x.peerAddr(ctx)
	trusted := len(g.trusted) > 0 && g.trusted.contains(peer)

	x.scratch = x.scratch[:0]
	if trusted {
		if prior := h.PeekCanonical(headerXFF); len(prior) > 0 {
			x.scratch = append(append(x.scratch, prior...), ", "...)
		}
	}
	x.scratch = appendAddr(x.scratch, peer)
	h.SetCanonical(headerXFF, x.scratch)

	if !trusted || len(h.PeekCanonical(headerXFProto)) == 0 {
		proto := protoHTTP
		if ctx.IsTLS() {
			proto = protoHTTPS
		}
		h.SetCanonical(headerXFProto, proto)
	}
	if !trusted || len(h.PeekCanonical(headerXFHost)) == 0 {
		h.SetCanonical(headerXFHost, h.Host())
	}
	if r != nil {
		h.SetCanonical(headerGatewaySvc, r.up.name)
	}
	if !x.idKept { // else the request already carries it
		h.SetCanonical(headerRequestID, x.id)
	}
}
