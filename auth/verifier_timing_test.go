package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func benchmarkVerify(b *testing.B, m jwt.SigningMethod, key any, kidName string, algs ...string) {
	b.Setenv(testSecretEnv, testSecret)
	v := newTestVerifier(b, baseConfig(b, algs...))
	h := map[string]any{}
	if kidName != "" {
		h["kid"] = kidName
	}
	header := bearer(sign(b, m, key, h, validClaims()))
	if _, err := v.Verify(header); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(header); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	benchmarkVerify(b, jwt.SigningMethodES256, sharedKeys().ec, "ec1", "ES256")
}

func BenchmarkVerifyRS256(b *testing.B) {
	benchmarkVerify(b, jwt.SigningMethodRS256, sharedKeys().rsa, "rsa1", "RS256")
}

func BenchmarkVerifyHS256(b *testing.B) {
	benchmarkVerify(b, jwt.SigningMethodHS256, []byte(testSecret), "", "HS256")
}

// BenchmarkVerifyRejectExpired: a failing token costs the full parse and
// signature check, then the error.
func BenchmarkVerifyRejectExpired(b *testing.B) {
	v := newTestVerifier(b, baseConfig(b, "ES256"))
	header := bearer(sign(b, jwt.SigningMethodES256, sharedKeys().ec, kid("ec1"), with(validClaims(), "exp", testNow.Add(-time.Hour).Unix())))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(header); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkVerifyRejectMalformed: what a garbage header costs before any
// crypto.
func BenchmarkVerifyRejectMalformed(b *testing.B) {
	v := newTestVerifier(b, baseConfig(b, "ES256"))
	header := []byte("Bearer not-a-jwt")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(header); err == nil {
			b.Fatal("accepted")
		}
	}
}
