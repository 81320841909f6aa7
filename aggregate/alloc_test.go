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

// Filling a part path from escaped router params (decoded, then escaped
// again) allocates nothing when dst has room.
func TestFillTemplateAllocs(t *testing.T) {
	tmpl, err := parseTemplate("/u/{id}/{name}?q={query.q}")
	if err != nil {
		t.Fatal(err)
	}
	ctx := newCtx("/api/v1/u?q=a+b")
	ctx.SetUserValue("id", "john%20doe")
	ctx.SetUserValue("name", []byte("caf%C3%A9"))
	dst := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(200, func() { dst, _ = tmpl.appendURI(dst[:0], ctx, nil) }); n != 0 {
		t.Errorf("appendURI: %v allocs/op, want 0", n)
	}
	if want := "/u/john%20doe/caf%C3%A9?q=a%20b"; string(dst) != want {
		t.Errorf("uri = %q, want %q", dst, want)
	}
}
