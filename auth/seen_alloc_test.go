//go:build !race

package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifySeenAllocs: a remembered token costs no allocation.
func TestVerifySeenAllocs(t *testing.T) {
	v := newTestVerifier(t, baseConfig(t, "ES256"))
	tok := bearer(sign(t, jwt.SigningMethodES256, sharedKeys().ec, kid("ec1"), validClaims()))
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(tok) }); n != 0 {
		t.Fatalf("%v allocs per Verify of a remembered token, want 0", n)
	}
}
