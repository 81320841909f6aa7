// Package auth verifies the bearer JWTs of routes with auth = "jwt", and
// mints demo tokens for `fastgate token`.
//
// Keys come only from the config (jwks_file, public_key_files,
// hmac_secret_env, jwks_url), never from a token: the kid header selects
// among keys already loaded, and jku, x5u, jwk and x5c are ignored.
package auth

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"
)

const (
	// MaxTokenSize is the longest token Verify parses; longer ones fail
	// with ErrTokenTooLarge before any decoding.
	MaxTokenSize = 8 << 10
	// MaxSubjectSize is the longest sub claim accepted.
	MaxSubjectSize = 256
)

// Claims is what a verified token tells the gateway.
type Claims struct {
	// Subject is the sub claim: 1..MaxSubjectSize bytes of printable
	// ASCII, safe to forward as the X-User-ID header.
	Subject string
	// ExpiresAt is the exp claim.
	ExpiresAt time.Time
}

// Options are the Verifier's dependencies that are not configuration.
type Options struct {
	// Now is the clock for exp, nbf and iat [time.Now].
	Now func() time.Time
	// OnRefreshError is called, from the refresh goroutine, with each
	// failed jwks_url refresh; the last good key set stays in use [nil].
	OnRefreshError func(error)
	// FetchTimeout bounds one jwks_url fetch [5s].
	FetchTimeout time.Duration
}

// Verifier checks bearer tokens against the keys of one [auth.jwt] config.
//
// It is safe calling Verifier methods from concurrently running goroutines.
// It is forbidden copying Verifier instances. Create new instances instead.
type Verifier struct {
	parser   *jwt.Parser
	keyfunc  jwt.Keyfunc // v.keyFor, bound once so Verify does not allocate it
	algs     []string
	issuer   string
	keys     atomic.Pointer[keySet] // immutable (but for its seen cache); replaced whole by refresh
	now      func() time.Time
	leeway   time.Duration
	static   []*key // keys from files and env, kept for each refresh; immutable
	jwksURL  string
	fetchTTL time.Duration
	onError  func(error)
	client   *fasthttp.Client // nil without jwks_url
	stop     chan struct{}    // closed by Close; nil without jwks_url
	done     chan struct{}    // closed when the refresh goroutine returns
	once     sync.Once
}

// NewVerifier loads every key cfg names and returns a Verifier. With
// jwks_url it fetches the set once (an error if that fails) and then
// refreshes it every jwks_refresh in a goroutine until Close.
// The HS* secret is read from the environment now, not later.
func NewVerifier(cfg *config.JWT, o Options) (*Verifier, error) {
	if cfg == nil {
		return nil, errors.New("auth: no [auth.jwt] config")
	}
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("auth: no algorithms configured")
	}
	static, err := loadStatic(cfg.JWKSFile, cfg.PublicKeyFiles, cfg.HMACSecretEnv, hasHMAC(cfg.Algorithms))
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		parser:   jwt.NewParser(parserOptions(cfg, o)...),
		algs:     slices.Clone(cfg.Algorithms),
		issuer:   cfg.Issuer,
		static:   static,
		jwksURL:  cfg.JWKSURL,
		fetchTTL: o.FetchTimeout,
		onError:  o.OnRefreshError,
	}
	v.keyfunc = v.keyFor
	v.now, v.leeway = o.Now, cfg.Leeway.Duration
	if v.now == nil {
		v.now = time.Now
	}
	if v.fetchTTL <= 0 {
		v.fetchTTL = 5 * time.Second
	}
	if v.jwksURL == "" {
		ks, err := newKeySet(static, v.algs)
		if err != nil {
			return nil, err
		}
		v.keys.Store(ks)
		return v, nil
	}
	v.client = newFetchClient(v.fetchTTL)
	if err := v.refresh(); err != nil {
		return nil, err
	}
	every := cfg.JWKSRefresh.Duration
	if every <= 0 {
		every = 10 * time.Minute
	}
	v.stop, v.done = make(chan struct{}), make(chan struct{})
	go v.refreshLoop(every)
	return v, nil
}

// CheckKeys loads the keys cfg names from files and the environment, as
// NewVerifier does, without fetching jwks_url: what a config check can
// verify before the gateway starts. nil cfg has nothing to check.
func CheckKeys(cfg *config.JWT) error {
	if cfg == nil {
		return nil
	}
	static, err := loadStatic(cfg.JWKSFile, cfg.PublicKeyFiles, cfg.HMACSecretEnv, hasHMAC(cfg.Algorithms))
	if err != nil || cfg.JWKSURL != "" {
		return err // the fetched set is checked when the gateway starts
	}
	_, err = newKeySet(static, cfg.Algorithms)
	return err
}

