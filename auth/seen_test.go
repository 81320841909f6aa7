package auth

import (
	"errors"
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
	for i := range 3 * seenMax {
		s.add([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, Claims{Subject: "x", ExpiresAt: exp}, 0)
	}
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].m)
	}
	if n > seenMax {
		t.Fatalf("%d tokens remembered, bound %d", n, seenMax)
	}
}
