// Package proxy is fastgate's request path: the fasthttp server, the route
// table, the forward path with retries, header rules, the mapping of
// upstream errors to HTTP status, metrics and the access log.
package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/aggregate"
	"github.com/fastgate/fastgate/balance"
	"github.com/fastgate/fastgate/cache"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/health"
	"github.com/fastgate/fastgate/lazyconn"
	"github.com/fastgate/fastgate/ratelimit"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Gateway serves one config: it owns the services (and so the upstream
// pools), the route table and the metrics set.
//
// It is safe calling Gateway methods from concurrently running goroutines.
type Gateway struct {
	cfg        *config.Config
	upstreams  []*upstream           // one per service, in config order
	started    bool                  // the health checkers were started; protected by lnMu
	lnMu       sync.Mutex            // protects started, ln and stopped
	ln         net.Listener          // Serve's, once it runs
	stopped    bool                  // Shutdown was called
	routes     atomic.Pointer[table] // immutable; swapped whole
	aggregates *aggregates           // immutable; nil without [[aggregates]]
	edge       *edgeShared           // CORS, JWT, rate limits, cache
	metrics    *metrics.Set
	clock      health.Clock
	trusted    trustedProxies
	ids        *idGen
	log        zerolog.Logger // process log
	access     io.Writer      // access log, one line per Write; nil when off
	sample     uint64         // keep 1 of sample successful requests in the access log
	sampled    atomic.Uint64
	server     *fasthttp.Server
	maxURI     int
	maxHdr     int
	health     []byte // health path
	metricsP   []byte // metrics path

	unmatched *routeMetrics // 404s
	rejected  *routeMetrics // malformed requests
	internal  *routeMetrics // health and metrics endpoints
}

// Options are what New needs beyond the config.
type Options struct {
	// Log is the process log [zerolog.Nop()].
	Log zerolog.Logger
	// Access receives one JSON line per request when the config's log.access
	// is on; wrap a file or stdout in an AsyncWriter so that logging never
	// waits on I/O [io.Discard].
	Access io.Writer
	// Dial, when set, replaces TCP dialing to upstream instances and health
	// probes (for in-memory listeners in benchmarks) [nil].
	Dial fasthttp.DialFunc
	// Clock drives breakers and health results [health.SystemClock{}];
	// the retry budget uses each request's arrival time.
	Clock health.Clock
}

// New builds a gateway for cfg, which must come from config.Parse. It
// fails when the edge middleware cannot start (JWT keys that do not load,
// a rate limit the store refuses).
func New(cfg *config.Config, o Options) (*Gateway, error) {
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	g := &Gateway{
		cfg:      cfg,
		metrics:  metrics.NewSet(),
		clock:    o.Clock,
		trusted:  trustedProxies(cfg.Server.Trusted),
		ids:      newIDGen(seed),
		log:      o.Log,
		sample:   uint64(*cfg.Log.AccessSample),
		maxURI:   int(cfg.Server.MaxURIBytes.N),
		maxHdr:   int(cfg.Server.MaxHeaderBytes.N),
		health:   []byte(cfg.Server.HealthPath),
		metricsP: []byte(cfg.Server.MetricsPath),
	}
	if g.clock == nil {
		g.clock = health.SystemClock{}
	}
	o.Clock = g.clock
	if *cfg.Log.Access && o.Access != nil {
		g.access = o.Access
	}
	edge, err := g.newEdgeShared(cfg, o)
	if err != nil {
		return nil, err
	}
	g.edge = edge
	byName := map[string]*upstream{}
	for i := range cfg.Services {
		u := g.newUpstream(&cfg.Services[i], o)
		g.upstreams = append(g.upstreams, u)
		byName[u.svc.Name()] = u
	}
	g.routes.Store(g.buildTable(cfg, byName))
	g.aggregates = g.buildAggregates(cfg, byName)
	g.unmatched = newRouteMetrics(g.metrics, "_unmatched", "")
	g.rejected = newRouteMetrics(g.metrics, "_rejected", "")
	g.internal = newRouteMetrics(g.metrics, "_internal", "")
	g.server = g.newServer()
	return g, nil
}

func (g *Gateway) buildTable(cfg *config.Config, byName map[string]*upstream) *table {
	t := &table{}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		sc := cfg.Service(rc.Service)
		r := &route{
			prefix:    []byte(rc.Prefix),
			logFields: routeLogFields(rc.Prefix, rc.Service),
			strip:     []byte(rc.StripPrefix),
			fold:      rc.IgnoreCase,
			up:        byName[rc.Service],
			attempt:   sc.Timeout.Duration,
			retries:   *sc.Retries,
			timeout:   rc.Timeout.Duration,
			metrics:   newRouteMetrics(g.metrics, rc.Prefix, rc.Service),
			edge:      g.edge.route(&rc.Edge),
		}
		for _, m := range rc.Methods {
			r.methods = append(r.methods, []byte(m))
		}
		if len(rc.Methods) > 0 {
			r.allow = []byte(joinComma(rc.Methods))
		}
		t.routes = append(t.routes, r)
	}
	sort.SliceStable(t.routes, func(i, j int) bool { return len(t.routes[i].prefix) > len(t.routes[j].prefix) })
	return t
}