func parserOptions(cfg *config.JWT, o Options) []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway.Duration),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(slices.Clone(cfg.Audience)...))
	}
	if o.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(o.Now))
	}
	return opts
}

func hasHMAC(algs []string) bool {
	return slices.ContainsFunc(algs, isHMAC)
}

// Close stops the jwks_url refresh goroutine and waits for it. Verify
// keeps working with the last key set. Close is idempotent; it returns nil.
func (v *Verifier) Close() error {
	v.once.Do(func() {
		if v.stop == nil {
			return
		}
		close(v.stop)
		<-v.done
		v.client.CloseIdleConnections()
	})
	return nil
}

// tokenClaims is the claims set jwt decodes into.
type tokenClaims struct {
	jwt.RegisteredClaims
}

// Verify checks the Authorization header value: "Bearer " (scheme in any
// case) and a token of at most MaxTokenSize bytes, whose alg is
// configured, whose key is selected by kid among the loaded keys and is of
// the alg's family, whose signature verifies, and whose exp (required),
// nbf, iat (with leeway), iss, aud and sub are acceptable.
//
// On failure the error matches exactly one of the package's sentinels
// (see Reason); Claims is then zero. header is not retained.
func (v *Verifier) Verify(header []byte) (Claims, error) {
	tok, err := bearerToken(header)
	if err != nil {
		return Claims{}, err
	}
	ks := v.keys.Load()
	if c, ok := ks.seen.get(tok, v.now()); ok {
		return c, nil
	}
	var c tokenClaims
	t, err := v.parser.ParseWithClaims(string(tok), &c, v.keyfunc)
	if err != nil {
		return Claims{}, v.classify(t, &c, err)
	}
	if !validSubject(c.Subject) {
		return Claims{}, ErrSubject
	}
	claims := Claims{Subject: c.Subject, ExpiresAt: c.ExpiresAt.Time}
	if v.keys.Load() == ks { // not verified by keys newer than ks
		ks.seen.add(tok, claims, v.leeway)
	}
	return claims, nil
}

// bearerToken returns the token of a "Bearer <token>" header value.
// Only base64url characters and dots pass: jwt's decoder would skip
// newlines, which would make two strings one token.
func bearerToken(h []byte) ([]byte, error) {
	h = bytes.TrimRight(h, " \t")
	const scheme = "bearer"
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) || h[len(scheme)] != ' ' {
		return nil, ErrMissing
	}
	tok := bytes.TrimLeft(h[len(scheme):], " ")
	switch {
	case len(tok) == 0:
		return nil, ErrMissing
	case len(tok) > MaxTokenSize:
		return nil, ErrTokenTooLarge
	}
	for _, b := range tok {
		if !isTokenByte(b) {
			return nil, ErrMalformed
		}
	}
	return tok, nil
}

func isTokenByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}

func validSubject(s string) bool {
	if s == "" || len(s) > MaxSubjectSize || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// keyFor is the jwt.Keyfunc: it runs after the alg passed
// WithValidMethods and picks the key from the current set, never from the
// token's jku, x5u, jwk or x5c.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, ErrMalformed // no extension is understood here (RFC 7515 4.1.11)
	}
	alg := t.Method.Alg()
	ks := v.keys.Load()
	kid, err := headerKID(t.Header)
	if err != nil {
		return nil, err
	}
	if kid == "" {
		k := ks.single[alg]
		if k == nil {
			return nil, ErrUnknownKID
		}
		return k.pub, nil
	}
	k := ks.byKID[kid]
	if k == nil {
		// A key without a kid matches any kid, as in Envoy's jwt_authn and
		// RFC 7517's "kid" being optional: an HS256 token from an issuer
		// that names its secret is verified with hmac_secret_env. Only
		// when one kid-less key fits the alg; keys with kids don't count.
		k = ks.kidless[alg]
	}
	switch {
	case k == nil:
		return nil, ErrUnknownKID
	case !k.fits(alg):
		return nil, ErrAlgorithm // e.g. HS256 with an RSA key's kid
	}
	return k.pub, nil
}

func headerKID(h map[string]any) (string, error) {
	raw, ok := h["kid"]
	if !ok {
		return "", nil
	}
	kid, ok := raw.(string)
	if !ok {
		return "", ErrMalformed
	}
	return kid, nil
}

func (v *Verifier) allowed(alg string) bool {
	return slices.Contains(v.algs, alg)
}
