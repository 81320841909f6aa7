package auth

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: arbitrary header bytes never panic, always fail with a
// known reason, and never succeed unless the token is one of the seeded
// valid ones.
func FuzzVerify(f *testing.F) {
	f.Setenv(testSecretEnv, testSecret)
	k := sharedKeys()
	v := newTestVerifier(f, baseConfig(f, "ES256", "RS256", "HS256"))
	c := validClaims()
	valid := []string{
		sign(f, jwt.SigningMethodES256, k.ec, kid("ec1"), c),
		sign(f, jwt.SigningMethodRS256, k.rsa, kid("rsa1"), c),
		sign(f, jwt.SigningMethodHS256, []byte(testSecret), nil, c),
	}
	seeds := []string{
		"", "Bearer", "Bearer ", "Basic abc", "bearer a.b.c", "Bearer ..", "Bearer a.b", "Bearer a.b.c.d",
		"Bearer " + rawToken(`{"alg":"none"}`, `{"sub":"42","exp":1700003600}`, ""),
		"Bearer " + rawToken(`{"alg":"HS256","kid":"rsa1"}`, `{"sub":"42","exp":1700003600}`, "AAAA"),
		"Bearer " + rawToken(`{"alg":"ES256","kid":"ec1","crit":["b64"]}`, `{"sub":"42"}`, "AAAA"),
		"Bearer " + rawToken(`{"alg":"ES256","kid":7}`, `{"exp":"x"}`, ""),
		"Bearer " + strings.Repeat("A", MaxTokenSize+1),
		"Bearer " + sign(f, jwt.SigningMethodES256, k.ec, kid("ec1"), with(c, "exp", testNow.Add(-time.Hour).Unix())),
		"Bearer " + sign(f, jwt.SigningMethodRS256, k.other, kid("rsa1"), c),
	}
	for _, tok := range valid {
		seeds = append(seeds, "Bearer "+tok, "bearer "+tok+" ", "Bearer "+tok[:len(tok)-1])
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	known := map[string]bool{}
	for _, r := range Reasons() {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		in := bytes.Clone(header)
		c, err := v.Verify(header)
		if !bytes.Equal(in, header) {
			t.Fatal("Verify modified its input")
		}
		if err != nil {
			if !known[Reason(err)] {
				t.Fatalf("unknown reason for %v", err)
			}
			return
		}
		tok, _ := bearerToken(header)
		for _, s := range valid {
			if string(tok) == s {
				if c.Subject != "42" {
					t.Fatalf("claims %+v", c)
				}
				return
			}
		}
		t.Fatalf("accepted a token that was never signed: %q", header)
	})
}
