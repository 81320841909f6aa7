package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CORS is the [cors] table: one policy, switched on per route or aggregate
// with cors = true.
type CORS struct {
	AllowedOrigins   []string `toml:"allowed_origins"`   // exact origins, or "https://*.example.com" for any subdomain, or "*" [none]
	AllowedMethods   []string `toml:"allowed_methods"`   // [GET, HEAD, POST]
	AllowedHeaders   []string `toml:"allowed_headers"`   // request headers a preflight may ask for [none]
	ExposedHeaders   []string `toml:"exposed_headers"`   // response headers scripts may read [X-Request-ID]
	AllowCredentials bool     `toml:"allow_credentials"` // [false]
	MaxAge           Duration `toml:"max_age"`           // how long browsers cache a preflight ["10m"]
}

// Auth is the [auth] table.
type Auth struct {
	JWT *JWT `toml:"jwt"`
}

// JWT configures bearer-token authentication (auth = "jwt" on a route).
type JWT struct {
	Algorithms     []string `toml:"algorithms"`       // pinned: a token with any other alg is refused (required)
	Issuer         string   `toml:"issuer"`           // required iss, when set [""]
	Audience       []string `toml:"audience"`         // aud must contain one of these, when set [none]
	JWKSFile       string   `toml:"jwks_file"`        // keys as a JWK Set file [""]
	PublicKeyFiles []string `toml:"public_key_files"` // PEM public keys (kid = file name without extension) [none]
	JWKSURL        string   `toml:"jwks_url"`         // JWK Set fetched at start and every jwks_refresh [""]
	JWKSRefresh    Duration `toml:"jwks_refresh"`     // ["10m"]
	HMACSecretEnv  string   `toml:"hmac_secret_env"`  // for HS*: the secret comes from this environment variable [""]
	Leeway         Duration `toml:"leeway"`           // clock skew allowed on exp/nbf/iat ["30s"]
	// SigningKeyFile is a PEM private key used only by `fastgate token` to
	// mint demo tokens; the gateway never signs anything [""].
	SigningKeyFile string `toml:"signing_key_file"`
}

// RateLimit is one [[rate_limits]] entry, used by routes that name it.
type RateLimit struct {
	Name         string   `toml:"name"`
	Rate         int      `toml:"rate"`           // requests per Per (required)
	Per          Duration `toml:"per"`            // ["1s"]
	Burst        int      `toml:"burst"`          // requests allowed at once beyond the steady rate [rate]
	Key          string   `toml:"key"`            // ip | user | header:NAME ["ip"]
	Backend      string   `toml:"backend"`        // local | redis ["local"]
	RedisAddr    string   `toml:"redis_addr"`     // for backend = "redis" ["127.0.0.1:6379"]
	OnStoreError string   `toml:"on_store_error"` // allow | deny, when Redis is unreachable ["allow"]
	MaxKeys      int      `toml:"max_keys"`       // local store: keys kept at most; idle ones go first [100000]
}

// Cache is the [cache] table: the response cache shared by the routes that
// enable it.
type Cache struct {
	MaxBytes   Size     `toml:"max_bytes"`   // ["64MiB"]
	DefaultTTL Duration `toml:"default_ttl"` // ["0s": only what a route's cache_ttl or the upstream's Cache-Control allows]
}

// Edge switches the edge middleware on for one route or aggregate.
type Edge struct {
	CORS      bool     `toml:"cors"`       // answer preflights and add CORS headers per [cors] [false]
	Auth      string   `toml:"auth"`       // "jwt" | "none" ["none"]
	RateLimit string   `toml:"rate_limit"` // a [[rate_limits]] name ["" = none]
	CacheTTL  Duration `toml:"cache_ttl"`  // present: cache GET/HEAD answers this long ("0s": as the upstream's Cache-Control allows) unless the upstream forbids it; absent: no cache
}

