// Package config is fastgate's TOML schema: the types a config file decodes
// into, their defaults, and the validation that lists every problem with its
// key and line.
//
// A *Config returned by Load or Parse is fully defaulted and valid, and is
// never modified afterwards: packages that receive it may keep pointers into
// it and read them from any goroutine.
package config

import (
	"net/netip"
	"time"
)

// Config is one whole config file.
type Config struct {
	Server     Server      `toml:"server"`
	Log        Log         `toml:"log"`
	Services   []Service   `toml:"services"`
	Routes     []Route     `toml:"routes"`
	Aggregates []Aggregate `toml:"aggregates"`
	CORS       *CORS       `toml:"cors"`        // see edge.go
	Auth       Auth        `toml:"auth"`        //
	RateLimits []RateLimit `toml:"rate_limits"` //
	Cache      *Cache      `toml:"cache"`       //
}

// Server configures the listening side of the gateway.
type Server struct {
	Listen          string   `toml:"listen"`           // ["127.0.0.1:8080"]
	ReadTimeout     Duration `toml:"read_timeout"`     // whole request, headers and body ["15s"]
	WriteTimeout    Duration `toml:"write_timeout"`    // whole response ["15s"]
	IdleTimeout     Duration `toml:"idle_timeout"`     // keep-alive between requests ["60s"]
	ShutdownTimeout Duration `toml:"shutdown_timeout"` // drain on SIGTERM/SIGINT ["10s"]
	MaxRequestBody  Size     `toml:"max_request_body"` // larger -> 413 ["4MiB"]
	MaxHeaderBytes  Size     `toml:"max_header_bytes"` // request line + headers; larger -> 431 ["8KiB"]
	MaxURIBytes     Size     `toml:"max_uri_bytes"`    // request target; longer -> 414 ["4KiB"]
	// WriteBuffer is each client connection's write buffer, held for the
	// connection's life: an answer whose header and body fit goes out in
	// one write, a larger one in two ["4KiB"].
	WriteBuffer    Size     `toml:"write_buffer"`
	TrustedProxies []string `toml:"trusted_proxies"` // CIDRs or IPs allowed to supply X-Forwarded-* [none]
	HealthPath     string   `toml:"health_path"`     // ["/health"]
	MetricsPath    string   `toml:"metrics_path"`    // ["/metrics"]

	// Trusted is TrustedProxies parsed; filled by validation.
	Trusted []netip.Prefix `toml:"-"`
}

// Log configures the process log and the access log.
type Log struct {
	Level        string `toml:"level"`         // debug|info|warn|error ["info"]
	Format       string `toml:"format"`        // json|console ["json"]
	Access       *bool  `toml:"access"`        // one line per request [true]
	AccessSample *int   `toml:"access_sample"` // keep 1 of N successful requests; errors always [1]
}

// Service is a named set of weighted upstream instances.
type Service struct {
	Name            string     `toml:"name"`
	Timeout         Duration   `toml:"timeout"`           // per attempt ["1s"]
	Retries         *int       `toml:"retries"`           // extra attempts on another instance [1]
	MaxConns        int        `toml:"max_conns"`         // per instance [1024]
	IdleConnTimeout Duration   `toml:"idle_conn_timeout"` // close pooled upstream connections idle this long ["4s"]
	Instances       []Instance `toml:"instances"`
	Health          Health     `toml:"health"`  // active checks; see health.go
	Breaker         Breaker    `toml:"breaker"` // passive checks
	Limits          Limits     `toml:"limits"`  // overload protection
}

// MaxInstances bounds the instances of one service (the retry logic keeps
// the instances already tried in a 64-bit set).
const MaxInstances = 64

// Instance is one upstream address of a service.
type Instance struct {
	ID     string `toml:"id"`     // unique across the config
	Addr   string `toml:"addr"`   // host:port
	Weight *int   `toml:"weight"` // 0 = drained, never picked [1]
}

// Route sends requests whose normalized path starts with Prefix (on a
// segment boundary) to Service.
type Route struct {
	Prefix      string   `toml:"prefix"`
	Service     string   `toml:"service"`
	Methods     []string `toml:"methods"`      // empty = all
	StripPrefix string   `toml:"strip_prefix"` // removed from the forwarded path [""]
	// IgnoreCase matches prefix and strip_prefix ignoring ASCII letter case,
	// for upstreams that route so (Express's default, ASP.NET Core), as
	// Envoy's case_sensitive = false [false].
	IgnoreCase bool     `toml:"ignore_case"`
	Timeout    Duration `toml:"timeout"` // whole request, retries included [service timeout * (retries+1)]
	Edge                // cors, auth, rate_limit, cache_ttl
}

// Duration is a Go duration string in the file ("2s", "150ms").
type Duration struct {
	time.Duration
	set bool
	err string // parse problem, reported by validation
}

// IsSet reports whether the key was in the file (or given a default).
func (d Duration) IsSet() bool { return d.set }

// Size is a byte count: an integer, or a string with a unit ("4MiB", "8KiB",
// "512", "1MB").
type Size struct {
	N   int64
	set bool
	err string
}
