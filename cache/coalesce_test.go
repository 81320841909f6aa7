package cache

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
	"github.com/valyala/fasthttp"
)

// testGateway is the gateway's cache wiring in miniature, on real sockets:
// Get -> (hit: answer) -> proxy to the upstream -> Store -> Done.
type testGateway struct {
	c        *Cache
	up       *fasthttp.HostClient
	routeTTL time.Duration
	addr     string
}

func startGateway(t *testing.T, c *Cache, upstream string, routeTTL time.Duration) *testGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &testGateway{c: c, up: &fasthttp.HostClient{Addr: upstream, MaxConns: 200}, routeTTL: routeTTL, addr: ln.Addr().String()}
	srv := &fasthttp.Server{Handler: g.handle}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return g
}

func (g *testGateway) handle(ctx *fasthttp.RequestCtx) {
	path, query := ctx.URI().Path(), ctx.URI().QueryString()
	hit, _, f := g.c.Get(&ctx.Request, path, query, &ctx.Response, time.Now().Add(5*time.Second))
	if hit {
		ctx.Response.Header.Set("X-Cache", "HIT")
		return
	}
	defer f.Done()
	if err := g.up.DoTimeout(&ctx.Request, &ctx.Response, 5*time.Second); err != nil {
		ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		return
	}
	g.c.Store(&ctx.Request, path, query, &ctx.Response, g.routeTTL)
	ctx.Response.Header.Set("X-Cache", "MISS")
}

// fetch sends n concurrent GETs for path through g, released together, and
// returns how many answers carried each X-Cache value.
func (g *testGateway) fetch(t *testing.T, n int, method, path string) map[string]int {
	t.Helper()
	client := &fasthttp.HostClient{Addr: g.addr, MaxConns: n}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		seen  = map[string]int{}
		start = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(method)
			req.SetRequestURI("http://gw" + path)
			<-start
			if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
				t.Error(err)
				return
			}
			if resp.StatusCode() != 200 || method == "GET" && !strings.Contains(string(resp.Body()), path) {
				t.Errorf("status %d body %q", resp.StatusCode(), resp.Body())
			}
			mu.Lock()
			seen[string(resp.Header.Peek("X-Cache"))]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return seen
}

func startStub(t *testing.T, cacheControl string) *stub.Server {
	t.Helper()
	up, err := stub.Start(stub.Options{
		Latency: 100 * time.Millisecond,
		Handler: func(ctx *fasthttp.RequestCtx) bool {
			ctx.Response.Header.Set("Cache-Control", cacheControl)
			return false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	return up
}

func TestCoalescing(t *testing.T) {
	const n = 50
	up := startStub(t, "max-age=60")
	c := New(1<<20, Options{})
	g := startGateway(t, c, up.Addr(), 0)

	seen := g.fetch(t, n, "GET", "/api/items")
	if got := up.Requests(); got != 1 {
		t.Fatalf("%d upstream calls for %d concurrent misses, want 1", got, n)
	}
	if seen["MISS"] != 1 || seen["HIT"] != n-1 {
		t.Fatalf("X-Cache counts %v, want 1 MISS and %d HIT", seen, n-1)
	}
	if st := c.Stats(); st.Misses != 1 || st.Hits != n-1 || st.Coalesced == 0 {
		t.Fatalf("stats %+v, want 1 miss, %d hits, some coalesced", st, n-1)
	}

	t.Run("HEAD from the GET entry", func(t *testing.T) {
		client := &fasthttp.HostClient{Addr: g.addr}
		req, resp := &fasthttp.Request{}, &fasthttp.Response{}
		req.Header.SetMethod("HEAD")
		req.SetRequestURI("http://gw/api/items")
		if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		body := `{"instance":"stub","path":"/api/items"}`
		if got := string(resp.Header.Peek("X-Cache")); got != "HIT" || resp.Header.ContentLength() != len(body) || len(resp.Body()) != 0 {
			t.Fatalf("X-Cache %q Content-Length %d body %q, want HIT, %d, none", got, resp.Header.ContentLength(), resp.Body(), len(body))
		}
		if up.Requests() != 1 {
			t.Fatal("HEAD went upstream")
		}
	})
}

// TestCoalescingUncacheable: when the leader's answer cannot be stored,
// each waiter fetches on its own, so every request still gets an answer
// and makes exactly one upstream call.
func TestCoalescingUncacheable(t *testing.T) {
	const n = 50
	up := startStub(t, "private, max-age=60")
	g := startGateway(t, New(1<<20, Options{}), up.Addr(), 30*time.Second)
	seen := g.fetch(t, n, "GET", "/api/me")
	if got := up.Requests(); got != n {
		t.Fatalf("%d upstream calls, want %d", got, n)
	}
	if seen["MISS"] != n {
		t.Fatalf("X-Cache counts %v, want %d MISS", seen, n)
	}
}

func TestFlight(t *testing.T) {
	c := New(1<<20, Options{})
	req := newReq("GET", "h")
	hit, _, leader := c.Get(req, []byte("/f"), nil, &fasthttp.Response{}, time.Time{})
	if hit || leader == nil {
		t.Fatalf("first miss: hit %v flight %v, want a flight", hit, leader)
	}

	t.Run("deadline bounds the wait", func(t *testing.T) {
		start := time.Now()
		hit, _, f := c.Get(req, []byte("/f"), nil, &fasthttp.Response{}, start.Add(50*time.Millisecond))
		if hit || f != nil {
			t.Fatalf("hit %v flight %v, want a plain miss", hit, f)
		}
		if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
			t.Fatalf("waited %v, want about 50ms", d)
		}
	})
	t.Run("not coalesced", func(t *testing.T) {
		for _, r := range []*fasthttp.Request{
			newReq("HEAD", "h"),
			newReq("GET", "h", "Authorization", "Bearer x"),
			newReq("GET", "h", "Cache-Control", "no-store"),
		} {
			if hit, _, f := c.Get(r, []byte("/f"), nil, &fasthttp.Response{}, time.Time{}); hit || f != nil {
				t.Fatalf("%s: hit %v flight %v, want a plain miss without waiting", r.Header.String(), hit, f)
			}
		}
	})
	t.Run("waiters are answered from the leader's entry", func(t *testing.T) {
		const waiters = 5
		var wg sync.WaitGroup
		for range waiters {
			wg.Go(func() {
				dst := &fasthttp.Response{}
				if hit, _, f := c.Get(newReq("GET", "h"), []byte("/f"), nil, dst, time.Time{}); !hit || f != nil || string(dst.Body()) != "led" {
					t.Errorf("hit %v flight %v body %q", hit, f, dst.Body())
				}
			})
		}
		time.Sleep(100 * time.Millisecond) // let the waiters queue
		c.Store(req, []byte("/f"), nil, newResp(200, "led", "Cache-Control", "max-age=60"), 0)
		leader.Done()
		leader.Done() // idempotent
		wg.Wait()
		if st := c.Stats(); st.Hits != waiters || st.Coalesced == 0 {
			t.Fatalf("stats %+v, want %d hits, coalesced ones among them", st, waiters)
		}
	})
	var none *Flight
	none.Done()
}
