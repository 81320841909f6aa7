package ratelimit

import (
	"hash/maphash"
	"sync"
)

const (
	// maxShards is the local store's shard count (fewer when max_keys is
	// smaller, so that every shard may hold at least one key).
	maxShards = 64
	// evictSample is how many of a full shard's keys are looked at to choose
	// the one to evict.
	evictSample = 8
)

// localStore keeps the TATs of one limit in this process, in shards chosen
// by a seeded hash of the key (a client cannot aim its keys at one shard),
// each with its own mutex.
//
// Memory is bounded: the shards hold max_keys keys in total, each at most
// its share. A key is always tracked once seen; when its shard is full, one
// key goes to make room: among evictSample keys sampled at random (Go map
// iteration starts at a random place), the one with the earliest TAT. A key
// whose TAT is past is idle, its bucket full again, and forgetting it loses
// nothing, so idle keys go first. When none is idle the one evicted is the
// one with the least debt, whose bucket is closest to full: forgetting it
// grants the least, and never more than one burst.
//
// Why not stop tracking new keys when full (allowing them untracked)? Then
// whoever fills the table gets every later new key unlimited, for as long
// as they keep the table busy. Why is eviction not a cheap way to reset a
// busy key? A flood of distinct keys costs one request each and leaves each
// with a TAT of now+T, the smallest debt there is, so flood keys evict one
// another; a throttled key, whose TAT is near now+tau, goes only when every
// other key of its sample owes more, which takes about burst requests per
// key across the whole shard: the price of using all those keys for real.
// Each new key costs at most one sample of evictSample entries, so a flood
// costs O(1) per request, never a scan.
type localStore struct {
	seed   maphash.Seed
	shards []shard
}

// shard is one lock's worth of keys.
type shard struct {
	mu  sync.Mutex       // guards the fields below
	idx map[string]int32 // key -> its slot in tat
	tat []int64          // slot -> the key's TAT, ns since Limiter.base
	max int              // keys kept at most; fixed at New
	_   [64]byte         // keeps neighbouring shards' mutexes off one cache line
}

func newLocalStore(maxKeys, shards int) *localStore {
	n := min(shards, maxKeys)
	s := &localStore{seed: maphash.MakeSeed(), shards: make([]shard, n)}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.max = maxKeys / n
		if i < maxKeys%n {
			sh.max++
		}
		sh.idx = make(map[string]int32)
	}
	return s
}

// shardFor picks key's shard from the high bits of its hash.
func (s *localStore) shardFor(key []byte) *shard {
	h := maphash.Bytes(s.seed, key) >> 32
	return &s.shards[h*uint64(len(s.shards))>>32]
}

// allow applies one request for key at now.
func (s *localStore) allow(key []byte, now int64, g *gcra) Decision {
	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.idx[string(key)]; ok { // string(key): no allocation for a lookup
		tat, d := g.decide(sh.tat[i], now)
		sh.tat[i] = tat
		return d
	}
	tat, d := g.decide(now, now) // a new key's bucket is full: always allowed
	sh.insert(string(key), tat, now)
	return d
}

// insert tracks a new key, evicting one when the shard is full.
func (sh *shard) insert(key string, tat, now int64) {
	if len(sh.idx) < sh.max {
		sh.tat = append(sh.tat, tat)
		sh.idx[key] = int32(len(sh.tat) - 1)
		return
	}
	i := sh.evict(now)
	sh.tat[i] = tat
	sh.idx[key] = i
}

// evict forgets the key with the earliest TAT among evictSample sampled
// ones (an idle key, whose TAT is past, as soon as one is seen) and returns
// its slot for reuse. The shard must be non-empty.
func (sh *shard) evict(now int64) int32 {
	var victim string
	slot, seen := int32(-1), 0
	for k, i := range sh.idx {
		if slot < 0 || sh.tat[i] < sh.tat[slot] {
			victim, slot = k, i
		}
		if seen++; sh.tat[slot] <= now || seen == evictSample {
			break
		}
	}
	delete(sh.idx, victim)
	return slot
}

// len returns the number of keys tracked (for tests).
func (s *localStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.idx)
		sh.mu.Unlock()
	}
	return n
}
