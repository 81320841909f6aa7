package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
)

func TestVerify(t *testing.T) {
	t.Setenv(testSecretEnv, testSecret)
	k := sharedKeys()
	asym := newTestVerifier(t, baseConfig(t, "RS256", "ES256"))
	all := newTestVerifier(t, baseConfig(t, "RS256", "ES256", "HS256"))
	secret := []byte(testSecret)
	c := validClaims()
	rsPub := publicPEM(t, &k.rsa.PublicKey)

	rs := func(h map[string]any, c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, k.rsa, h, c) }
	es := func(h map[string]any, c jwt.MapClaims) string { return sign(t, jwt.SigningMethodES256, k.ec, h, c) }
	valid := rs(kid("rsa1"), c)
	parts := strings.Split(valid, ".")
	okHeader := `{"alg":"RS256","kid":"rsa1"}`
	okClaims := `{"sub":"42","iss":"` + testIssuer + `","aud":"api","exp":1700003600}`

	// big is a valid ES256 token just under MaxTokenSize.
	big := es(kid("ec1"), with(c, "pad", strings.Repeat("x", MaxTokenSize*3/4-230)))
	if len(big) > MaxTokenSize || len(big) < MaxTokenSize-16 {
		t.Fatalf("big token is %d bytes, want just under %d", len(big), MaxTokenSize)
	}

	tests := []struct {
		name   string
		v      *Verifier
		header string
		want   string // Reason; "" = accepted with sub 42
	}{
		// valid, each as configured
		{"valid RS256", asym, "Bearer " + valid, ""},
		{"valid ES256", asym, "Bearer " + es(kid("ec1"), c), ""},
		{"valid HS256 from env secret", all, "Bearer " + sign(t, jwt.SigningMethodHS256, secret, nil, c), ""},
		{"valid RS256 without kid: the one RSA key", asym, "Bearer " + rs(nil, c), ""},
		{"valid HS256 naming a kid: the env secret has none, so it matches", all, "Bearer " + sign(t, jwt.SigningMethodHS256, secret, kid("issuer-key-7"), c), ""},
		{"HS256 naming a kid, signed with another secret", all, "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another secret of 32 bytes or more"), kid("issuer-key-7"), c), "signature"},
		{"valid aud array holding one configured audience", asym, "Bearer " + rs(kid("rsa1"), with(c, "aud", []string{"web", "admin"})), ""},

		// the header
		{"scheme lower case", asym, "bearer " + valid, ""},
		{"scheme upper case", asym, "BEARER " + valid, ""},
		{"extra spaces", asym, "Bearer   " + valid + "  ", ""},
		{"missing header", asym, "", "missing"},
		{"scheme only", asym, "Bearer", "missing"},
		{"scheme and space only", asym, "Bearer ", "missing"},
		{"other scheme", asym, "Basic dXNlcjpwYXNz", "missing"},
		{"no space after scheme", asym, "Bearer" + valid, "missing"},
		{"raw token without scheme", asym, valid, "missing"},

		// algorithms
		{"alg none unsigned", asym, "Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("rsa1"), c), "algorithm"},
		{"alg none with signature", asym, "Bearer " + rawToken(`{"alg":"none","kid":"rsa1"}`, okClaims, parts[2]), "algorithm"},
		{"alg NONE", asym, "Bearer " + rawToken(`{"alg":"NONE"}`, okClaims, ""), "algorithm"},
		{"alg missing", asym, "Bearer " + rawToken(`{"kid":"rsa1"}`, okClaims, parts[2]), "algorithm"},
		{"alg confusion: HS256 signed with the RSA public key, HS256 not configured", asym,
			"Bearer " + sign(t, jwt.SigningMethodHS256, rsPub, kid("rsa1"), c), "algorithm"},
		{"alg confusion: HS256 configured, kid of the RSA key", all,
			"Bearer " + sign(t, jwt.SigningMethodHS256, rsPub, kid("rsa1"), c), "algorithm"},
		{"alg confusion: HS256 configured, no kid: the env secret, not the RSA key", all,
			"Bearer " + sign(t, jwt.SigningMethodHS256, rsPub, nil, c), "signature"},
		{"HS256 with the right secret but not configured", asym, "Bearer " + sign(t, jwt.SigningMethodHS256, secret, nil, c), "algorithm"},
		{"RS384 not configured", asym, "Bearer " + sign(t, jwt.SigningMethodRS384, k.rsa, kid("rsa1"), c), "algorithm"},
		{"ES256 naming the RSA key", asym, "Bearer " + es(kid("rsa1"), c), "algorithm"},

		// keys
		{"unknown kid", asym, "Bearer " + rs(kid("rsa2"), c), "kid"},
		{"kid not a string", asym, "Bearer " + rs(map[string]any{"kid": 7}, c), "malformed"},
		{"jku elsewhere is ignored, kid selects the loaded key", asym,
			"Bearer " + rs(map[string]any{"kid": "rsa1", "jku": "https://evil.example/jwks.json", "x5u": "https://evil.example/cert.pem"}, c), ""},
		{"jku elsewhere with the attacker's key and kid", asym,
			"Bearer " + sign(t, jwt.SigningMethodRS256, k.other, map[string]any{"kid": "evil", "jku": "https://evil.example/jwks.json"}, c), "kid"},
		{"embedded jwk of the attacker's key is ignored", asym,
			"Bearer " + sign(t, jwt.SigningMethodRS256, k.other, map[string]any{"jwk": jwkOf("", &k.other.PublicKey)}, c), "signature"},
		{"crit header", asym, "Bearer " + rs(map[string]any{"kid": "rsa1", "crit": []string{"exp"}}, c), "malformed"},

		// signature
		{"signed by another key", asym, "Bearer " + sign(t, jwt.SigningMethodRS256, k.other, kid("rsa1"), c), "signature"},
		{"claims changed after signing", asym, "Bearer " + parts[0] + "." + b64u([]byte(`{"sub":"1","iss":"`+testIssuer+`","aud":"api","exp":1700003600}`)) + "." + parts[2], "signature"},
		{"expired and bad signature: signature wins", asym,
			"Bearer " + sign(t, jwt.SigningMethodRS256, k.other, kid("rsa1"), with(c, "exp", testNow.Add(-time.Hour).Unix())), "signature"},

		// time
		{"expired", asym, "Bearer " + rs(kid("rsa1"), with(c, "exp", testNow.Add(-time.Hour).Unix())), "expired"},
		{"leeway honoured: exp 10s ago", asym, "Bearer " + rs(kid("rsa1"), with(c, "exp", testNow.Add(-10*time.Second).Unix())), ""},
		{"beyond leeway: exp 31s ago", asym, "Bearer " + rs(kid("rsa1"), with(c, "exp", testNow.Add(-31*time.Second).Unix())), "expired"},
		{"missing exp", asym, "Bearer " + rs(kid("rsa1"), with(c, "exp", nil)), "no_expiry"},
		{"nbf in the future", asym, "Bearer " + rs(kid("rsa1"), with(c, "nbf", testNow.Add(time.Hour).Unix())), "not_before"},
		{"nbf 10s ahead within leeway", asym, "Bearer " + rs(kid("rsa1"), with(c, "nbf", testNow.Add(10*time.Second).Unix())), ""},
		{"iat in the future", asym, "Bearer " + rs(kid("rsa1"), with(c, "iat", testNow.Add(time.Hour).Unix())), "not_before"},
		{"expired and wrong issuer: expired wins", asym, "Bearer " + rs(kid("rsa1"), with(c, "exp", testNow.Add(-time.Hour).Unix(), "iss", "x")), "expired"},

		// issuer, audience, subject
		{"wrong iss", asym, "Bearer " + rs(kid("rsa1"), with(c, "iss", "https://evil.example")), "issuer"},
		{"missing iss", asym, "Bearer " + rs(kid("rsa1"), with(c, "iss", nil)), "issuer"},
		{"wrong aud", asym, "Bearer " + rs(kid("rsa1"), with(c, "aud", "web")), "audience"},
		{"missing aud", asym, "Bearer " + rs(kid("rsa1"), with(c, "aud", nil)), "audience"},
		{"missing sub", asym, "Bearer " + rs(kid("rsa1"), with(c, "sub", nil)), "subject"},
		{"sub with a newline", asym, "Bearer " + rs(kid("rsa1"), with(c, "sub", "42\r\nX-Admin: 1")), "subject"},
		{"sub too long", asym, "Bearer " + rs(kid("rsa1"), with(c, "sub", strings.Repeat("a", MaxSubjectSize+1))), "subject"},

		// size
		{"token just under the limit", asym, "Bearer " + big, ""},
		{"oversized token", asym, "Bearer " + strings.Repeat("a", MaxTokenSize+1), "too_large"},
		{"oversized valid-looking token", asym, "Bearer " + es(kid("ec1"), with(c, "pad", strings.Repeat("x", MaxTokenSize))), "too_large"},

		// malformed
		{"two segments", asym, "Bearer " + parts[0] + "." + parts[1], "malformed"},
		{"four segments", asym, "Bearer " + valid + ".x", "malformed"},
		{"empty segments", asym, "Bearer ..", "malformed"},
		{"bad base64 header", asym, "Bearer abcde." + parts[1] + "." + parts[2], "malformed"},
		{"bad base64 claims", asym, "Bearer " + parts[0] + ".abcde." + parts[2], "malformed"},
		{"bad base64 signature", asym, "Bearer " + parts[0] + "." + parts[1] + ".abcde", "malformed"},
		{"non-canonical base64 (trailing bits)", asym, "Bearer " + rawToken(okHeader, okClaims, "AB"), "malformed"},
		{"bad JSON header", asym, "Bearer " + rawToken(`{"alg":"RS256"`, okClaims, parts[2]), "malformed"},
		{"bad JSON claims", asym, "Bearer " + rawToken(okHeader, `{"sub":`, parts[2]), "malformed"},
		{"exp not a number", asym, "Bearer " + rawToken(okHeader, `{"sub":"42","exp":"tomorrow"}`, parts[2]), "malformed"},
		{"not base64url characters", asym, "Bearer " + parts[0] + "." + parts[1] + "+/" + "." + parts[2], "malformed"},
		{"newline inside the token", asym, "Bearer " + parts[0] + "." + parts[1] + "." + parts[2][:10] + "\n" + parts[2][10:], "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Verify([]byte(tt.header))
			if r := Reason(err); r != tt.want {
				t.Fatalf("Reason = %q, want %q (err: %v)", r, tt.want, err)
			}
			if tt.want != "" {
				if got != (Claims{}) {
					t.Errorf("claims on failure: %+v", got)
				}
				return
			}
			if got.Subject != "42" || got.ExpiresAt.IsZero() {
				t.Errorf("claims = %+v, want sub 42 and an expiry", got)
			}
		})
	}
}