func joinComma(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	return b.String()
}

func (g *Gateway) newServer() *fasthttp.Server {
	s := &g.cfg.Server
	return &fasthttp.Server{
		Handler:                      g.Handle,
		ErrorHandler:                 g.handleParseError,
		ReadTimeout:                  s.ReadTimeout.Duration,
		WriteTimeout:                 s.WriteTimeout.Duration,
		IdleTimeout:                  s.IdleTimeout.Duration,
		MaxRequestBodySize:           int(s.MaxRequestBody.N),
		ReadBufferSize:               int(s.MaxHeaderBytes.N + s.MaxURIBytes.N), // see checkRequest
		WriteBufferSize:              int(s.WriteBuffer.N),                      // see TestAnswerWrites
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{g.log},
	}
}

// Services returns the gateway's services, in config order, in a new slice.
func (g *Gateway) Services() []*balance.Service {
	out := make([]*balance.Service, len(g.upstreams))
	for i, u := range g.upstreams {
		out[i] = u.svc
	}
	return out
}

// Metrics is the gateway's metrics set, served on the metrics path.
func (g *Gateway) Metrics() *metrics.Set { return g.metrics }

// Serve starts the active health checks (once) and accepts connections on
// ln until Shutdown; after Shutdown it closes ln and returns nil at once.
// Accepted connections get lazily armed deadlines (package lazyconn): the
// server moves them on every request. Running out of file descriptors
// pauses accepting rather than ending Serve.
func (g *Gateway) Serve(ln net.Listener) error {
	g.lnMu.Lock()
	if g.stopped {
		g.lnMu.Unlock()
		return ln.Close()
	}
	g.ln = ln
	if !g.started {
		g.started = true
		for _, u := range g.upstreams {
			if u.checker != nil {
				u.checker.Start()
			}
		}
	}
	g.lnMu.Unlock()
	return g.server.Serve(lazyconn.Listener{Listener: ln, OnTemporaryError: g.acceptError})
}

func (g *Gateway) acceptError(err error, wait time.Duration) {
	g.log.Warn().Err(err).Dur("retry_in", wait).Msg("accept failed; retrying")
}

// Shutdown stops accepting, waits for in-flight requests until ctx is done,
// closes idle client connections, stops the health checks and closes the
// upstream pools. Called before Serve, or while Serve is starting, it still
// ends that Serve.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.lnMu.Lock()
	g.stopped = true
	ln := g.ln
	g.lnMu.Unlock()
	err := g.server.ShutdownWithContext(ctx)
	if ln != nil {
		// fasthttp's shutdown closes only a listener its Serve has already
		// registered; one still being registered would accept forever.
		_ = ln.Close()
	}
	for _, u := range g.upstreams {
		if u.checker != nil {
			u.checker.Stop()
		}
		u.svc.Close()
	}
	g.edge.close()
	return err
}

