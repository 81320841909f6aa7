package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// benchGateway is a gateway in front of one stub upstream, both on
// in-memory listeners, with the access log (to io.Discard through an
// AsyncWriter) and metrics on.
type benchGateway struct {
	g      *Gateway
	client *fasthttp.HostClient // client -> gateway
	up     *stub.Server
	gwLn   *fasthttputil.InmemoryListener
	logw   *AsyncWriter
}

func newBenchGateway(tb testing.TB) *benchGateway {
	tb.Helper()
	upLn := fasthttputil.NewInmemoryListener()
	up, err := stub.Start(stub.Options{ID: "u1", Listener: upLn, BodySize: 256})
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
[log]
access = true
[[services]]
name = "svc"
timeout = "5s"
  [[services.instances]]
  id = "u1"
  addr = "upstream:1"
[[routes]]
prefix = "/api"
service = "svc"
`))
	if err != nil {
		tb.Fatal(err)
	}
	logw := NewAsyncWriter(io.Discard, 0, 0)
	g := mustNew(tb, cfg, Options{Log: zerolog.Nop(), Access: logw, Dial: func(string) (net.Conn, error) { return upLn.Dial() }})
	gwLn := fasthttputil.NewInmemoryListener()
	go func() { _ = g.Serve(gwLn) }()
	b := &benchGateway{
		g: g, up: up, gwLn: gwLn, logw: logw,
		client: &fasthttp.HostClient{Addr: "gateway:1", Dial: func(string) (net.Conn, error) { return gwLn.Dial() }},
	}
	tb.Cleanup(func() {
		_ = g.server.Shutdown()
		_ = up.Close()
		_ = logw.Close()
	})
	return b
}

func (b *benchGateway) get(tb testing.TB, req *fasthttp.Request, resp *fasthttp.Response) {
	if err := b.client.Do(req, resp); err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		tb.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
}

// BenchmarkProxyGET is a GET through the whole gateway: client, server,
// handler, upstream pool, stub, all over in-memory connections.
func BenchmarkProxyGET(b *testing.B) {
	bg := newBenchGateway(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://gateway/api/v1/users/1")
		for pb.Next() {
			bg.get(b, req, resp)
		}
	})
}

// rawRequest replays one raw request header into a RequestCtx, reusing its
// readers so that the replay itself does not allocate.
type rawRequest struct {
	raw []byte
	r   bytes.Reader
	br  *bufio.Reader
}

func newRawRequest(raw string) *rawRequest {
	rr := &rawRequest{raw: []byte(raw)}
	rr.br = bufio.NewReader(&rr.r)
	return rr
}

// handleOnce runs g.Handle on the request, as the server would.
func (rr *rawRequest) handleOnce(g *Gateway, ctx *fasthttp.RequestCtx) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	rr.r.Reset(rr.raw)
	rr.br.Reset(&rr.r)
	if err := ctx.Request.Header.Read(rr.br); err != nil {
		panic(err)
	}
	g.Handle(ctx)
}

// BenchmarkHandle calls the handler directly (no client or server side),
// proxying to the in-memory stub.
func BenchmarkHandle(b *testing.B) {
	bg := newBenchGateway(b)
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}, nil)
	rr := newRawRequest("GET /api/v1/users/1?x=1 HTTP/1.1\r\nHost: gateway\r\nUser-Agent: bench\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		rr.handleOnce(bg.g, &ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatal(ctx.Response.StatusCode())
		}
	}
}

func ExampleGateway() {
	cfg, err := config.Parse([]byte(`
[[services]]
name = "users"
  [[services.instances]]
  id = "u1"
  addr = "127.0.0.1:9001"
[[routes]]
prefix = "/api/v1/users"
service = "users"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := New(cfg, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(g.Services()), g.Services()[0].Name())
	// Output: 1 users
}

// mustNew is New for tests: it fails tb on an error.
func mustNew(tb testing.TB, cfg *config.Config, o Options) *Gateway {
	tb.Helper()
	g, err := New(cfg, o)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}
