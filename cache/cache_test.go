package cache

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestHitMiss(t *testing.T) {
	clk := newFakeClock()
	c := New(1<<20, Options{Clock: clk.Now})
	get := newReq("GET", "API.example.com")
	mustMiss(t, c, get, "/users/1", "")
	resp := newResp(200, `{"id":1}`,
		"Content-Type", "application/json",
		"Cache-Control", "max-age=60",
		"Link", "</a>; rel=a",
		"Link", "</b>; rel=b",
		"X-Request-ID", "leader-id",
		"Keep-Alive", "timeout=5",
		"Age", "2",
	)
	if !c.Store(get, []byte("/users/1"), nil, resp, 0) {
		t.Fatal("Store refused a max-age=60 answer")
	}
	clk.Advance(5 * time.Second)
	dst := mustHit(t, c, newReq("GET", "api.example.com"), "/users/1", "", `{"id":1}`)
	for _, tt := range []struct{ name, want string }{
		{"Content-Type", "application/json"},
		{"Cache-Control", "max-age=60"},
		{"Age", "7"}, // 2 upstream + 5 here
		{"X-Request-ID", ""},
		{"Keep-Alive", ""},
	} {
		if got := string(dst.Header.Peek(tt.name)); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, got, tt.want)
		}
	}
	if links := dst.Header.PeekAll("Link"); len(links) != 2 {
		t.Errorf("Link headers %q, want both", links)
	}
	t.Run("dst keeps what the server and gateway set", func(t *testing.T) {
		dst := &fasthttp.Response{}
		dst.Header.SetNoDefaultContentType(true)
		dst.SetConnectionClose()
		dst.Header.Set("X-Request-ID", "mine")
		if hit, _ := c.Lookup(get, []byte("/users/1"), nil, dst); !hit {
			t.Fatal("miss")
		}
		if !dst.ConnectionClose() || string(dst.Header.Peek("X-Request-ID")) != "mine" || dst.StatusCode() != 200 {
			t.Fatalf("lost the request's own state:\n%s", dst.Header.String())
		}
	})
	mustMiss(t, c, get, "/users/2", "")
	mustMiss(t, c, newReq("GET", "other.example.com"), "/users/1", "")
	mustMiss(t, c, newReq("POST", "api.example.com"), "/users/1", "")
	st := c.Stats()
	if st.Hits != 2 || st.Misses != 3 || st.Stores != 1 || st.Entries != 1 || st.Bytes <= 0 {
		t.Errorf("stats %+v, want 2 hits, 3 misses (POST uncounted), 1 store, 1 entry", st)
	}
}

func TestTTLExpiry(t *testing.T) {
	tests := []struct {
		name     string
		hdrs     []string
		routeTTL time.Duration
		fresh    time.Duration // still a hit just before
	}{
		{"max-age", []string{"Cache-Control", "max-age=10"}, 0, 10 * time.Second},
		{"s-maxage wins", []string{"Cache-Control", "max-age=100, s-maxage=10"}, 0, 10 * time.Second},
		{"upstream Age counts", []string{"Cache-Control", "max-age=10", "Age", "4"}, 0, 6 * time.Second},
		{"route TTL overrides", []string{"Cache-Control", "max-age=3600"}, 10 * time.Second, 10 * time.Second},
		{"route TTL fills in", nil, 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			c := New(1<<20, Options{Clock: clk.Now})
			req := newReq("GET", "h")
			if !c.Store(req, []byte("/x"), nil, newResp(200, "x", tt.hdrs...), tt.routeTTL) {
				t.Fatal("not stored")
			}
			clk.Advance(tt.fresh - time.Millisecond)
			mustHit(t, c, req, "/x", "", "x")
			clk.Advance(time.Millisecond)
			mustMiss(t, c, req, "/x", "")
			if st := c.Stats(); st.Expired != 1 || st.Entries != 0 || st.Bytes != 0 {
				t.Errorf("stats %+v, want the expired entry dropped", st)
			}
		})
	}
}

func TestDefaultTTL(t *testing.T) {
	clk := newFakeClock()
	req := newReq("GET", "h")
	if New(1<<20, Options{Clock: clk.Now}).Store(req, []byte("/x"), nil, newResp(200, "x"), 0) {
		t.Fatal("stored without any lifetime")
	}
	c := New(1<<20, Options{Clock: clk.Now, DefaultTTL: time.Second})
	if !c.Store(req, []byte("/x"), nil, newResp(200, "x"), 0) {
		t.Fatal("DefaultTTL not applied")
	}
	clk.Advance(time.Second)
	mustMiss(t, c, req, "/x", "")
}

