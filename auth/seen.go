package auth

import (
	"hash/maphash"
	"sync"
	"time"
)

// SeenMax bounds the verified tokens a key set remembers (in 16 shards of
// SeenMax/16, each emptied whole when a miss finds it full). A stream of
// more distinct tokens than this is verified on every request; the bench
// suite's jwt-verify scenario relies on it.
const SeenMax = 16 << 10

// seen remembers tokens that passed verification, with their subject and
// expiry, so that a client's next requests with the same token skip the
// parse and the signature check (the bulk of Verify's cost and all of its
// allocations). It belongs to one key set: a JWKS refresh starts an empty
// one, so no token outlives the keys that verified it. Only the exact token
// bytes match, and exp is checked on every hit; nbf and iat cannot become
// invalid as time passes.
//
// It is safe calling seen methods from concurrently running goroutines.
type seen struct {
	seed   maphash.Seed
	shards [16]seenShard
}

type seenShard struct {
	mu sync.RWMutex // protects m
	m  map[string]seenToken
	_  [40]byte // keep shards on separate cache lines
}

type seenToken struct {
	sub   string
	exp   time.Time // the exp claim
	until time.Time // exp + leeway: no hit at or after it
}

func newSeen() *seen {
	s := &seen{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]seenToken)
	}
	return s
}

func (s *seen) shard(tok []byte) *seenShard {
	return &s.shards[maphash.Bytes(s.seed, tok)%uint64(len(s.shards))]
}

// get returns the remembered claims of tok if it is still valid at now. It
// does not allocate.
func (s *seen) get(tok []byte, now time.Time) (Claims, bool) {
	sh := s.shard(tok)
	sh.mu.RLock()
	t, ok := sh.m[string(tok)]
	sh.mu.RUnlock()
	if !ok || !now.Before(t.until) {
		return Claims{}, false
	}
	return Claims{Subject: t.sub, ExpiresAt: t.exp}, true
}

// add remembers tok. A full shard is emptied first: a flood of distinct
// valid tokens costs only cache misses, never unbounded memory.
func (s *seen) add(tok []byte, c Claims, leeway time.Duration) {
	sh := s.shard(tok)
	sh.mu.Lock()
	if len(sh.m) >= SeenMax/len(s.shards) {
		clear(sh.m)
	}
	sh.m[string(tok)] = seenToken{sub: c.Subject, exp: c.ExpiresAt, until: c.ExpiresAt.Add(leeway)}
	sh.mu.Unlock()
}
