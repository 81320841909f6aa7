//go:build !race

package cache

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestLookupHitAllocs keeps a hit allocation-free: key building, query
// sorting, the Vary key, the copy into a reused response and the Age header.
func TestLookupHitAllocs(t *testing.T) {
	c := New(1<<20, Options{})
	plain := newReq("GET", "api.example.com")
	gzip := newReq("GET", "api.example.com", "Accept-Encoding", "gzip")
	authed := newReq("GET", "api.example.com", "Authorization", "Bearer x")
	c.Store(plain, []byte("/items"), []byte("page=2&sort=name&limit=10"), newResp(200, `{"items":[]}`, "Cache-Control", "max-age=60", "Content-Type", "application/json", "ETag", `"abc"`), 0)
	c.Store(gzip, []byte("/vary"), nil, newResp(200, "gz", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding"), 0)
	c.Store(authed, []byte("/public"), nil, newResp(200, "pub", "Cache-Control", "public, max-age=60"), 0)
	tests := []struct {
		name        string
		req         *fasthttp.Request
		path, query string
	}{
		{"plain", plain, "/items", "sort=name&limit=10&page=2"},
		{"vary", gzip, "/vary", ""},
		{"head", newReq("HEAD", "api.example.com"), "/items", "page=2&limit=10&sort=name"},
		{"authorized, public", authed, "/public", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, query, dst := []byte(tt.path), []byte(tt.query), &fasthttp.Response{}
			lookup := func() {
				dst.Reset() // as the server does between requests
				if hit, _ := c.Lookup(tt.req, path, query, dst); !hit {
					t.Fatal("miss")
				}
			}
			get := func() {
				dst.Reset()
				if hit, _, _ := c.Get(tt.req, path, query, dst, time.Time{}); !hit {
					t.Fatal("miss")
				}
			}
			lookup()
			if allocs := testing.AllocsPerRun(200, lookup); allocs != 0 {
				t.Errorf("Lookup: %v allocs per hit, want 0", allocs)
			}
			if allocs := testing.AllocsPerRun(200, get); allocs != 0 {
				t.Errorf("Get: %v allocs per hit, want 0", allocs)
			}
		})
	}
}
