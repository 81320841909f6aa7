// Package stub is the upstream service that fastgate's demo mode, its tests and
// its bench suite put behind the gateway: a small fasthttp server that answers
// JSON naming its instance on any path, with a configurable body size, latency
// and health.
//
// It is a real server on a real socket, not a mock: the gateway talks to it
// through the same HostClient pools it uses in production.
package stub

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure a stub upstream. The zero value is usable.
type Options struct {
	// ID is the instance id written into every answer ["stub"].
	ID string
	// Addr is the listen address ["127.0.0.1:0", a free loopback port].
	Addr string
	// BodySize pads every answer to at least this many bytes [0: no padding].
	BodySize int
	// Latency delays every answer except health checks [0].
	Latency time.Duration
	// HealthPath answers 200 while healthy and 503 otherwise ["/health"].
	HealthPath string
	// Listener, when set, is served instead of listening on Addr (for example
	// a fasthttputil.InmemoryListener in benchmarks).
	Listener net.Listener
	// Handler, when set, may answer a non-health request itself (after the
	// latency, with the forced status already set) by writing the body and
	// returning true; false leaves the default answer [nil]. See Demo.
	Handler func(ctx *fasthttp.RequestCtx) bool
}

// Request is a copy of one request the stub received, for tests to inspect.
type Request struct {
	Method string
	URI    string
	Host   string
	Header map[string][]string // canonical names, in arrival order
	Body   []byte
}

// Server is a running stub upstream.
//
// It is safe calling Server methods from concurrently running goroutines.
type Server struct {
	id         string
	healthPath []byte
	prefix     []byte // `{"instance":"ID","path":"`
	pad        []byte // `","pad":"xxxx"}` sized to reach BodySize
	ln         net.Listener
	srv        *fasthttp.Server
	handler    func(ctx *fasthttp.RequestCtx) bool
	done       chan struct{}

	latency  atomic.Int64 // time.Duration
	status   atomic.Int64 // forced status for non-health paths; 0 = 200
	healthy  atomic.Bool
	requests atomic.Int64 // non-health requests served
	record   atomic.Bool

	mu   sync.Mutex // protects reqs
	reqs []Request
}

// Start listens and serves until Close.
func Start(o Options) (*Server, error) {
	if o.ID == "" {
		o.ID = "stub"
	}
	if o.HealthPath == "" {
		o.HealthPath = "/health"
	}
	ln := o.Listener
	if ln == nil {
		if o.Addr == "" {
			o.Addr = "127.0.0.1:0"
		}
		var err error
		if ln, err = net.Listen("tcp", o.Addr); err != nil {
			return nil, err
		}
	}
	s := &Server{
		id:         o.ID,
		healthPath: []byte(o.HealthPath),
		ln:         ln,
		handler:    o.Handler,
		done:       make(chan struct{}),
	}
	s.prefix = append(strconv.AppendQuote([]byte(`{"instance":`), o.ID), `,"path":"`...)
	s.pad = []byte(`"}`)
	if n := o.BodySize - len(s.prefix) - len(`/","pad":""}`); n > 0 {
		s.pad = append(append([]byte(`","pad":"`), bytes.Repeat([]byte("x"), n)...), `"}`...)
	}
	s.latency.Store(int64(o.Latency))
	s.healthy.Store(true)
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		Name:               "stub",
		NoDefaultDate:      true,
		ReadBufferSize:     16 << 10,
		MaxRequestBodySize: 64 << 20,
		CloseOnShutdown:    true,
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the stub listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// ID is the instance id the stub writes into its answers.
func (s *Server) ID() string { return s.id }

// Close stops the stub and closes its open connections.
func (s *Server) Close() error {
	err := s.srv.Shutdown()
	// Shutdown closes only listeners Serve has registered; closing ln too
	// ends a Serve that had not got that far, which would never return.
	_ = s.ln.Close()
	<-s.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// SetHealthy switches the health path between 200 and 503.
func (s *Server) SetHealthy(up bool) { s.healthy.Store(up) }

// SetLatency changes the delay of later answers.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// SetStatus makes later non-health answers use code (0 restores 200).
func (s *Server) SetStatus(code int) { s.status.Store(int64(code)) }

// Requests counts the non-health requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Record switches recording of received requests on or off (off by default,
// since copying costs time in benchmarks).
func (s *Server) Record(on bool) { s.record.Store(on) }

// Received returns copies of the requests recorded so far.
func (s *Server) Received() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Request.URI().PathOriginal()
	if bytes.Equal(path, s.healthPath) {
		if s.healthy.Load() {
			ctx.SetStatusCode(fasthttp.StatusOK)
		} else {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	}
	s.requests.Add(1)
	if s.record.Load() {
		s.keep(&ctx.Request)
	}
	if d := time.Duration(s.latency.Load()); d > 0 {
		time.Sleep(d)
	}
	if code := s.status.Load(); code != 0 {
		ctx.SetStatusCode(int(code))
	}
	if s.handler != nil && s.handler(ctx) {
		return
	}
	ctx.SetContentType("application/json")
	w := ctx.Response.BodyWriter()
	_, _ = w.Write(s.prefix)
	_, _ = w.Write(appendJSONEscaped(ctx.Response.Body()[len(ctx.Response.Body()):], path))
	_, _ = w.Write(s.pad)
}

func (s *Server) keep(req *fasthttp.Request) {
	r := Request{
		Method: string(req.Header.Method()),
		URI:    string(req.Header.RequestURI()),
		Host:   string(req.Header.Host()),
		Header: map[string][]string{},
		Body:   append([]byte(nil), req.Body()...),
	}
	for k, v := range req.Header.All() {
		r.Header[string(k)] = append(r.Header[string(k)], string(v))
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

// appendJSONEscaped appends b escaped for use inside a JSON string.
func appendJSONEscaped(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c >= 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
