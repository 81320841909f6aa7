//go:build !race

package aggregate

import (
	"testing"
	"time"
)

// The merge allocates nothing: validating four part bodies and writing the
// answer into a pooled buffer.
func TestMergeAllocs(t *testing.T) {
	parts := testParts("profile", "posts", "notifications", "trending")
	res := make([]result, 4)
	dst := make([]byte, 0, 8192)
	at := time.Now()
	if n := testing.AllocsPerRun(200, func() { dst = mergeOnce(dst, parts, res, at) }); n != 0 {
		t.Errorf("merge: %v allocs/op, want 0", n)
	}
}

// The whole handler, with parts answering in process: building four part
// requests, handing them to workers, waiting, merging, writing the
// response. A rare worker start (a goroutine and its closure) is the only
// allocation.
func TestHandleAllocs(t *testing.T) {
	e := mustNew(t, benchSpec(), inProcessResolver, nil)
	ctx := newCtx("/api/v1/feed", "X-User-ID", "42", "Accept-Language", "de")
	if n := testing.AllocsPerRun(200, func() { e.Handle(ctx) }); n > 1 {
		t.Errorf("Handle: %v allocs/op, want at most 1", n)
	}
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	bad := newCtx("/api/v1/feed")
	if n := testing.AllocsPerRun(200, func() { e.Handle(bad) }); n != 0 {
		t.Errorf("Handle answering 400: %v allocs/op, want 0", n)
	}
}
