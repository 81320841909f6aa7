package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer    = "https://auth.fastgate.test"
	testSecretEnv = "FASTGATE_TEST_JWT_SECRET"
	testSecret    = "0123456789abcdef0123456789abcdef-test-only"
)

// testNow is the fixed clock of every test.
var testNow = time.Unix(1_700_000_000, 0)

func fixedNow() time.Time { return testNow }

// testKeys is one set of generated keys shared by the tests of a run.
type testKeys struct {
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	other *rsa.PrivateKey // never loaded: the attacker's key
}

var sharedKeys = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.other, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf encodes a public key as a JWK with kid.
func jwkOf(kid string, pub crypto.PublicKey) map[string]string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "n": b64u(p.N.Bytes()), "e": b64u(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		pt, err := p.Bytes()
		if err != nil {
			panic(err)
		}
		n := (len(pt) - 1) / 2
		crv := map[int]string{32: "P-256", 48: "P-384", 66: "P-521"}[n]
		return map[string]string{"kty": "EC", "kid": kid, "crv": crv, "x": b64u(pt[1 : 1+n]), "y": b64u(pt[1+n:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(p)}
	}
	panic("jwkOf: unsupported key")
}

func jwksJSON(keys ...map[string]string) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func publicPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// baseConfig returns a config with a JWK Set holding the RSA key as "rsa1"
// and the P-256 key as "ec1", and algs.
func baseConfig(t testing.TB, algs ...string) *config.JWT {
	t.Helper()
	k := sharedKeys()
	dir := t.TempDir()
	return &config.JWT{
		Algorithms:    algs,
		Issuer:        testIssuer,
		Audience:      []string{"api", "admin"},
		JWKSFile:      writeFile(t, dir, "jwks.json", jwksJSON(jwkOf("rsa1", &k.rsa.PublicKey), jwkOf("ec1", &k.ec.PublicKey))),
		HMACSecretEnv: testSecretEnv,
		Leeway:        config.Duration{Duration: 30 * time.Second},
	}
}

func newTestVerifier(t testing.TB, cfg *config.JWT) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg, Options{Now: fixedNow})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// claims are valid for the base config at testNow.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "42",
		"iss": testIssuer,
		"aud": "api",
		"iat": testNow.Add(-time.Minute).Unix(),
		"nbf": testNow.Add(-time.Minute).Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
}

// with returns a copy of c with the given changes; a nil value deletes.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// sign makes a token; header entries are added to (or, nil, removed
// from) jwt's {"alg", "typ"} header.
func sign(t testing.TB, m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func kid(k string) map[string]any { return map[string]any{"kid": k} }

func bearer(tok string) []byte { return []byte("Bearer " + tok) }

// rawToken joins base64url of header and claims JSON with a signature.
func rawToken(header, claims, sig string) string {
	return b64u([]byte(header)) + "." + b64u([]byte(claims)) + "." + sig
}
