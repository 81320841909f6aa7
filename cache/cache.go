// Package cache is fastgate's shared response cache: GET (and HEAD) answers
// keyed by method, host, normalized path, sorted query and the request
// headers the response Varies on; bounded by bytes with LRU eviction; with
// request coalescing, so that concurrent misses for one key make one
// upstream call.
//
// The gateway calls it in this order for a GET or HEAD on a route that
// caches, after authentication and before the request is rewritten for the
// upstream:
//
//	hit, _, f := c.Get(&ctx.Request, path, query, &ctx.Response, deadline)
//	if hit { // ctx.Response holds the stored answer and its Age header
//		ctx.Response.Header.Set("X-Cache", "HIT")
//		return
//	}
//	defer f.Done() // runs after Store; f may be nil
//	// forward into ctx.Response, hop-by-hop headers stripped, then:
//	c.Store(&ctx.Request, path, query, &ctx.Response, routeTTL)
//	ctx.Response.Header.Set("X-Cache", "MISS")
//
// path is the client's normalized path (not the forwarded one: strip_prefix
// must not merge two routes' keys) and query the raw query string; Get and
// Store must be given the same ones.
//
// What is stored, and for how long, is decided by Store; see its comment.
package cache

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure a Cache. The zero value is usable.
type Options struct {
	// Clock returns the current time; TTLs and Age are measured with it
	// [time.Now].
	Clock func() time.Time
	// DefaultTTL is the lifetime of a storable response for which neither
	// the route's cache_ttl nor the upstream's Cache-Control or Expires gives
	// one [0: such responses are not stored].
	DefaultTTL time.Duration
	// Shards is the number of independently locked parts, rounded up to a
	// power of two. maxBytes is split evenly among them, so LRU order is kept
	// per shard and no entry larger than maxBytes/Shards is stored
	// [16, fewer when that would leave a shard under 1 MiB].
	Shards int
	// Rewritten lists request headers the caller changes between Get and
	// Store (a proxy's X-Forwarded-For and the like): an answer whose Vary
	// names one is not stored, since a lookup, made with the client's
	// value, could never match the value it was stored under, and a client
	// sending the rewritten value would read it [none].
	Rewritten []string
}

// Cache is a response cache bounded by bytes.
//
// It is safe calling Cache methods from concurrently running goroutines.
// It is forbidden copying Cache instances. Create new instances instead.
type Cache struct {
	shards     []shard // immutable slice; each shard locks itself
	mask       uint64  // len(shards) - 1
	seed       maphash.Seed
	clock      func() time.Time
	defaultTTL time.Duration
	rewritten  [][]byte  // Options.Rewritten, canonical
	keys       sync.Pool // *keyBuf
}

// New returns a cache holding at most maxBytes of keys, headers and bodies
// (plus a small fixed overhead per entry).
func New(maxBytes int64, o Options) *Cache {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	n := o.Shards
	if n <= 0 {
		n = 16
		for n > 1 && maxBytes/int64(n) < 1<<20 {
			n /= 2
		}
	}
	n = 1 << bits.Len(uint(n-1))
	c := &Cache{
		shards:     make([]shard, n),
		mask:       uint64(n - 1),
		seed:       maphash.MakeSeed(),
		clock:      o.Clock,
		defaultTTL: o.DefaultTTL,
	}
	for _, h := range o.Rewritten {
		c.rewritten = append(c.rewritten, fasthttp.AppendNormalizedHeaderKey(nil, h))
	}
	c.keys.New = func() any { return &keyBuf{} }
	for i := range c.shards {
		c.shards[i].init(maxBytes / int64(n))
	}
	return c
}

// Stats are the cache's counters since New.
type Stats struct {
	Hits      int64 // lookups answered from the cache, Coalesced included
	Misses    int64 // lookups the caller had to fetch upstream
	Coalesced int64 // hits answered after waiting for another request's fetch
	Stores    int64 // responses stored
	Evictions int64 // entries dropped to make room (LRU)
	Expired   int64 // entries dropped when found past their TTL
	Entries   int64 // entries held now
	Bytes     int64 // bytes held now, as charged against maxBytes
}

// Stats sums the counters of all shards. It takes no lock: each counter is
// exact, the sum a near-instant snapshot.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Coalesced += s.coalesced.Load()
		st.Stores += s.stores.Load()
		st.Evictions += s.evictions.Load()
		st.Expired += s.expired.Load()
		st.Entries += s.entries.Load()
		st.Bytes += s.size.Load()
	}
	return st
}

