package cache

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// shard is one independently locked part of the cache, with its own byte
// budget and LRU order.
type shard struct {
	mu      sync.Mutex           // protects groups, flights, lru, bytes and the list fields of every entry
	groups  map[string]*variants // primary key -> the stored variants
	flights map[string]*Flight   // primary key -> the fetch in progress
	lru     entry                // sentinel: lru.next is the most recently used entry, lru.prev the least
	bytes   int64                // charged to the entries in lru
	max     int64                // budget; immutable

	// Counters, summed by Cache.Stats without the lock.
	hits, misses, coalesced, stores, evictions, expired, entries, size atomic.Int64

	_ [64]byte // keeps the next shard's mutex off this shard's cache lines
}

// variants are the entries stored under one primary key: one per
// combination of the values of the request headers named by Vary (a single
// entry, secondary key "", without Vary).
type variants struct {
	key     string            // primary key
	names   [][]byte          // Vary names, canonical and sorted; immutable
	entries map[string]*entry // secondary key -> entry
}

func (s *shard) init(max int64) {
	s.groups = map[string]*variants{}
	s.flights = map[string]*Flight{}
	s.lru.next, s.lru.prev = &s.lru, &s.lru
	s.max = max
}

// find returns the fresh entry for kb.pk and req, moving it to the front,
// or nil. It drops an expired entry it meets, and never answers a request
// with Authorization from an entry that was not public or s-maxage. The
// caller holds s.mu.
func (s *shard) find(kb *keyBuf, req *fasthttp.Request, now time.Time) *entry {
	g := s.groups[string(kb.pk)]
	if g == nil {
		return nil
	}
	kb.sk = appendVaryKey(kb.sk[:0], g.names, req)
	e := g.entries[string(kb.sk)]
	switch {
	case e == nil:
		return nil
	case !now.Before(e.expires):
		s.remove(e)
		s.expired.Add(1)
		return nil
	case !e.shared && len(req.Header.Peek(fasthttp.HeaderAuthorization)) > 0:
		return nil
	}
	s.unlink(e)
	s.pushFront(e)
	return e
}

// serve copies e into dst and counts a hit; e needs no lock (see entry).
func (s *shard) serve(e *entry, dst *fasthttp.Response, now time.Time) (bool, time.Duration, *Flight) {
	age := e.age(now)
	e.writeTo(dst, age)
	s.hits.Add(1)
	return true, age, nil
}

// join returns the fetch in progress for primary key pk, or starts one and
// reports that the caller leads it. The caller holds s.mu.
func (s *shard) join(pk []byte) (f *Flight, leader bool) {
	if f := s.flights[string(pk)]; f != nil {
		return f, false
	}
	f = &Flight{s: s, key: string(pk), done: make(chan struct{})}
	s.flights[f.key] = f
	return f, true
}

// insert stores e under primary key pk and secondary key sk, replacing what
// was there (all of pk's variants when its Vary names changed), then evicts
// least recently used entries until the shard is within its budget. e.size
// must not exceed s.max. The caller holds s.mu.
func (s *shard) insert(pk string, names [][]byte, sk string, e *entry) {
	g := s.groups[pk]
	if g != nil && !slices.EqualFunc(g.names, names, bytes.Equal) {
		for _, old := range g.entries {
			s.remove(old)
		}
		g = nil
	} else if g != nil {
		if old := g.entries[sk]; old != nil {
			s.remove(old)
			g = s.groups[pk] // remove drops a group it empties
		}
	}
	if g == nil {
		g = &variants{key: pk, names: names, entries: make(map[string]*entry, 1)}
		s.groups[pk] = g
	}
	e.group, e.vkey = g, sk
	g.entries[sk] = e
	s.pushFront(e)
	s.bytes += e.size
	s.entries.Add(1)
	for s.bytes > s.max {
		s.remove(s.lru.prev)
		s.evictions.Add(1)
	}
	s.size.Store(s.bytes)
}

// remove takes e out of the list and its group, and the group out of the
// shard when it was its last entry. The caller holds s.mu.
func (s *shard) remove(e *entry) {
	s.unlink(e)
	g := e.group
	delete(g.entries, e.vkey)
	if len(g.entries) == 0 && s.groups[g.key] == g {
		delete(s.groups, g.key)
	}
	s.bytes -= e.size
	s.size.Store(s.bytes)
	s.entries.Add(-1)
}

func (s *shard) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}
