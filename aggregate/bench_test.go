package aggregate

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// benchBodies are four part answers of typical sizes (profile, posts,
// count, trending), about 3 KB in all.
var benchBodies = [4][]byte{
	[]byte(`{"user_id":"42","name":"Demo User 42","handle":"@user42","bio":"Writes about Go, queues and gateways.","verified":false,"followers":1234,"following":56,"joined":"2021-03-14"}`),
	[]byte(`{"user_id":"42","posts":[` + strings.Repeat(`{"id":"p1234","author":"@user17","text":"p99 latency finally under 2 ms.","likes":12,"created_at":"2026-01-02T03:04:05Z"},`, 19) +
		`{"id":"p1","author":"@user1","text":"last","likes":0,"created_at":"2026-01-02T03:04:05Z"}],"next_cursor":"p1214"}`),
	[]byte(`{"user_id":"42","unread":3}`),
	[]byte(`{"topics":[{"tag":"#golang","posts":4000},{"tag":"#fasthttp","posts":2000},{"tag":"#edge","posts":1333}]}`),
}

// mergeOnce is what the merge costs per request: validate four bodies,
// decide, write the answer.
func mergeOnce(dst []byte, parts []part, res []result, at time.Time) []byte {
	for i := range res {
		res[i] = checkBody(200, benchBodies[i], 1<<20)
	}
	v := decide(parts, res, 200)
	return appendAnswer(dst[:0], parts, res, v, at, time.Millisecond)
}

func BenchmarkMerge(b *testing.B) {
	parts := testParts("profile", "posts", "notifications", "trending")
	res := make([]result, 4)
	dst := make([]byte, 0, 8192)
	at := time.Now()
	n := 0
	for _, body := range benchBodies {
		n += len(body)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		dst = mergeOnce(dst, parts, res, at)
	}
}

// fixedDoer answers every part at once with body, in the calling goroutine.
type fixedDoer struct{ body []byte }

func (d fixedDoer) DoDeadline(_ *fasthttp.Request, resp *fasthttp.Response, _ time.Time) error {
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.SetBody(d.body)
	return nil
}

func benchSpec() Spec {
	s := feedSpec(2 * time.Second)
	s.Parts[0].Service, s.Parts[1].Service, s.Parts[2].Service, s.Parts[3].Service = "0", "1", "2", "3"
	return s
}

func inProcessResolver(s string) Doer { return fixedDoer{benchBodies[s[0]-'0']} }

// BenchmarkHandleInProcess is the aggregate's own cost for four parts:
// building the part requests, starting the goroutines, waiting, merging,
// writing the response. The parts answer instantly, in process.
func BenchmarkHandleInProcess(b *testing.B) {
	e := mustNew(b, benchSpec(), inProcessResolver, nil)
	ctx := newCtx("/api/v1/feed", "X-User-ID", "42", "Accept-Language", "de")
	b.ReportAllocs()
	for b.Loop() {
		if sum := e.Handle(ctx); sum.Status != 200 {
			b.Fatalf("status %d: %s", sum.Status, ctx.Response.Body())
		}
	}
}

// BenchmarkHandleLoopback: four parts over loopback HTTP to stub servers
// through pooled HostClients, one aggregate at a time.
func BenchmarkHandleLoopback(b *testing.B) {
	u := startUpstreams(b, "users", "posts", "notifications", "analytics")
	e := mustNew(b, feedSpec(2*time.Second), u.resolver(b), nil)
	ctx := newCtx("/api/v1/feed", "X-User-ID", "42", "Accept-Language", "de")
	b.ReportAllocs()
	for b.Loop() {
		if sum := e.Handle(ctx); sum.Status != 200 {
			b.Fatalf("status %d: %s", sum.Status, ctx.Response.Body())
		}
	}
}

// BenchmarkHandleLoopbackParallel: as BenchmarkHandleLoopback, with
// GOMAXPROCS aggregates in flight.
func BenchmarkHandleLoopbackParallel(b *testing.B) {
	u := startUpstreams(b, "users", "posts", "notifications", "analytics")
	e := mustNew(b, feedSpec(2*time.Second), u.resolver(b), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx("/api/v1/feed", "X-User-ID", "42", "Accept-Language", "de")
		for pb.Next() {
			if sum := e.Handle(ctx); sum.Status != 200 {
				b.Errorf("status %d: %s", sum.Status, ctx.Response.Body())
				return
			}
		}
	})
}