// fasthttpLogger sends fasthttp's own messages to the process log.
type fasthttpLogger struct{ l zerolog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) { f.l.Warn().Msgf(format, args...) }

// exchange is the per-request scratch state, pooled so that the request
// path does not allocate.
type exchange struct {
	id       []byte // request id
	path     []byte // normalized path
	uri      []byte // forwarded request target
	scratch  []byte // header values being built
	route    *route
	attempts attemptLog
	agg      *aggRoute         // the aggregate that answered, if any
	sum      aggregate.Summary // its part outcomes
	deadline time.Time         // of the whole request (route or aggregate timeout)

	user      string             // authenticated subject
	decision  ratelimit.Decision // rate-limit decision, when limited
	limited   bool               // decision is set and came from the store
	flight    *cache.Flight      // held on a cache miss until stored
	cacheMiss bool
	hop       bool       // the request has hop-by-hop headers to strip
	dupOwned  uint8      // owned headers the request repeats (ownedHeader bits)
	waited    bool       // a middleware may have blocked (Redis, a coalesced cache miss)
	unparsed  bool       // the request line was not parsed: method and path unknown
	idKept    bool       // id is the client's X-Request-ID, already in the request
	peer      netip.Addr // TCP peer, unmapped; valid once peerSet
	peerSet   bool

	trustedUser []byte   // a trusted X-User-ID, for aggregates
	line        []byte   // the access-log line
	stamp       [32]byte // the time field of the last line (appendStamp)
	stampLen    int
	stampSec    int64
}

var exchangePool = sync.Pool{New: func() any {
	return &exchange{id: make([]byte, 0, 64), path: make([]byte, 0, 256), uri: make([]byte, 0, 256), scratch: make([]byte, 0, 128), line: make([]byte, 0, 512)}
}}

func acquireExchange() *exchange { return exchangePool.Get().(*exchange) }

func releaseExchange(x *exchange) {
	x.id, x.path, x.uri, x.scratch, x.trustedUser = x.id[:0], x.path[:0], x.uri[:0], x.scratch[:0], x.trustedUser[:0]
	x.route, x.attempts, x.agg = nil, attemptLog{}, nil
	x.user, x.limited, x.flight, x.cacheMiss, x.hop = "", false, nil, false, false
	x.idKept, x.peerSet, x.dupOwned, x.waited, x.unparsed = false, false, 0, false, false
	exchangePool.Put(x)
}

// Handle is the gateway's fasthttp.RequestHandler.
func (g *Gateway) Handle(ctx *fasthttp.RequestCtx) {
	start := ctx.Time() // read by the server when the request arrived
	x := acquireExchange()
	x.id, x.idKept = g.requestID(x.id, &ctx.Request)
	rm := g.dispatch(ctx, x, start)
	g.observe(ctx, x, rm, start)
	releaseExchange(x)
}

// setPath sets x.path to the normalized path of the request target and
// returns the target's query (aliasing target), or the error that makes
// the target a 400.
func (x *exchange) setPath(target []byte) (query []byte, err error) {
	rawPath, query, err := SplitTarget(target)
	if err != nil {
		return nil, err
	}
	x.path, err = AppendNormalizedPath(x.path[:0], rawPath)
	return query, err
}

// requestID appends a well-formed client X-Request-ID to dst, reporting
// kept, or else a new id.
func (g *Gateway) requestID(dst []byte, req *fasthttp.Request) (id []byte, kept bool) {
	if id := req.Header.PeekCanonical(headerRequestID); validRequestID(id) {
		return append(dst, id...), true
	}
	return g.ids.appendID(dst), false
}

// peerAddr is peerAddr(ctx), derived once per exchange.
func (x *exchange) peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if !x.peerSet {
		x.peer, x.peerSet = peerAddr(ctx), true
	}
	return x.peer
}

