package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
)

// TestUnknownKIDFallback: a token naming a kid no key has is verified with
// the only kid-less key fitting its alg, and never with a key of another
// alg, a key that has a kid, or one of two kid-less keys.
func TestUnknownKIDFallback(t *testing.T) {
	t.Setenv(testSecretEnv, testSecret)
	k := sharedKeys()
	attackerEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	noKID := func(m map[string]string) map[string]string { delete(m, "kid"); return m }
	mixed := &config.JWT{
		Algorithms: []string{"RS256", "ES256", "HS256", "ES384"}, Issuer: testIssuer, Audience: []string{"api"},
		JWKSFile:       writeFile(t, dir, "jwks.json", jwksJSON(jwkOf("rsa1", &k.rsa.PublicKey), noKID(jwkOf("", &k.ec.PublicKey)))),
		PublicKeyFiles: []string{writeFile(t, dir, "p384.pem", publicPEM(t, &k.ec384.PublicKey))},
		HMACSecretEnv:  testSecretEnv,
	}
	two := &config.JWT{
		Algorithms: []string{"ES256"}, Issuer: testIssuer, Audience: []string{"api"},
		JWKSFile: writeFile(t, dir, "two.json", jwksJSON(noKID(jwkOf("", &k.ec.PublicKey)), noKID(jwkOf("", &ec2.PublicKey)))),
	}
	vm, v2 := newTestVerifier(t, mixed), newTestVerifier(t, two)
	c := validClaims()
	rsaPEM := publicPEM(t, &k.rsa.PublicKey)
	tests := []struct {
		name string
		v    *Verifier
		tok  string
		want string
	}{
		{"ES256 unknown kid, the kidless EC key", vm, sign(t, jwt.SigningMethodES256, k.ec, kid("zzz"), c), ""},
		{"ES256 kid of the RSA key: no fallback", vm, sign(t, jwt.SigningMethodES256, k.ec, kid("rsa1"), c), "algorithm"},
		{"ES256 unknown kid, attacker key", vm, sign(t, jwt.SigningMethodES256, attackerEC, kid("zzz"), c), "signature"},
		{"HS256 unknown kid keyed with the RSA PEM", vm, sign(t, jwt.SigningMethodHS256, rsaPEM, kid("zzz"), c), "signature"},
		{"HS256 kid rsa1 keyed with the RSA PEM", vm, sign(t, jwt.SigningMethodHS256, rsaPEM, kid("rsa1"), c), "algorithm"},
		{"RS256 unknown kid: the RSA key has a kid", vm, sign(t, jwt.SigningMethodRS256, k.rsa, kid("zzz"), c), "kid"},
		{"ES384 unknown kid: the PEM key has its file name", vm, sign(t, jwt.SigningMethodES384, k.ec384, kid("zzz"), c), "kid"},
		{"ES384 kid p384", vm, sign(t, jwt.SigningMethodES384, k.ec384, kid("p384"), c), ""},
		{"two kidless EC keys: unknown kid", v2, sign(t, jwt.SigningMethodES256, k.ec, kid("zzz"), c), "kid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(bearer(tt.tok))
			if got := Reason(err); got != tt.want {
				t.Errorf("Reason %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// TestFallbackIgnoresKeysWithKIDs: a token naming an unknown kid and signed
// by the set's kid-less ES256 key stays accepted when an unrelated ES256
// key with its own kid joins the set (a jwks_url rotation), as in Envoy's
// jwt_authn.
func TestFallbackIgnoresKeysWithKIDs(t *testing.T) {
	k := sharedKeys()
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	noKID := jwkOf("", &k.ec.PublicKey)
	delete(noKID, "kid")
	cfg := func(name string, keys ...map[string]string) *config.JWT {
		return &config.JWT{Algorithms: []string{"ES256"}, Issuer: testIssuer, Audience: []string{"api"},
			JWKSFile: writeFile(t, dir, name, jwksJSON(keys...))}
	}
	before := newTestVerifier(t, cfg("before.json", noKID))
	after := newTestVerifier(t, cfg("after.json", noKID, jwkOf("ec-new", &newKey.PublicKey)))
	tok := bearer(sign(t, jwt.SigningMethodES256, k.ec, kid("issuer-7"), validClaims()))
	if _, err := before.Verify(tok); err != nil {
		t.Fatalf("before: %v", err)
	}
	if _, err := after.Verify(tok); err != nil {
		t.Errorf("after an unrelated ES256 key joined the set: %v (Reason %q)", err, Reason(err))
	}
}
