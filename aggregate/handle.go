package aggregate

import (
	"bytes"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Handle answers ctx with the aggregate: it calls every part at once and
// writes the whole answer into ctx.Response (status, Content-Type,
// X-Aggregated, X-Aggregate-Complete, Cache-Control: no-store when
// incomplete or when a part's answer was not for sharing (privateAnswer),
// Vary naming the parts' forward_headers, body) once every part settled
// or the deadline passed.
//
// The caller has already set X-Request-ID and X-Forwarded-For/-Proto/-Host
// on ctx.Request: they are copied to every part request, with the part's
// forward_headers, Host and X-Gateway-Service (the part's service). Router
// params are read with ctx.UserValue(name), a string or []byte still
// percent-encoded as in the path it was matched on (as fasthttp/router
// sets them), the user with ctx.UserValue(UserID). A placeholder that
// cannot be filled is answered 400
// {"error":"missing value for {name}","request_id":"..."} and no part is
// called. Handle does not set X-Request-ID on the response.
//
// Handle blocks for at most the aggregate's timeout. Nothing of ctx is
// referenced after it returns (abandoned parts own copies), so ctx may be
// reused at once. The returned Summary is for the access log.
func (e *Endpoint) Handle(ctx *fasthttp.RequestCtx) Summary {
	start := time.Now()
	c := e.pool.Get().(*call)
	var sum Summary
	if bad := c.prepare(ctx); bad != nil {
		e.release(c) // no part started: the call is still ours alone
		e.badRequest(ctx, bad)
		sum.Status = fasthttp.StatusBadRequest
		e.metrics.requests[statusBadRequest].Inc()
		e.metrics.duration.UpdateDuration(start)
		return sum
	}
	c.start(start)
	c.wait(start.Add(e.timeout))
	sum = c.answer(ctx, start)
	c.unref()
	return sum
}

// Slot states.
const (
	slotIdle      uint32 = iota
	slotRunning          // the part's worker owns the slot's result
	slotDone             // settled: the handler may read the result
	slotAbandoned        // the handler gave up on it at the deadline
)

// call is one aggregate request's state, pooled per endpoint. Ownership:
// the handler and every started part each hold a reference; whoever drops
// the last one returns the call to the pool, so a part finishing after the
// deadline releases its own request and response, never the handler.
type call struct {
	e       *Endpoint
	refs    atomic.Int32
	pending atomic.Int32  // parts still running
	settled chan struct{} // signalled by the last part to settle, while it still holds its reference
	timer   *time.Timer
	slots   []slot
	results []result
	out     []byte // the answer; swapped with the response body
}

// slot is one part's request and response.
type slot struct {
	c        *call
	p        *part
	state    atomic.Uint32
	deadline time.Time
	uri      []byte
	res      result
	req      fasthttp.Request
	resp     fasthttp.Response
}

func (e *Endpoint) newCall() *call {
	c := &call{
		e:       e,
		settled: make(chan struct{}, 1),
		timer:   time.NewTimer(time.Hour),
		slots:   make([]slot, len(e.parts)),
		results: make([]result, len(e.parts)),
		out:     make([]byte, 0, 4096),
	}
	c.timer.Stop()
	for i := range c.slots {
		s := &c.slots[i]
		s.c, s.p = c, &e.parts[i]
	}
	return c
}

// prepare builds every part request from ctx. It returns the placeholder
// that could not be filled, or nil.
func (c *call) prepare(ctx *fasthttp.RequestCtx) *segment {
	user := c.e.user(ctx)
	in := &ctx.Request.Header
	for i := range c.slots {
		s := &c.slots[i]
		var bad *segment
		if s.uri, bad = s.p.tmpl.appendURI(s.uri[:0], ctx, user); bad != nil {
			return bad
		}
		req := &s.req
		req.SetRequestURIBytes(s.uri)
		req.Header.SetMethodBytes(methodGet)
		if host := in.Host(); len(host) > 0 {
			req.Header.SetHostBytes(host)
		} else {
			req.Header.SetHostBytes(s.p.service)
		}
		for _, h := range copiedHeaders {
			if v := in.PeekCanonical(h); len(v) > 0 {
				req.Header.SetCanonical(h, v)
			}
		}
		for _, h := range s.p.headers {
			if v := in.PeekCanonical(h); len(v) > 0 {
				req.Header.SetCanonical(h, v)
			}
		}
		req.Header.SetCanonical(headerGatewayService, s.p.service)
		if len(user) > 0 {
			req.Header.SetCanonical(headerUserID, user)
		}
	}
	return nil
}

// user is the id that fills {user_id} and is sent to parts as X-User-ID:
// the UserID value, else the client's X-User-ID when the aggregate trusts
// it, else nil.
func (e *Endpoint) user(ctx *fasthttp.RequestCtx) []byte {
	switch v := ctx.UserValue(UserID).(type) {
	case string:
		return s2b(v)
	case []byte:
		return v
	}
	if e.trustUserHeader {
		return ctx.Request.Header.PeekCanonical(headerUserID)
	}
	return nil
}

// start hands every part, with its deadline, to an idle worker or a new one.
func (c *call) start(now time.Time) {
	c.pending.Store(int32(len(c.slots)))
	c.refs.Store(int32(len(c.slots)) + 1)
	for i := range c.slots {
		s := &c.slots[i]
		s.deadline = now.Add(s.p.timeout)
		s.state.Store(slotRunning)
		select {
		case c.e.work <- s:
		default:
			go c.e.worker(s)
		}
	}
}

// worker runs parts until it has been idle for workerIdle. Reusing
// goroutines spares a part the start of a new one and, above all, the
// growth of its stack (HostClient.Do and the JSON validator need several
// KB): measured, about half the CPU of the aggregate's own work.
func (e *Endpoint) worker(s *slot) {
	idle := time.NewTimer(e.workerIdle)
	defer idle.Stop()
	for {
		s.do()
		idle.Reset(e.workerIdle)
		select {
		case s = <-e.work:
		case <-idle.C:
			return
		}
	}
}

// do runs one part in a worker.
func (s *slot) do() {
	err := s.p.doer.DoDeadline(&s.req, &s.resp, s.deadline)
	s.res = s.settle(err)
	s.state.CompareAndSwap(slotRunning, slotDone)
	c := s.c
	if c.pending.Add(-1) == 0 {
		// Signalled before this part's reference is dropped, so the call
		// cannot be released (and reused) before the signal is in: release
		// drains one the handler did not wait for.
		select {
		case c.settled <- struct{}{}:
		default:
		}
	}
	c.unref()
}

func (s *slot) settle(err error) result {
	switch {
	case err == nil:
	case isTimeout(err) || !time.Now().Before(s.deadline):
		return result{outcome: OutcomeTimeout}
	default:
		return result{outcome: OutcomeUnreachable}
	}
	if ce := s.resp.Header.ContentEncoding(); len(ce) > 0 && string(ce) != "identity" {
		return result{outcome: OutcomeInvalidJSON, status: s.resp.StatusCode()}
	}
	r := checkBody(s.resp.StatusCode(), s.resp.Body(), s.c.e.maxPartBytes)
	r.private = privateAnswer(&s.resp.Header)
	return r
}

// privateAnswer reports whether a part's answer must not be shared: its
// Cache-Control says private, no-store or no-cache, or it sets a cookie.
// The merged answer is then no-store, so that no cache hands one user's
// part to another.
func privateAnswer(h *fasthttp.ResponseHeader) bool {
	for k, v := range h.All() {
		switch {
		case len(k) == len("Set-Cookie") && string(k) == "Set-Cookie":
			return true
		case len(k) == len("Cache-Control") && string(k) == "Cache-Control" && hasPrivateDirective(v):
			return true
		}
	}
	return false
}

// hasPrivateDirective reports whether a Cache-Control value holds
// private, no-store or no-cache (any case, with or without a value).
func hasPrivateDirective(v []byte) bool {
	for len(v) > 0 {
		var d []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			d, v = v[:i], v[i+1:]
		} else {
			d, v = v, nil
		}
		if i := bytes.IndexByte(d, '='); i >= 0 {
			d = d[:i]
		}
		d = bytes.TrimSpace(d)
		if bytes.EqualFold(d, directivePrivate) || bytes.EqualFold(d, directiveNoStore) || bytes.EqualFold(d, directiveNoCache) {
			return true
		}
	}
	return false
}

