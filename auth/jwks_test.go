package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

// jwksServer is a real fasthttp server on loopback serving a JWK Set that
// the test can replace, or fail.
type jwksServer struct {
	url  string
	body atomic.Pointer[[]byte]
	fail atomic.Bool  // answer 500
	hits atomic.Int64 // requests served
}

func startJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &jwksServer{url: "http://" + ln.Addr().String() + "/.well-known/jwks.json"}
	s.body.Store(&body)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		s.hits.Add(1)
		if s.fail.Load() || string(ctx.Path()) != "/.well-known/jwks.json" {
			ctx.Error("down", fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("application/jwk-set+json")
		ctx.SetBody(*s.body.Load())
	}}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { srv.Shutdown() })
	return s
}

func (s *jwksServer) set(body []byte) { s.body.Store(&body) }

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// eventually polls cond every 10ms for at most 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func urlConfig(url string, refresh time.Duration) *config.JWT {
	return &config.JWT{Algorithms: []string{"ES256"}, JWKSURL: url, JWKSRefresh: config.Duration{Duration: refresh}}
}

func TestJWKSURLRotation(t *testing.T) {
	oldKey, newKey := newECKey(t), newECKey(t)
	srv := startJWKSServer(t, jwksJSON(jwkOf("k1", &oldKey.PublicKey)))
	errs := make(chan error, 100)
	v, err := NewVerifier(urlConfig(srv.url, 20*time.Millisecond), Options{Now: fixedNow, OnRefreshError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c := validClaims()
	oldTok := sign(t, jwt.SigningMethodES256, oldKey, kid("k1"), c)
	newTok := sign(t, jwt.SigningMethodES256, newKey, kid("k2"), c)
	if _, err := v.Verify(bearer(oldTok)); err != nil {
		t.Fatalf("old key before rotation: %v", err)
	}
	if _, err := v.Verify(bearer(newTok)); Reason(err) != "kid" {
		t.Fatalf("new key before rotation: %v, want kid", err)
	}

	srv.set(jwksJSON(jwkOf("k2", &newKey.PublicKey)))
	eventually(t, "the rotated key", func() bool { _, err := v.Verify(bearer(newTok)); return err == nil })
	if _, err := v.Verify(bearer(oldTok)); Reason(err) != "kid" {
		t.Fatalf("old key after rotation: %v, want kid", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("unexpected refresh error: %v", err)
	default:
	}
}

func TestJWKSURLRefreshFailureKeepsKeys(t *testing.T) {
	key := newECKey(t)
	srv := startJWKSServer(t, jwksJSON(jwkOf("k1", &key.PublicKey)))
	errs := make(chan error, 100)
	v, err := NewVerifier(urlConfig(srv.url, 20*time.Millisecond), Options{Now: fixedNow, OnRefreshError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := bearer(sign(t, jwt.SigningMethodES256, key, kid("k1"), validClaims()))

	tests := []struct {
		name    string
		breakIt func()
		want    string
	}{
		{"server error", func() { srv.fail.Store(true) }, "status 500"},
		{"garbage body", func() { srv.fail.Store(false); srv.set([]byte("<html>")) }, "JWK Set"},
		{"set without usable key", func() { srv.set([]byte(`{"keys":[]}`)) }, "no usable signature key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.breakIt()
			drain(errs)
			var got error
			eventually(t, "a refresh error", func() bool {
				select {
				case got = <-errs:
					return strings.Contains(got.Error(), tt.want)
				default:
					return false
				}
			})
			if !strings.HasPrefix(got.Error(), "auth: ") {
				t.Errorf("error %q lacks the package prefix", got)
			}
			if _, err := v.Verify(tok); err != nil {
				t.Fatalf("the last good key set was dropped: %v", err)
			}
		})
	}
}

func drain(ch chan error) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestJWKSURLCloseStopsRefresh(t *testing.T) {
	key := newECKey(t)
	srv := startJWKSServer(t, jwksJSON(jwkOf("k1", &key.PublicKey)))
	v, err := NewVerifier(urlConfig(srv.url, 10*time.Millisecond), Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a few refreshes", func() bool { return srv.hits.Load() >= 3 })
	v.Close()
	v.Close() // idempotent
	hits := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv.hits.Load(); got != hits {
		t.Fatalf("%d fetches after Close", got-hits)
	}
	if _, err := v.Verify(bearer(sign(t, jwt.SigningMethodES256, key, kid("k1"), validClaims()))); err != nil {
		t.Fatalf("Verify after Close: %v", err)
	}
}

func TestJWKSURLInitialFetch(t *testing.T) {
	key := newECKey(t)
	srv := startJWKSServer(t, jwksJSON(jwkOf("k1", &key.PublicKey)))
	srv.fail.Store(true)
	if _, err := NewVerifier(urlConfig(srv.url, time.Minute), Options{}); err == nil || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("err = %v, want the failed first fetch", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close()
	if _, err := NewVerifier(urlConfig(dead, time.Minute), Options{FetchTimeout: time.Second}); err == nil || !strings.HasPrefix(err.Error(), "auth: jwks_url") {
		t.Fatalf("err = %v, want a fetch error", err)
	}
}

// TestJWKSURLWithStaticKeys: fetched keys join the file's; a fetched kid
// that collides with a static one fails the refresh, not the old set.
func TestJWKSURLWithStaticKeys(t *testing.T) {
	k := sharedKeys()
	fetched := newECKey(t)
	srv := startJWKSServer(t, jwksJSON(jwkOf("remote", &fetched.PublicKey)))
	cfg := baseConfig(t, "RS256", "ES256")
	cfg.Issuer, cfg.Audience = "", nil
	cfg.JWKSURL, cfg.JWKSRefresh = srv.url, config.Duration{Duration: 20 * time.Millisecond}
	errs := make(chan error, 100)
	v, err := NewVerifier(cfg, Options{Now: fixedNow, OnRefreshError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c := validClaims()
	for _, tok := range []string{
		sign(t, jwt.SigningMethodES256, fetched, kid("remote"), c),
		sign(t, jwt.SigningMethodES256, k.ec, kid("ec1"), c),
		sign(t, jwt.SigningMethodRS256, k.rsa, kid("rsa1"), c),
	} {
		if _, err := v.Verify(bearer(tok)); err != nil {
			t.Fatal(err)
		}
	}
	srv.set(jwksJSON(jwkOf("rsa1", &fetched.PublicKey)))
	eventually(t, "the duplicate-kid error", func() bool {
		select {
		case err := <-errs:
			return strings.Contains(err.Error(), `duplicate kid "rsa1"`)
		default:
			return false
		}
	})
	if _, err := v.Verify(bearer(sign(t, jwt.SigningMethodES256, fetched, kid("remote"), c))); err != nil {
		t.Fatalf("old set dropped: %v", err)
	}
}
