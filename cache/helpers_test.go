package cache

import (
	"bufio"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newReq builds a request; hdrs are name, value pairs.
func newReq(method, host string, hdrs ...string) *fasthttp.Request {
	req := &fasthttp.Request{}
	req.Header.SetMethod(method)
	req.Header.SetHost(host)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	return req
}

// newResp parses an upstream answer, as the gateway's HostClient would
// (so that Date, which fasthttp manages when set by hand, is kept); hdrs
// are name, value pairs.
func newResp(status int, body string, hdrs ...string) *fasthttp.Response {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, fasthttp.StatusMessage(status))
	for i := 0; i+1 < len(hdrs); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", hdrs[i], hdrs[i+1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		panic(err)
	}
	return resp
}

// mustHit looks req up and fails unless it hits with body want.
func mustHit(t *testing.T, c *Cache, req *fasthttp.Request, path, query, want string) *fasthttp.Response {
	t.Helper()
	dst := &fasthttp.Response{}
	hit, _ := c.Lookup(req, []byte(path), []byte(query), dst)
	if !hit {
		t.Fatalf("%s %s?%s: miss, want hit", req.Header.Method(), path, query)
	}
	if got := string(dst.Body()); got != want {
		t.Fatalf("%s %s?%s: body %q, want %q", req.Header.Method(), path, query, got, want)
	}
	return dst
}

// mustMiss looks req up and fails if it hits.
func mustMiss(t *testing.T, c *Cache, req *fasthttp.Request, path, query string) {
	t.Helper()
	if hit, _ := c.Lookup(req, []byte(path), []byte(query), &fasthttp.Response{}); hit {
		t.Fatalf("%s %s?%s: hit, want miss", req.Header.Method(), path, query)
	}
}