func (c *Config) setEdgeDefaults() {
	if c.CORS != nil {
		if c.CORS.AllowedMethods == nil {
			c.CORS.AllowedMethods = []string{"GET", "HEAD", "POST"}
		}
		if c.CORS.ExposedHeaders == nil {
			c.CORS.ExposedHeaders = []string{"X-Request-ID"}
		}
		setDur(&c.CORS.MaxAge, 10*time.Minute)
	}
	if j := c.Auth.JWT; j != nil {
		setDur(&j.JWKSRefresh, 10*time.Minute)
		setDur(&j.Leeway, 30*time.Second)
	}
	for i := range c.RateLimits {
		l := &c.RateLimits[i]
		setDur(&l.Per, time.Second)
		if l.Burst == 0 {
			l.Burst = l.Rate
		}
		setStr(&l.Key, "ip")
		setStr(&l.Backend, "local")
		setStr(&l.RedisAddr, "127.0.0.1:6379")
		setStr(&l.OnStoreError, "allow")
		if l.MaxKeys == 0 {
			l.MaxKeys = 100000
		}
	}
	if c.Cache != nil {
		setSize(&c.Cache.MaxBytes, 64<<20)
		setDur(&c.Cache.DefaultTTL, 0)
	}
	for i := range c.Routes {
		setStr(&c.Routes[i].Auth, "none")
	}
	for i := range c.Aggregates {
		setStr(&c.Aggregates[i].Auth, "none")
	}
}

// resolveFiles makes the relative file names of the config relative to dir.
func (c *Config) resolveFiles(dir string) {
	j := c.Auth.JWT
	if j == nil || dir == "" {
		return
	}
	abs := func(f string) string {
		if f == "" || filepath.IsAbs(f) {
			return f
		}
		return filepath.Join(dir, f)
	}
	j.JWKSFile, j.SigningKeyFile = abs(j.JWKSFile), abs(j.SigningKeyFile)
	for i, f := range j.PublicKeyFiles {
		j.PublicKeyFiles[i] = abs(f)
	}
}

// RateLimit returns the rate limit named name, or nil.
func (c *Config) RateLimit(name string) *RateLimit {
	for i := range c.RateLimits {
		if c.RateLimits[i].Name == name {
			return &c.RateLimits[i]
		}
	}
	return nil
}

var jwtAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true, "HS256": true, "HS384": true, "HS512": true,
}

func (c *Config) validateEdge(v *validator) {
	if cors := c.CORS; cors != nil {
		for i, o := range cors.AllowedOrigins {
			if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
				v.add(fmt.Sprintf("cors.allowed_origins[%d]", i), "%q: want \"*\" or an origin such as \"https://app.example.com\" or \"https://*.example.com\"", o)
			}
			if o == "*" && cors.AllowCredentials {
				v.add(fmt.Sprintf("cors.allowed_origins[%d]", i), `"*" cannot be combined with allow_credentials (browsers refuse it)`)
			}
		}
		for i, m := range cors.AllowedMethods {
			if !isToken(m) || strings.ToUpper(m) != m {
				v.add(fmt.Sprintf("cors.allowed_methods[%d]", i), "bad method %q", m)
			}
		}
		v.duration("cors.max_age", cors.MaxAge)
	}
	if j := c.Auth.JWT; j != nil {
		validateJWT(v, j)
	}
	names := map[string]bool{}
	for i := range c.RateLimits {
		l, key := &c.RateLimits[i], fmt.Sprintf("rate_limits[%d]", i)
		switch {
		case l.Name == "":
			v.add(key+".name", "required")
		case names[l.Name]:
			v.add(key+".name", "duplicate rate limit %q", l.Name)
		case strings.Contains(l.Name, ":"):
			// The redis backend's keys are fastgate:rl:NAME:KEY, KEY
			// starting ip:, u: or h:, so limits "a" and "a:h" could share
			// buckets.
			v.add(key+".name", "%q: ':' is reserved (it separates the parts of the limit's keys)", l.Name)
		}
		names[l.Name] = true
		positive(v, key+".rate", l.Rate)
		v.duration(key+".per", l.Per)
		positive(v, key+".burst", l.Burst)
		if l.Key != "ip" && l.Key != "user" && !(strings.HasPrefix(l.Key, "header:") && isToken(strings.TrimPrefix(l.Key, "header:"))) {
			v.add(key+".key", "%q: want ip, user or header:NAME", l.Key)
		}
		switch l.Backend {
		case "local":
		case "redis":
			v.addr(key+".redis_addr", l.RedisAddr)
		default:
			v.add(key+".backend", "%q: want local or redis", l.Backend)
		}
		if l.OnStoreError != "allow" && l.OnStoreError != "deny" {
			v.add(key+".on_store_error", "%q: want allow or deny", l.OnStoreError)
		}
		positive(v, key+".max_keys", l.MaxKeys)
	}
	if ca := c.Cache; ca != nil {
		v.size("cache.max_bytes", ca.MaxBytes)
		if ca.DefaultTTL.err != "" || ca.DefaultTTL.Duration < 0 {
			v.duration("cache.default_ttl", ca.DefaultTTL)
		}
	}
	for i := range c.Routes {
		c.validateEdgeUse(v, fmt.Sprintf("routes[%d]", i), &c.Routes[i].Edge)
	}
	for i := range c.Aggregates {
		c.validateEdgeUse(v, fmt.Sprintf("aggregates[%d]", i), &c.Aggregates[i].Edge)
	}
}