// Lookup copies the fresh entry for a GET or HEAD request into dst and
// reports a hit, with the entry's age; it counts one hit or one miss. It
// does not coalesce: Get does. path is the normalized path, query the raw
// query string (without '?').
//
// On a hit dst gets the stored status, headers and body, and an Age header
// (whole seconds: the upstream's Age when stored plus the time since). dst
// must hold nothing else of a response, as ctx.Response when the handler
// starts; headers already set on it (X-Request-ID, CORS) are kept, so they
// may be set before or after. dst's body aliases the cache's copy: replace
// it (SetBody, ResetBody) at will, but never write into the slice Body
// returns. A hit allocates nothing.
//
// A request with Authorization is answered only from an entry whose
// response was public or had s-maxage. The request's own Cache-Control
// (no-cache, max-age=0) does not force a refetch: the edge shields its
// upstreams. Methods other than GET and HEAD always miss, uncounted. req is
// only read, but fasthttp's Peek uses the request's scratch space: never
// share one request between goroutines.
func (c *Cache) Lookup(req *fasthttp.Request, path, query []byte, dst *fasthttp.Response) (hit bool, age time.Duration) {
	hit, age, _ = c.get(req, path, query, dst, false, time.Time{})
	return hit, age
}

// Get is Lookup with request coalescing. On a hit it returns true and the
// age, with a nil Flight. On a miss it returns false and either
//   - a Flight: the caller is the one fetching for this key; it must call
//     Store (when it has a response) and then f.Done(), even on failure,
//     so that the requests waiting for it go on; or
//   - nil: the caller fetches on its own (and may Store). That happens when
//     the request is not coalesced (HEAD, Authorization, Cache-Control:
//     no-store), and after waiting for another request's fetch that
//     stored nothing this request can use (an uncacheable answer, an
//     error, another Vary variant) or that outlasted deadline.
//
// Waiting is bounded by deadline (wall-clock; zero waits as long as the
// fetch takes). A waiter whose leader stored nothing fetches on its own
// rather than sharing the leader's answer: that answer was refused by the
// same rules that keep per-user responses (private, Set-Cookie) out of the
// cache, so handing it to other clients would defeat them.
func (c *Cache) Get(req *fasthttp.Request, path, query []byte, dst *fasthttp.Response, deadline time.Time) (hit bool, age time.Duration, f *Flight) {
	return c.get(req, path, query, dst, true, deadline)
}

func (c *Cache) get(req *fasthttp.Request, path, query []byte, dst *fasthttp.Response, coalesce bool, deadline time.Time) (bool, time.Duration, *Flight) {
	code := methodCode(req)
	if code == methodNone {
		return false, 0, nil
	}
	kb := c.acquireKey()
	defer c.releaseKey(kb)
	kb.buildPrimary(code, req.Header.Host(), path, query)
	s := c.shard(kb.pk)
	now := c.clock()
	s.mu.Lock()
	if e := s.find(kb, req, now); e != nil {
		s.mu.Unlock()
		return s.serve(e, dst, now)
	}
	if !coalesce || !coalescable(req) {
		s.mu.Unlock()
		s.misses.Add(1)
		return false, 0, nil
	}
	f, leader := s.join(kb.pk)
	s.mu.Unlock()
	if leader {
		s.misses.Add(1)
		return false, 0, f
	}
	return c.follow(s, f, kb, req, dst, deadline)
}

// follow waits for the fetch f led by another request, then looks the key
// up again; a miss then is the caller's to fetch, without a Flight.
func (c *Cache) follow(s *shard, f *Flight, kb *keyBuf, req *fasthttp.Request, dst *fasthttp.Response, deadline time.Time) (bool, time.Duration, *Flight) {
	if f.wait(deadline) {
		now := c.clock()
		s.mu.Lock()
		e := s.find(kb, req, now)
		s.mu.Unlock()
		if e != nil {
			s.coalesced.Add(1)
			return s.serve(e, dst, now)
		}
	}
	s.misses.Add(1)
	return false, 0, nil
}

// coalescable reports whether a missed request may wait for, or lead, a
// shared fetch: only when its answer could be stored for the others. HEAD
// answers are not stored; answers to requests with Authorization rarely are
// (and queueing one user's request behind another's would only add latency).
func coalescable(req *fasthttp.Request) bool {
	if !req.Header.IsGet() || len(req.Header.Peek(fasthttp.HeaderAuthorization)) > 0 {
		return false
	}
	var d directives
	parseCacheControl(&d, req.Header.Peek(fasthttp.HeaderCacheControl))
	return !d.noStore
}

