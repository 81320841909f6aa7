package auth

import (
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
)

// demoConfig is the [auth.jwt] table of the demo config, on the committed
// demo keys.
func demoConfig() *config.JWT {
	return &config.JWT{
		Algorithms:     []string{"RS256", "ES256"},
		Issuer:         "https://auth.fastgate.local",
		Audience:       []string{"api"},
		JWKSFile:       "../keys/jwks.json",
		SigningKeyFile: "../keys/demo-es256.pem",
		Leeway:         config.Duration{Duration: 30 * time.Second},
	}
}

// header decodes a token's header without verifying it.
func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Header
}

func TestMintRoundTrip(t *testing.T) {
	t.Setenv(testSecretEnv, testSecret)
	k := sharedKeys()
	dir := t.TempDir()
	pkcs1 := writeFile(t, dir, "rsa-signer.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)}))
	sec1DER, err := x509.MarshalECPrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	sec1 := writeFile(t, dir, "ec-signer.pem", append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER})...))

	demoRS := demoConfig()
	demoRS.SigningKeyFile = "../keys/demo-rs256.pem"
	pkcs1Cfg := baseConfig(t, "ES256", "PS256", "RS256")
	pkcs1Cfg.SigningKeyFile = pkcs1
	sec1Cfg := &config.JWT{Algorithms: []string{"ES256"}, PublicKeyFiles: []string{writeFile(t, dir, "ec-public.pem", publicPEM(t, &k.ec.PublicKey))}, SigningKeyFile: sec1}
	unlisted := &config.JWT{Algorithms: []string{"ES256"}, JWKSURL: "http://127.0.0.1:1/jwks", SigningKeyFile: sec1}
	hs := &config.JWT{Algorithms: []string{"HS384", "HS256"}, HMACSecretEnv: testSecretEnv, Audience: []string{"api", "web"}}

	tests := []struct {
		name    string
		cfg     *config.JWT
		alg     string
		kid     any // nil: no kid header
		verify  bool
		wantIss string
	}{
		{"demo config: ES256 under the JWK Set's kid", demoConfig(), "ES256", "demo-es256", true, "https://auth.fastgate.local"},
		{"demo RSA key matches its JWK", demoRS, "RS256", "demo-rs256", true, "https://auth.fastgate.local"},
		{"PKCS#1 RSA: first fitting alg is PS256", pkcs1Cfg, "PS256", "rsa1", true, testIssuer},
		{"SEC 1 EC: kid by the file name rule", sec1Cfg, "ES256", "ec-public", true, ""},
		{"key listed nowhere: kid from the signing key file", unlisted, "ES256", "ec-signer", false, ""},
		{"HS only: first HS alg, env secret, no kid", hs, "HS384", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Mint(tt.cfg, "42", time.Hour, testNow)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			h := header(t, tok)
			if h["alg"] != tt.alg || h["kid"] != tt.kid {
				t.Fatalf("header = %v, want alg %s kid %v", h, tt.alg, tt.kid)
			}
			if !tt.verify {
				return
			}
			v := newTestVerifier(t, tt.cfg)
			c, err := v.Verify(bearer(tok))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Subject != "42" || !c.ExpiresAt.Equal(testNow.Add(time.Hour)) {
				t.Errorf("claims = %+v", c)
			}
			var rc jwt.RegisteredClaims
			if _, _, err := jwt.NewParser().ParseUnverified(tok, &rc); err != nil {
				t.Fatal(err)
			}
			if rc.Issuer != tt.wantIss || !rc.IssuedAt.Equal(testNow) || !rc.NotBefore.Equal(testNow) {
				t.Errorf("claims = %+v", rc)
			}
			if len(tt.cfg.Audience) > 0 && (len(rc.Audience) != 1 || rc.Audience[0] != tt.cfg.Audience[0]) {
				t.Errorf("aud = %v, want the first configured", rc.Audience)
			}
		})
	}
}

// TestMintedTokenExpires: a minted token stops verifying after ttl + leeway.
func TestMintedTokenExpires(t *testing.T) {
	tok, err := Mint(demoConfig(), "42", time.Minute, testNow)
	if err != nil {
		t.Fatal(err)
	}
	later := testNow.Add(time.Minute + 31*time.Second)
	v, err := NewVerifier(demoConfig(), Options{Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(bearer(tok)); Reason(err) != "expired" {
		t.Fatalf("err = %v, want expired", err)
	}
}

func TestMintErrors(t *testing.T) {
	t.Setenv(testSecretEnv, "")
	ecOnly := demoConfig()
	ecOnly.Algorithms = []string{"RS256"}
	noKey := demoConfig()
	noKey.SigningKeyFile = ""
	notPEM := demoConfig()
	notPEM.SigningKeyFile = "../keys/jwks.json"
	publicOnly := demoConfig()
	publicOnly.SigningKeyFile = writeFile(t, t.TempDir(), "pub.pem", publicPEM(t, &sharedKeys().ec.PublicKey))
	hsNoSecret := &config.JWT{Algorithms: []string{"HS256"}, HMACSecretEnv: testSecretEnv}
	tests := []struct {
		name string
		cfg  *config.JWT
		sub  string
		ttl  time.Duration
		want string
	}{
		{"nil config", nil, "42", time.Hour, "no [auth.jwt] config"},
		{"empty subject", demoConfig(), "", time.Hour, "subject"},
		{"subject with a newline", demoConfig(), "4\n2", time.Hour, "subject"},
		{"zero ttl", demoConfig(), "42", 0, "ttl"},
		{"no algorithm fits the key", ecOnly, "42", time.Hour, "no configured algorithm fits"},
		{"no signing key and no HS", noKey, "42", time.Hour, "needs signing_key_file"},
		{"signing key file is not a private key", notPEM, "42", time.Hour, "no PRIVATE KEY"},
		{"signing key file holds a public key", publicOnly, "42", time.Hour, "no PRIVATE KEY"},
		{"HS secret unset", hsNoSecret, "42", time.Hour, "at least 32 bytes"},
		{"missing key file", &config.JWT{Algorithms: []string{"ES256"}, SigningKeyFile: filepath.Join(t.TempDir(), "x.pem")}, "42", time.Hour, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Mint(tt.cfg, tt.sub, tt.ttl, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
