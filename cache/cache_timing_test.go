package cache

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkLookupHit: parallel hits spread over 1024 keys (a 1 KiB JSON
// body each), with one shard and with the default 16.
func BenchmarkLookupHit(b *testing.B) {
	for _, shards := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			const keys = 1024
			c := New(64<<20, Options{Shards: shards})
			resp := newResp(200, strings.Repeat("x", 1024), "Cache-Control", "max-age=600", "Content-Type", "application/json")
			req := newReq("GET", "api.example.com")
			paths := make([][]byte, keys)
			for i := range paths {
				paths[i] = fmt.Appendf(nil, "/api/v1/items/%d", i)
				c.Store(req, paths[i], []byte("limit=10&page=2"), resp, 0)
			}
			var seq atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := newReq("GET", "api.example.com")
				dst, query := &fasthttp.Response{}, []byte("page=2&limit=10")
				i := seq.Add(7919)
				for pb.Next() {
					i++
					dst.Reset() // as the server does between requests
					if hit, _ := c.Lookup(req, paths[i%keys], query, dst); !hit {
						b.Fatal("miss")
					}
				}
			})
		})
	}
}

// BenchmarkLookupHitVary: one key, Vary: Accept-Encoding, every goroutine
// on the same shard (the worst case for the lock).
func BenchmarkLookupHitVary(b *testing.B) {
	c := New(64<<20, Options{})
	req := newReq("GET", "api.example.com", "Accept-Encoding", "gzip, br")
	c.Store(req, []byte("/hot"), nil, newResp(200, strings.Repeat("x", 1024), "Cache-Control", "max-age=600", "Vary", "Accept-Encoding"), 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := newReq("GET", "api.example.com", "Accept-Encoding", "gzip, br")
		dst, path := &fasthttp.Response{}, []byte("/hot")
		for pb.Next() {
			dst.Reset()
			if hit, _ := c.Lookup(req, path, nil, dst); !hit {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkStore: storing a 1 KiB answer under rotating keys, with
// evictions once the 4 MiB cache is full.
func BenchmarkStore(b *testing.B) {
	c := New(4<<20, Options{})
	resp := newResp(200, strings.Repeat("x", 1024), "Cache-Control", "max-age=600", "Content-Type", "application/json", "ETag", `"v1"`)
	req := newReq("GET", "api.example.com")
	paths := make([][]byte, 1<<14)
	for i := range paths {
		paths[i] = fmt.Appendf(nil, "/api/v1/items/%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if !c.Store(req, paths[i%len(paths)], []byte("b=2&a=1"), resp, time.Minute) {
			b.Fatal("not stored")
		}
	}
}

func BenchmarkAppendSortedQuery(b *testing.B) {
	q := []byte("utm_source=x&page=2&sort=name&limit=10&filter=a&filter=b")
	var dst []byte
	var ps []param
	b.ReportAllocs()
	for b.Loop() {
		dst, ps = appendSortedQuery(dst[:0], q, ps)
	}
}