// Store stores resp, the upstream's answer to req, when the rules allow,
// and reports whether it did. Call it after the upstream's hop-by-hop
// headers are stripped and before per-request headers are added (those
// Store knows of, X-Request-ID and X-Cache, are left out anyway).
//
// Stored: answers to GET (HEAD requests are answered from GET entries, but
// HEAD answers are not stored) with status 200, 203, 204, 300, 301, 308,
// 404, 405, 410, 414 or 501. Never stored: a request with Cache-Control
// no-store; a response with Cache-Control no-store, private or no-cache,
// with Set-Cookie, with Vary: *, or with X-Aggregate-Complete: false; an
// answer to a request with Authorization unless the response is public or
// has s-maxage (RFC 9111 section 3.5); an entry larger than a shard.
//
// Lifetime: routeTTL when > 0 (the edge's choice overrides the upstream's
// max-age, s-maxage and Expires, longer or shorter, as Varnish and Fastly
// do; but an upstream max-age=0, s-maxage=0 or past Expires still keeps
// the answer out), else s-maxage, else max-age, else Expires - Date, less
// the upstream's Age; else Options.DefaultTTL. No lifetime, no store.
// Entries are stored whole (key, headers, body) and charged to their shard;
// the least recently used entries are evicted to make room.
func (c *Cache) Store(req *fasthttp.Request, path, query []byte, resp *fasthttp.Response, routeTTL time.Duration) bool {
	return c.store(req, path, query, resp, routeTTL) == nil
}

func (c *Cache) store(req *fasthttp.Request, path, query []byte, resp *fasthttp.Response, routeTTL time.Duration) error {
	now := c.clock()
	v, err := judge(req, resp, routeTTL, c.defaultTTL, now)
	if err != nil {
		return err
	}
	for _, name := range v.vary {
		for _, r := range c.rewritten {
			if bytes.Equal(name, r) {
				return errVaryRewritten
			}
		}
	}
	kb := c.acquireKey()
	defer c.releaseKey(kb)
	kb.buildPrimary(methodGet, req.Header.Host(), path, query)
	kb.sk = appendVaryKey(kb.sk[:0], v.vary, req)
	s := c.shard(kb.pk)
	e := newEntry(resp, &v, now)
	e.size += int64(len(kb.pk) + len(kb.sk))
	if e.size > s.max {
		return errTooLarge
	}
	pk, sk := string(kb.pk), string(kb.sk)
	s.mu.Lock()
	s.insert(pk, v.vary, sk, e)
	s.mu.Unlock()
	s.stores.Add(1)
	return nil
}

func (c *Cache) shard(pk []byte) *shard {
	return &c.shards[maphash.Bytes(c.seed, pk)&c.mask]
}

// acquireKey returns a keyBuf from the pool; give it back with releaseKey.
func (c *Cache) acquireKey() *keyBuf { return c.keys.Get().(*keyBuf) }

// releaseKey returns kb to the pool; kb must not be used after.
func (c *Cache) releaseKey(kb *keyBuf) {
	kb.pk, kb.sk, kb.params = kb.pk[:0], kb.sk[:0], kb.params[:0]
	c.keys.Put(kb)
}

// Flight is one fetch in progress for a cache key, led by the request Get
// returned it to. Its leader calls Done once it has stored, or given up.
//
// It is safe calling Done from any goroutine, more than once, and on nil.
type Flight struct {
	s    *shard
	key  string
	done chan struct{} // closed by Done
	over bool          // Done was called; protected by s.mu
}

// Done ends the fetch: later misses for the key start a new one, and the
// requests waiting for this one look the key up again.
func (f *Flight) Done() {
	if f == nil {
		return
	}
	f.s.mu.Lock()
	if f.over {
		f.s.mu.Unlock()
		return
	}
	f.over = true
	if f.s.flights[f.key] == f {
		delete(f.s.flights, f.key)
	}
	f.s.mu.Unlock()
	close(f.done)
}

// wait blocks until Done or deadline (zero: no deadline) and reports
// whether Done came first.
func (f *Flight) wait(deadline time.Time) bool {
	if deadline.IsZero() {
		<-f.done
		return true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
		return false
	}
}
