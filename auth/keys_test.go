package auth

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
)

func TestNewVerifierErrors(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	ecJWK := jwkOf("ec1", &k.ec.PublicKey)
	offCurve := jwkOf("bad", &k.ec.PublicKey)
	offCurve["y"] = offCurve["x"]
	small := map[string]string{"kty": "RSA", "kid": "small", "n": b64u([]byte(strings.Repeat("\xff", 128))), "e": "AQAB"}
	file := func(name, data string) string { return writeFile(t, dir, name, []byte(data)) }
	tests := []struct {
		name   string
		cfg    *config.JWT
		secret string
		want   string // substring of the error
	}{
		{"nil config", nil, "", "no [auth.jwt] config"},
		{"no algorithms", &config.JWT{JWKSFile: file("a.json", string(jwksJSON(ecJWK)))}, "", "no algorithms"},
		{"HS256 without env name", &config.JWT{Algorithms: []string{"HS256"}}, "", "need hmac_secret_env"},
		{"HS256 with a short secret", &config.JWT{Algorithms: []string{"HS256"}, HMACSecretEnv: testSecretEnv}, "short", "at least 32 bytes"},
		{"HS256 with an unset secret", &config.JWT{Algorithms: []string{"HS256"}, HMACSecretEnv: testSecretEnv}, "", "at least 32 bytes"},
		{"missing jwks file", &config.JWT{Algorithms: []string{"ES256"}, JWKSFile: filepath.Join(dir, "nope.json")}, "", "no such file"},
		{"jwks not JSON", &config.JWT{Algorithms: []string{"ES256"}, JWKSFile: file("b.json", "{")}, "", "JWK Set"},
		{"jwks without usable key", &config.JWT{Algorithms: []string{"ES256"}, JWKSFile: file("c.json", `{"keys":[{"kty":"oct","k":"AAAA"}]}`)}, "", "no usable signature key"},
		{"EC point off the curve", &config.JWT{Algorithms: []string{"ES256"}, JWKSFile: file("d.json", string(jwksJSON(offCurve)))}, "", `kid "bad"`},
		{"RSA 1024", &config.JWT{Algorithms: []string{"RS256"}, JWKSFile: file("e.json", string(jwksJSON(small)))}, "", "want at least 2048"},
		{"duplicate kid across sources", &config.JWT{Algorithms: []string{"ES256"}, JWKSFile: file("f.json", string(jwksJSON(ecJWK))),
			PublicKeyFiles: []string{writeFile(t, dir, "ec1.pem", publicPEM(t, &k.ec.PublicKey))}}, "", `duplicate kid "ec1"`},
		{"PEM file without a key", &config.JWT{Algorithms: []string{"ES256"}, PublicKeyFiles: []string{file("g.pem", "hello")}}, "", "no PUBLIC KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(testSecretEnv, tt.secret)
			_, err := NewVerifier(tt.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "auth: ") {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseJWKSkipsForeignKeys(t *testing.T) {
	k := sharedKeys()
	ec := jwkOf("ec1", &k.ec.PublicKey)
	enc := jwkOf("enc", &k.rsa.PublicKey)
	enc["use"] = "enc"
	oaep := jwkOf("oaep", &k.rsa.PublicKey)
	oaep["alg"] = "RSA-OAEP"
	x25519 := map[string]string{"kty": "OKP", "crv": "X25519", "x": b64u(make([]byte, 32))}
	oct := map[string]string{"kty": "oct", "k": "AAAA"}
	keys, err := parseJWKS(jwksJSON(ec, enc, oaep, x25519, oct))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].kid != "ec1" {
		t.Fatalf("keys = %+v, want only ec1", keys)
	}
}

// TestJWKAlgPinsTheKey: a JWK with "alg" verifies only that algorithm.
func TestJWKAlgPinsTheKey(t *testing.T) {
	k := sharedKeys()
	j := jwkOf("rsa1", &k.rsa.PublicKey)
	j["alg"] = "RS256"
	cfg := &config.JWT{Algorithms: []string{"RS256", "PS256"}, JWKSFile: writeFile(t, t.TempDir(), "jwks.json", jwksJSON(j))}
	v := newTestVerifier(t, cfg)
	c := validClaims()
	if _, err := v.Verify(bearer(sign(t, jwt.SigningMethodRS256, k.rsa, kid("rsa1"), c))); err != nil {
		t.Fatalf("RS256: %v", err)
	}
	if _, err := v.Verify(bearer(sign(t, jwt.SigningMethodPS256, k.rsa, kid("rsa1"), c))); Reason(err) != "algorithm" {
		t.Fatalf("PS256 on an RS256 key: %v, want algorithm", err)
	}
}

func TestPublicKeyFiles(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec.PublicKey, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	cfg := &config.JWT{
		Algorithms: []string{"RS256", "ES256", "EdDSA"},
		PublicKeyFiles: []string{
			writeFile(t, dir, "issuer-cert.crt", cert),
			writeFile(t, dir, "rsa.pub.pem", pkcs1),
			writeFile(t, dir, "ed.pem", publicPEM(t, k.ed.Public())),
		},
	}
	v := newTestVerifier(t, cfg)
	c := validClaims()
	tests := []struct {
		name string
		tok  string
	}{
		{"certificate, kid issuer-cert", sign(t, jwt.SigningMethodES256, k.ec, kid("issuer-cert"), c)},
		{"PKCS#1, kid rsa.pub", sign(t, jwt.SigningMethodRS256, k.rsa, kid("rsa.pub"), c)},
		{"PKIX Ed25519, kid ed", sign(t, jwt.SigningMethodEdDSA, k.ed, kid("ed"), c)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := v.Verify(bearer(tt.tok)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