// dispatch answers ctx and returns the metrics of what answered it.
func (g *Gateway) dispatch(ctx *fasthttp.RequestCtx, x *exchange, start time.Time) *routeMetrics {
	if status, msg := g.checkRequest(ctx, x); status != 0 {
		g.reject(ctx, x, status, msg)
		return g.rejected
	}
	// Trailers first: deleting the Trailer header (a hop-by-hop one) would
	// merge their values into the header section.
	if h := &ctx.Request.Header; len(h.PeekTrailerKeys()) > 0 {
		x.scratch = dropTrailers(h, x.scratch)
		if x.idKept && !bytes.Equal(h.PeekCanonical(headerRequestID), x.id) {
			x.id, x.idKept = g.ids.appendID(x.id[:0]), false // the id came from a trailer
		}
	}
	if x.hop { // seen by checkRequest's scan of the raw headers
		stripRequestHopByHop(&ctx.Request.Header, x)
	}
	if x.dupOwned != 0 {
		collapseOwned(&ctx.Request.Header, x)
	}
	query, err := x.setPath(ctx.Request.Header.RequestURI())
	if err != nil {
		g.reject(ctx, x, fasthttp.StatusBadRequest, msgBadRequest)
		return g.rejected
	}
	switch {
	case bytes.Equal(x.path, g.health):
		g.serveHealth(ctx, x)
		return g.internal
	case bytes.Equal(x.path, g.metricsP):
		g.serveMetrics(ctx, x)
		return g.internal
	}
	if a, status := g.aggregates.lookup(ctx, x.path); a != nil {
		g.serveAggregateRoute(ctx, x, a, status, query, start)
		return a.metrics
	}
	r := g.routes.Load().match(x.path)
	if r == nil {
		writeError(ctx, fasthttp.StatusNotFound, msgNotFound, x.id)
		return g.unmatched
	}
	g.serveRoute(ctx, x, r, query, start)
	return r.metrics
}

// serveRoute answers a request that matched r: CORS preflight, method
// check, the request-side middleware, the upstream, the response side.
func (g *Gateway) serveRoute(ctx *fasthttp.RequestCtx, x *exchange, r *route, query []byte, start time.Time) {
	x.route = r
	x.deadline = start.Add(r.timeout)
	switch {
	case g.preflight(ctx, x, r.edge):
	case !r.allows(ctx.Request.Header.Method()):
		writeError(ctx, fasthttp.StatusMethodNotAllowed, msgMethod, x.id)
		ctx.Response.Header.SetCanonical(headerAllow, r.allow)
		g.decorate(ctx, x, r.edge)
	case !g.before(ctx, x, r.edge, query):
		query = g.forward(ctx, x, r, query, start)
		g.after(ctx, x, r.edge, query)
	}
}

// serveAggregateRoute is serveRoute for an aggregate; status is 405 when
// its path matched under another method.
func (g *Gateway) serveAggregateRoute(ctx *fasthttp.RequestCtx, x *exchange, a *aggRoute, status int, query []byte, start time.Time) {
	x.deadline = start.Add(a.timeout)
	switch {
	case g.preflight(ctx, x, a.edge):
	case status != 0:
		writeError(ctx, status, msgMethod, x.id)
		g.decorate(ctx, x, a.edge)
	case !g.before(ctx, x, a.edge, query):
		g.serveAggregate(ctx, x, a)
		g.after(ctx, x, a.edge, query)
	}
}

// reject answers a malformed request and closes the connection, so that
// nothing the client sent after it is read as another request.
func (g *Gateway) reject(ctx *fasthttp.RequestCtx, x *exchange, status int, msg string) {
	writeError(ctx, status, msg, x.id)
	ctx.SetConnectionClose()
}

// observe updates metrics and writes the access log line.
func (g *Gateway) observe(ctx *fasthttp.RequestCtx, x *exchange, rm *routeMetrics, start time.Time) {
	status := ctx.Response.StatusCode()
	end := time.Now()
	d := end.Sub(start)
	rm.code(status).Inc()
	rm.duration.Update(d.Seconds())
	g.logAccess(ctx, x, status, d, end)
}