// TestVerifyErrorsMatchOneSentinel: the gateway counts by Reason, so no
// error may match two sentinels.
func TestVerifyErrorsMatchOneSentinel(t *testing.T) {
	k := sharedKeys()
	v := newTestVerifier(t, baseConfig(t, "RS256"))
	tok := sign(t, jwt.SigningMethodRS256, k.other, kid("rsa1"), with(validClaims(), "exp", testNow.Add(-time.Hour).Unix(), "iss", "x", "aud", "y"))
	_, err := v.Verify(bearer(tok))
	n := 0
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			n++
		}
	}
	if n != 1 || !errors.Is(err, ErrSignature) {
		t.Fatalf("err %v matches %d sentinels, want ErrSignature only", err, n)
	}
	if !strings.HasPrefix(err.Error(), "auth: bad signature") {
		t.Errorf("message %q lacks the sentinel prefix", err)
	}
}

func TestVerifyKeyTypes(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	cfg := &config.JWT{
		Algorithms: []string{"ES256", "ES384", "EdDSA", "PS256"},
		JWKSFile: writeFile(t, dir, "jwks.json", jwksJSON(
			jwkOf("ec256", &k.ec.PublicKey), jwkOf("ec384", &k.ec384.PublicKey),
			jwkOf("ed", k.ed.Public()), jwkOf("rsa", &k.rsa.PublicKey))),
	}
	v := newTestVerifier(t, cfg)
	c := validClaims()
	tests := []struct {
		name string
		tok  string
		want string
	}{
		{"ES384 on P-384", sign(t, jwt.SigningMethodES384, k.ec384, kid("ec384"), c), ""},
		{"ES384 naming the P-256 key", sign(t, jwt.SigningMethodES384, k.ec384, kid("ec256"), c), "algorithm"},
		{"ES384 without kid: the one P-384 key", sign(t, jwt.SigningMethodES384, k.ec384, nil, c), ""},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, k.ed, kid("ed"), c), ""},
		{"PS256 with an RSA key", sign(t, jwt.SigningMethodPS256, k.rsa, kid("rsa"), c), ""},
		{"RS256 not configured though the key fits", sign(t, jwt.SigningMethodRS256, k.rsa, kid("rsa"), c), "algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(bearer(tt.tok))
			if r := Reason(err); r != tt.want {
				t.Fatalf("Reason = %q, want %q (err: %v)", r, tt.want, err)
			}
		})
	}
}

// TestVerifyNoKIDAmbiguous: without kid a token is accepted only if
// exactly one loaded key fits its alg.
func TestVerifyNoKIDAmbiguous(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	cfg := &config.JWT{
		Algorithms: []string{"RS256"},
		JWKSFile:   writeFile(t, dir, "jwks.json", jwksJSON(jwkOf("a", &k.rsa.PublicKey), jwkOf("b", &k.other.PublicKey))),
	}
	v := newTestVerifier(t, cfg)
	c := validClaims()
	if _, err := v.Verify(bearer(sign(t, jwt.SigningMethodRS256, k.rsa, nil, c))); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("no kid, two RSA keys: err = %v, want ErrUnknownKID", err)
	}
	if _, err := v.Verify(bearer(sign(t, jwt.SigningMethodRS256, k.other, kid("b"), c))); err != nil {
		t.Fatalf("kid b: %v", err)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrMissing, "missing"},
		{fail(ErrExpired, errors.New("detail")), "expired"},
		{errors.New("elsewhere"), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Reason(tt.err); got != tt.want {
				t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Errorf("label %q twice", r)
		}
		seen[r] = true
	}
	if len(seen) != 12 {
		t.Errorf("Reasons() = %v", Reasons())
	}
}
