package cache

import (
	"runtime"
	"strconv"
	"testing"
)

// TestAccountingTracksHeap: what the cache charges to max_bytes is about
// what it holds on the heap, for small answers with many headers too,
// whose bookkeeping (entry, header slices, maps, keys) outweighs their
// bytes. Filled far past its budget, the cache may hold at most 1.5 times
// max_bytes of live heap.
func TestAccountingTracksHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	const max = 1 << 20
	many := []string{"Cache-Control", "max-age=600"}
	for range 100 {
		many = append(many, "X", "1")
	}
	for _, tt := range []struct {
		name string
		hdrs []string
		body string
	}{
		{"typical API answer", []string{"Content-Type", "application/json", "Cache-Control", "max-age=600",
			"Etag", `"abc"`, "X-Frame-Options", "DENY", "Vary", "Accept-Encoding", "Server", "nginx",
			"Strict-Transport-Security", "max-age=31536000", "X-Content-Type-Options", "nosniff"}, `{"id":1,"name":"x"}`},
		{"no headers, empty body", []string{"Cache-Control", "max-age=600"}, ""},
		{"a hundred tiny headers", many, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := New(max, Options{Shards: 1})
			resp := newResp(200, tt.body, tt.hdrs...)
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for i := range 20000 {
				c.Store(newReq("GET", "h", "Accept-Encoding", "gzip"), []byte("/p/"+strconv.Itoa(i)), nil, resp, 0)
			}
			runtime.GC()
			runtime.ReadMemStats(&m1)
			grew := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
			st := c.Stats()
			t.Logf("%d entries, %d bytes charged, heap grew %d bytes (%.2f x max)", st.Entries, st.Bytes, grew, float64(grew)/max)
			if grew > max*3/2 {
				t.Errorf("heap grew %d bytes for max_bytes %d: the charge undercounts", grew, max)
			}
			runtime.KeepAlive(c)
		})
	}
}