func validateJWT(v *validator, j *JWT) {
	if len(j.Algorithms) == 0 {
		v.add("auth.jwt.algorithms", "required: the accepted algorithms are pinned")
	}
	hmac := false
	for i, a := range j.Algorithms {
		switch {
		case !jwtAlgorithms[a]:
			v.add(fmt.Sprintf("auth.jwt.algorithms[%d]", i), "unknown or unsafe algorithm %q", a)
		case strings.HasPrefix(a, "HS"):
			hmac = true
		}
	}
	if hmac {
		if j.HMACSecretEnv == "" {
			v.add("auth.jwt.hmac_secret_env", "required for HS* algorithms: the secret comes from the environment, never the file")
		} else if os.Getenv(j.HMACSecretEnv) == "" {
			v.add("auth.jwt.hmac_secret_env", "environment variable %s is empty or unset", j.HMACSecretEnv)
		}
	}
	if len(j.Algorithms) > 0 && !hmac && j.JWKSFile == "" && len(j.PublicKeyFiles) == 0 && j.JWKSURL == "" {
		v.add("auth.jwt", "no keys: set jwks_file, public_key_files or jwks_url")
	}
	for _, f := range append([]string{j.JWKSFile}, j.PublicKeyFiles...) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			v.add("auth.jwt", "key file: %v", err)
		}
	}
	if j.JWKSURL != "" && !strings.HasPrefix(j.JWKSURL, "https://") && !strings.HasPrefix(j.JWKSURL, "http://") {
		v.add("auth.jwt.jwks_url", "%q: want an http(s) URL", j.JWKSURL)
	}
	v.duration("auth.jwt.jwks_refresh", j.JWKSRefresh)
	if j.Leeway.err != "" || j.Leeway.Duration < 0 {
		v.duration("auth.jwt.leeway", j.Leeway)
	}
}

// validateEdgeUse checks one route's or aggregate's middleware switches
// against the tables they refer to.
func (c *Config) validateEdgeUse(v *validator, key string, e *Edge) {
	if e.CORS && c.CORS == nil {
		v.add(key+".cors", "cors = true needs a [cors] table")
	}
	switch e.Auth {
	case "", "none":
	case "jwt":
		if c.Auth.JWT == nil {
			v.add(key+".auth", `auth = "jwt" needs an [auth.jwt] table`)
		}
	default:
		v.add(key+".auth", "%q: want jwt or none", e.Auth)
	}
	if e.RateLimit != "" {
		if l := c.RateLimit(e.RateLimit); l == nil {
			v.add(key+".rate_limit", "unknown rate limit %q", e.RateLimit)
		} else if l.Key == "user" && e.Auth != "jwt" {
			v.add(key+".rate_limit", "rate limit %q keys on the user: the route needs auth = \"jwt\"", e.RateLimit)
		}
	}
	if e.CacheTTL.set {
		if e.CacheTTL.err != "" || e.CacheTTL.Duration < 0 {
			v.duration(key+".cache_ttl", e.CacheTTL)
		}
		if e.CacheTTL.Duration > 0 && c.Cache == nil {
			v.add(key+".cache_ttl", "cache_ttl needs a [cache] table")
		}
	}
}
