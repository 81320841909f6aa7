package auth

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestSeenTokens: a verified token is answered from the seen cache until
// exp (+ leeway), then refused like any expired token; a different token is
// still verified in full.
func TestSeenTokens(t *testing.T) {
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	cfg := baseConfig(t, "ES256")
	v, err := NewVerifier(cfg, Options{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	k := sharedKeys()
	tok := bearer(sign(t, jwt.SigningMethodES256, k.ec, kid("ec1"), validClaims()))

	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.keys.Load().seen.get(tok[len("Bearer "):], testNow); !ok {
		t.Fatal("a verified token was not remembered")
	}
	again, err := v.Verify(tok)
	if err != nil || again != first {
		t.Fatalf("second Verify = %+v, %v; want %+v", again, err, first)
	}

	// A forged token differing in one signature byte is not a hit.
	forged := append([]byte(nil), tok...)
	forged[len(forged)-2] ^= 1
	if _, err := v.Verify(forged); err == nil {
		t.Fatal("a forged copy of a remembered token was accepted")
	}

	// exp is 1h after testNow, leeway 30s.
	now.Store(testNow.Add(time.Hour + 29*time.Second).UnixNano())
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	now.Store(testNow.Add(time.Hour + 31*time.Second).UnixNano())
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("after exp+leeway: %v, want ErrExpired", err)
	}
}

func TestSeenBounded(t *testing.T) {
	s := newSeen()
	exp := testNow.Add(time.Hour)
	for i := range 3 * SeenMax {
		s.add([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, Claims{Subject: "x", ExpiresAt: exp}, 0)
	}
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].m)
	}
	if n > SeenMax {
		t.Fatalf("%d tokens remembered, bound %d", n, SeenMax)
	}
}

// TestSeenCycle sends distinct tokens round and round in one order, as
// the bench's jwt-verify scenario does (each wrk thread cycles through
// 2×SeenMax tokens), doing what Verify does: get, then add on a miss. A
// token comes back after the others of the cycle; 2×SeenMax of them put
// about 2048 in its shard, which fills (1024) and is emptied before the
// token comes back, so no request hits. With SeenMax tokens some shard
// gets at most SeenMax/16 of them, never fills, and hits from the second
// round on.
func TestSeenCycle(t *testing.T) {
	tests := []struct {
		name   string
		tokens int
		hits   bool
	}{
		{name: "2×SeenMax never hit", tokens: 2 * SeenMax, hits: false},
		{name: "SeenMax hit", tokens: SeenMax, hits: true},
	}
	exp := testNow.Add(time.Hour)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeen()
			toks := make([][]byte, tt.tokens)
			for i := range toks {
				toks[i] = fmt.Appendf(nil, "token-%d", i)
			}
			hits := 0
			for range 3 {
				for _, tok := range toks {
					if _, ok := s.get(tok, testNow); ok {
						hits++
						continue
					}
					s.add(tok, Claims{Subject: "x", ExpiresAt: exp}, 0)
				}
			}
			if (hits > 0) != tt.hits {
				t.Fatalf("%d hits in 3 rounds of %d tokens", hits, tt.tokens)
			}
		})
	}
}