func TestSortedQueryShared(t *testing.T) {
	c := New(1<<20, Options{})
	req := newReq("GET", "h")
	c.Store(req, []byte("/q"), []byte("b=2&a=1"), newResp(200, "ab", "Cache-Control", "max-age=60"), 0)
	c.Store(req, []byte("/q"), []byte("a=2&a=1"), newResp(200, "a21", "Cache-Control", "max-age=60"), 0)
	mustHit(t, c, req, "/q", "a=1&b=2", "ab")
	mustHit(t, c, req, "/q", "b=2&&a=1", "ab")
	mustHit(t, c, req, "/q", "a=2&a=1", "a21")
	mustMiss(t, c, req, "/q", "a=1&a=2")
	mustMiss(t, c, req, "/q", "a=1")
}

func TestHead(t *testing.T) {
	c := New(1<<20, Options{})
	head := newReq("HEAD", "h")
	if c.Store(head, []byte("/x"), nil, newResp(200, "", "Cache-Control", "max-age=60"), 0) {
		t.Error("stored an answer to HEAD")
	}
	mustMiss(t, c, head, "/x", "")
	c.Store(newReq("GET", "h"), []byte("/x"), nil, newResp(200, "body", "Cache-Control", "max-age=60"), 0)
	// The HEAD answer carries the GET body; the server sends only its length.
	mustHit(t, c, head, "/x", "", "body")
}