var (
	directivePrivate = []byte("private")
	directiveNoStore = []byte("no-store")
	directiveNoCache = []byte("no-cache")
)

// isTimeout reports a Doer error meaning the deadline passed (a dial
// timeout is a failure to reach the instance, not a part timeout).
func isTimeout(err error) bool {
	switch {
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return false
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// wait returns when every part settled or at deadline.
func (c *call) wait(deadline time.Time) {
	c.timer.Reset(time.Until(deadline))
	select {
	case <-c.settled:
	case <-c.timer.C:
	}
	c.timer.Stop() // Go >= 1.23 timers: no stale tick after Stop
}

// unref drops one reference; the last one out releases the call.
func (c *call) unref() {
	if c.refs.Add(-1) == 0 {
		c.e.release(c)
	}
}

// maxPooledAnswer bounds the answer buffer a pooled call keeps.
const maxPooledAnswer = 1 << 20

// release resets c and returns it to the pool. Only the last holder calls it.
func (e *Endpoint) release(c *call) {
	select {
	case <-c.settled: // a signal nobody waited for (the handler left at the deadline)
	default:
	}
	for i := range c.slots {
		s := &c.slots[i]
		s.req.Reset()
		s.resp.Reset()
		s.res = result{}
		s.state.Store(slotIdle)
	}
	clear(c.results)
	if cap(c.out) > maxPooledAnswer {
		c.out = nil // a rare huge answer is not kept for every later request
	}
	e.pool.Put(c)
}

// answer collects the settled parts, abandoning the rest, and writes the
// answer into ctx.Response.
func (c *call) answer(ctx *fasthttp.RequestCtx, start time.Time) Summary {
	e := c.e
	var sum Summary
	for i := range c.slots {
		s := &c.slots[i]
		if s.state.CompareAndSwap(slotRunning, slotAbandoned) {
			c.results[i] = result{outcome: OutcomeDeadline}
		} else {
			c.results[i] = s.res
		}
		o := c.results[i].outcome
		sum.Outcomes[i] = o
		e.metrics.parts[i][o].Inc()
		if o.timedOut() {
			sum.TimedOut++
		}
	}
	v := decide(e.parts, c.results, e.statusOnPartial)
	now := time.Now()
	c.out = appendAnswer(c.out[:0], e.parts, c.results, v, now, now.Sub(start))

	resp := &ctx.Response
	resp.SetStatusCode(v.code)
	resp.Header.SetContentTypeBytes(contentTypeJSON)
	resp.Header.SetCanonical(headerAggregated, valueTrue)
	if v.status == statusSuccess {
		resp.Header.SetCanonical(headerComplete, valueTrue)
	} else {
		resp.Header.SetCanonical(headerComplete, valueFalse)
	}
	if v.status != statusSuccess || anyPrivate(c.results) {
		resp.Header.SetCanonical(headerCacheControl, valueNoStore)
	}
	if len(e.vary) > 0 {
		resp.Header.SetCanonical(headerVary, e.vary)
	}
	c.out = resp.SwapBody(c.out)[:0]

	e.metrics.requests[v.status].Inc()
	e.metrics.duration.Update(time.Since(start).Seconds())
	sum.Status = v.code
	sum.Called = uint8(len(c.slots))
	sum.Succeeded = uint8(v.succeeded)
	sum.Failed = sum.Called - sum.Succeeded
	return sum
}

func anyPrivate(rs []result) bool {
	for i := range rs {
		if rs[i].private {
			return true
		}
	}
	return false
}

// badRequest answers 400 naming the placeholder that could not be filled.
func (e *Endpoint) badRequest(ctx *fasthttp.RequestCtx, bad *segment) {
	var buf [512]byte
	b := append(buf[:0], `{"error":"missing value for `...)
	b = appendJSONString(b, bad.text)
	b = append(b, `","request_id":"`...)
	b = appendJSONString(b, ctx.Request.Header.PeekCanonical(headerRequestID))
	b = append(b, `"}`...)
	resp := &ctx.Response
	resp.SetStatusCode(fasthttp.StatusBadRequest)
	resp.Header.SetContentTypeBytes(contentTypeJSON)
	resp.SetBody(b)
}

var (
	methodGet            = []byte(fasthttp.MethodGet)
	contentTypeJSON      = []byte("application/json")
	headerRequestID      = canonical("X-Request-ID")
	headerUserID         = canonical("X-User-ID")
	headerGatewayService = canonical("X-Gateway-Service")
	headerAggregated     = canonical("X-Aggregated")
	headerComplete       = canonical("X-Aggregate-Complete")
	headerCacheControl   = canonical("Cache-Control")
	headerVary           = canonical("Vary")
	valueTrue            = []byte("true")
	valueFalse           = []byte("false")
	valueNoStore         = []byte("no-store")
	copiedHeaders        = [][]byte{headerRequestID, canonical("X-Forwarded-For"), canonical("X-Forwarded-Proto"), canonical("X-Forwarded-Host")}
)

// canonical is name as fasthttp stores header names ("X-Request-ID" becomes
// "X-Request-Id"), for PeekCanonical and SetCanonical, which skip the
// per-call normalization of PeekBytes and SetBytesKV.
func canonical(name string) []byte { return fasthttp.AppendNormalizedHeaderKey(nil, name) }