func TestVary(t *testing.T) {
	c := New(1<<20, Options{})
	gzip := newReq("GET", "h", "Accept-Encoding", "gzip")
	br := newReq("GET", "h", "Accept-Encoding", "br")
	for _, r := range []struct {
		req  *fasthttp.Request
		body string
	}{{gzip, "gzipped"}, {br, "brotlied"}} {
		resp := newResp(200, r.body, "Cache-Control", "max-age=60", "Vary", "accept-encoding", "Content-Encoding", string(r.req.Header.Peek("Accept-Encoding")))
		if !c.Store(r.req, []byte("/v"), nil, resp, 0) {
			t.Fatalf("%s variant not stored", r.body)
		}
	}
	mustHit(t, c, newReq("GET", "h", "Accept-Encoding", "gzip"), "/v", "", "gzipped")
	mustHit(t, c, newReq("GET", "h", "Accept-Encoding", "br"), "/v", "", "brotlied")
	mustMiss(t, c, newReq("GET", "h"), "/v", "")
	mustMiss(t, c, newReq("GET", "h", "Accept-Encoding", "zstd"), "/v", "")
	if st := c.Stats(); st.Entries != 2 {
		t.Fatalf("%d entries, want 2", st.Entries)
	}

	t.Run("Vary change replaces the variants", func(t *testing.T) {
		resp := newResp(200, "by origin", "Cache-Control", "max-age=60", "Vary", "Origin")
		c.Store(newReq("GET", "h", "Origin", "https://a.example"), []byte("/v"), nil, resp, 0)
		if st := c.Stats(); st.Entries != 1 {
			t.Fatalf("%d entries, want 1", st.Entries)
		}
		mustHit(t, c, newReq("GET", "h", "Origin", "https://a.example", "Accept-Encoding", "gzip"), "/v", "", "by origin")
		mustMiss(t, c, newReq("GET", "h", "Origin", "https://b.example"), "/v", "")
	})
	t.Run("Vary star", func(t *testing.T) {
		for _, v := range []string{"*", "Accept-Encoding, *"} {
			if c.Store(gzip, []byte("/star"), nil, newResp(200, "x", "Cache-Control", "max-age=60", "Vary", v), 0) {
				t.Errorf("Vary: %s stored", v)
			}
		}
	})
	t.Run("varying on a rewritten header", func(t *testing.T) {
		rc := New(1<<20, Options{Rewritten: []string{"x-forwarded-for"}})
		req := newReq("GET", "h", "X-Forwarded-For", "10.0.0.1", "Accept-Encoding", "gzip")
		for _, v := range []string{"X-Forwarded-For", "accept-encoding, x-forwarded-for"} {
			if rc.Store(req, []byte("/xff"), nil, newResp(200, "x", "Cache-Control", "max-age=60", "Vary", v), 0) {
				t.Errorf("Vary: %s stored although X-Forwarded-For is rewritten", v)
			}
		}
		if !rc.Store(req, []byte("/xff"), nil, newResp(200, "x", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding"), 0) {
			t.Error("Vary: Accept-Encoding not stored")
		}
	})
	t.Run("names in any order and case", func(t *testing.T) {
		req := newReq("GET", "h", "Accept-Encoding", "gzip", "Accept-Language", "fr")
		c.Store(req, []byte("/multi"), nil, newResp(200, "fr-gz", "Cache-Control", "max-age=60", "Vary", "ACCEPT-LANGUAGE", "Vary", "accept-encoding, Accept-Language"), 0)
		mustHit(t, c, newReq("GET", "h", "accept-language", "fr", "accept-encoding", "gzip"), "/multi", "", "fr-gz")
		mustMiss(t, c, newReq("GET", "h", "Accept-Language", "de", "Accept-Encoding", "gzip"), "/multi", "")
	})
}

// TestAuthorization: an edge in front of APIs must not hand one user's
// answer to another, nor an anonymous answer to an authorized request,
// unless the upstream said the answer is shared (public or s-maxage).
func TestAuthorization(t *testing.T) {
	c := New(1<<20, Options{})
	alice := func() *fasthttp.Request { return newReq("GET", "h", "Authorization", "Bearer alice") }
	anon := newReq("GET", "h")

	if c.Store(alice(), []byte("/me"), nil, newResp(200, "alice", "Cache-Control", "max-age=60"), 30*time.Second) {
		t.Fatal("stored an answer to an authorized request without public or s-maxage")
	}
	mustMiss(t, c, anon, "/me", "")

	c.Store(anon, []byte("/anon"), nil, newResp(200, "anonymous view", "Cache-Control", "max-age=60"), 0)
	mustHit(t, c, anon, "/anon", "", "anonymous view")
	mustMiss(t, c, alice(), "/anon", "")

	for _, cc := range []string{"public, max-age=60", "s-maxage=60"} {
		path := "/shared/" + cc
		if !c.Store(alice(), []byte(path), nil, newResp(200, "shared", "Cache-Control", cc), 0) {
			t.Fatalf("%q answer to an authorized request not stored", cc)
		}
		mustHit(t, c, newReq("GET", "h", "Authorization", "Bearer bob"), path, "", "shared")
		mustHit(t, c, anon, path, "", "shared")
	}
}

func TestEvictionLRU(t *testing.T) {
	body := strings.Repeat("x", 1000)
	resp := newResp(200, body, "Cache-Control", "max-age=60")
	req := newReq("GET", "h")
	probe := New(1<<20, Options{Shards: 1})
	probe.Store(req, []byte("/a"), nil, resp, 0)
	size := probe.Stats().Bytes // every path below has the same length

	c := New(3*size, Options{Shards: 1})
	for _, p := range []string{"/a", "/b", "/c"} {
		c.Store(req, []byte(p), nil, resp, 0)
	}
	mustHit(t, c, req, "/a", "", body) // a is now the most recently used; b the least
	c.Store(req, []byte("/d"), nil, resp, 0)
	mustMiss(t, c, req, "/b", "")
	for _, p := range []string{"/a", "/c", "/d"} {
		mustHit(t, c, req, p, "", body)
	}
	if st := c.Stats(); st.Evictions != 1 || st.Entries != 3 || st.Bytes != 3*size {
		t.Fatalf("stats %+v, want 1 eviction, 3 entries, %d bytes", st, 3*size)
	}
	// a, c, d from least to most recent: two more evict a then c.
	c.Store(req, []byte("/e"), nil, resp, 0)
	c.Store(req, []byte("/f"), nil, resp, 0)
	mustMiss(t, c, req, "/a", "")
	mustMiss(t, c, req, "/c", "")
	for _, p := range []string{"/d", "/e", "/f"} {
		mustHit(t, c, req, p, "", body)
	}

	t.Run("too large for the cache", func(t *testing.T) {
		big := newResp(200, strings.Repeat("y", int(3*size)), "Cache-Control", "max-age=60")
		if err := c.store(req, []byte("/big"), nil, big, 0); err != errTooLarge {
			t.Fatalf("store: %v, want %v", err, errTooLarge)
		}
		mustHit(t, c, req, "/d", "", body)
	})
	t.Run("replacing an entry recharges it", func(t *testing.T) {
		before := c.Stats()
		c.Store(req, []byte("/d"), nil, newResp(200, "short", "Cache-Control", "max-age=60"), 0)
		after := c.Stats()
		if after.Entries != before.Entries || after.Bytes != before.Bytes-size+(size-995) {
			t.Fatalf("before %+v after %+v", before, after)
		}
		mustHit(t, c, req, "/d", "", "short")
	})
}

func TestShards(t *testing.T) {
	tests := []struct {
		maxBytes int64
		shards   int
		want     int
	}{
		{64 << 20, 0, 16},
		{4 << 20, 0, 4},
		{1 << 10, 0, 1},
		{1 << 20, 3, 4},
		{1 << 20, 1, 1},
	}
	for _, tt := range tests {
		if got := len(New(tt.maxBytes, Options{Shards: tt.shards}).shards); got != tt.want {
			t.Errorf("New(%d, Shards: %d): %d shards, want %d", tt.maxBytes, tt.shards, got, tt.want)
		}
	}
}
