package config

import (
	"fmt"
	"strings"
	"time"
)

// Aggregate is a fan-out endpoint: one client request calls every part at
// once and gets one JSON document back (package aggregate serves it).
type Aggregate struct {
	Path            string   `toml:"path"`              // exact path; fasthttp/router params allowed: "/api/v1/dashboard/{id}"
	Methods         []string `toml:"methods"`           // ["GET"]; parts are always GET requests
	Timeout         Duration `toml:"timeout"`           // deadline for the whole aggregate ["2s"]
	StatusOnPartial *int     `toml:"status_on_partial"` // status when some optional part failed: 200..299 (not 204, 205) or 502..504 [200]
	MaxPartBytes    Size     `toml:"max_part_bytes"`    // a larger part body is a failed part ["1MiB"]
	TrustUserHeader bool     `toml:"trust_user_header"` // {user_id} from the client's X-User-ID header when no authenticated user [false]
	Parts           []Part   `toml:"parts"`
	Edge                     // cors, auth, rate_limit, cache_ttl (see edge.go)
}

// Part is one upstream call of an aggregate.
type Part struct {
	Key     string `toml:"key"`     // key under "data"; [A-Za-z_][A-Za-z0-9_-]*, unique in the aggregate
	Service string `toml:"service"` // a service name: same balancer, pools and retry rules as routes
	// Path is the part's request target. Placeholders, each URL-escaped when
	// filled: {name} (a router param of the aggregate's path), {query.name}
	// (the client's query string), {user_id} (the authenticated user).
	Path           string   `toml:"path"`
	Timeout        Duration `toml:"timeout"`         // capped by the aggregate's timeout [aggregate timeout]
	Required       bool     `toml:"required"`        // a failed required part fails the whole answer [false]
	ForwardHeaders []string `toml:"forward_headers"` // request headers copied to the part, beyond X-Request-ID and X-Forwarded-* [none]
}

// Aggregate defaults and limits.
const (
	DefaultAggregateTimeout = 2 * time.Second
	DefaultStatusOnPartial  = 200
	DefaultMaxPartBytes     = 1 << 20
	// MaxAggregateParts bounds the parts of one aggregate (the access log
	// keeps part outcomes in a fixed-size array).
	MaxAggregateParts = 16
)

func (c *Config) setAggregateDefaults() {
	for i := range c.Aggregates {
		a := &c.Aggregates[i]
		if len(a.Methods) == 0 {
			a.Methods = []string{"GET"}
		}
		setDur(&a.Timeout, DefaultAggregateTimeout)
		if a.StatusOnPartial == nil {
			a.StatusOnPartial = ptr(DefaultStatusOnPartial)
		}
		setSize(&a.MaxPartBytes, DefaultMaxPartBytes)
		if a.Timeout.err != "" || a.Timeout.Duration <= 0 {
			continue // reported by validation; nothing to default or cap against
		}
		for j := range a.Parts {
			p := &a.Parts[j]
			setDur(&p.Timeout, a.Timeout.Duration)
			if p.Timeout.err == "" && p.Timeout.Duration > a.Timeout.Duration {
				p.Timeout.Duration = a.Timeout.Duration
			}
		}
	}
}

func (c *Config) validateAggregates(v *validator) {
	seen := map[string]string{} // path with params blanked -> key of its aggregate
	for i := range c.Aggregates {
		a := &c.Aggregates[i]
		key := fmt.Sprintf("aggregates[%d]", i)
		params, shape, err := parseAggregatePath(a.Path)
		switch {
		case err != "":
			v.add(key+".path", "%s", err)
		case seen[shape] != "":
			v.add(key+".path", "%q conflicts with %s.path", a.Path, seen[shape])
		case a.Path == c.Server.HealthPath || a.Path == c.Server.MetricsPath:
			v.add(key+".path", "%q is the gateway's health or metrics path", a.Path)
		default:
			seen[shape] = key
		}
		a.validate(v, key, c, params)
	}
}

func (a *Aggregate) validate(v *validator, key string, c *Config, params map[string]bool) {
	for i, m := range a.Methods {
		if !isToken(m) || strings.ToUpper(m) != m {
			v.add(fmt.Sprintf("%s.methods[%d]", key, i), "bad method %q (want an upper-case token such as GET)", m)
		}
	}
	v.duration(key+".timeout", a.Timeout)
	if s := *a.StatusOnPartial; !(s >= 200 && s <= 299 && s != 204 && s != 205) && !(s >= 502 && s <= 504) {
		v.add(key+".status_on_partial", "must be 200..299 (not 204 or 205) or 502..504, got %d", s)
	}
	v.size(key+".max_part_bytes", a.MaxPartBytes)
	if a.TrustUserHeader && a.CacheTTL.set {
		// The answer depends on X-User-ID, which the gateway takes off the
		// request before the cache looks it up: every user would share one
		// entry.
		v.add(key+".cache_ttl", "an aggregate with trust_user_header answers per user: its answers cannot be cached")
	}
	switch n := len(a.Parts); {
	case n == 0:
		v.add(key+".parts", "an aggregate needs at least one part")
	case n > MaxAggregateParts:
		v.add(key+".parts", "%d parts; at most %d per aggregate", n, MaxAggregateParts)
	}
	keys := map[string]bool{}
	for j := range a.Parts {
		p := &a.Parts[j]
		pk := fmt.Sprintf("%s.parts[%d]", key, j)
		switch {
		case p.Key == "":
			v.add(pk+".key", "required")
		case !isPartKey(p.Key):
			v.add(pk+".key", "bad key %q (want [A-Za-z_][A-Za-z0-9_-]*, at most 64 characters)", p.Key)
		case keys[p.Key]:
			v.add(pk+".key", "duplicate part key %q", p.Key)
		}
		keys[p.Key] = true
		p.validate(v, pk, c, params)
	}
}

func (p *Part) validate(v *validator, key string, c *Config, params map[string]bool) {
	if p.Service == "" {
		v.add(key+".service", "required")
	} else if c.Service(p.Service) == nil {
		v.add(key+".service", "unknown service %q", p.Service)
	}
	if err := checkPartPath(p.Path, params); err != "" {
		v.add(key+".path", "%s", err)
	}
	if p.Timeout.set { // unset only when the aggregate's timeout is bad, reported already
		v.duration(key+".timeout", p.Timeout)
	}
	for i, h := range p.ForwardHeaders {
		hk := fmt.Sprintf("%s.forward_headers[%d]", key, i)
		if !isToken(h) {
			v.add(hk, "bad header name %q", h)
		} else if reservedPartHeader(h) {
			v.add(hk, "%q is set by the gateway (or cannot be merged) and may not be forwarded", h)
		}
	}
}

// reservedPartHeader reports headers a part request gets from the gateway,
// hop-by-hop headers, and Accept-Encoding (a compressed part body could not
// be merged raw).
func reservedPartHeader(h string) bool {
	switch strings.ToLower(h) {
	case "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
		"proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade", "expect",
		"accept-encoding", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
		"x-gateway-service", "x-user-id":
		return true
	}
	return false
}

// isPartKey reports a key that needs no escaping inside a JSON string.
func isPartKey(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isIdentByte(c) && c != '-' {
			return false
		}
	}
	return true
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}

// parseAggregatePath checks a fasthttp/router path ("/a/{id}",
// "/a/{id:[0-9]+}", "/a/{opt?}", "/a/{rest:*}") and returns its param names
// and its shape (params blanked, for conflict checks), or why it is bad.
func parseAggregatePath(p string) (params map[string]bool, shape, problem string) {
	if p == "" {
		return nil, "", "required"
	}
	if p[0] != '/' {
		return nil, "", fmt.Sprintf("%q must start with /", p)
	}
	params = map[string]bool{}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '{':
			end := matchBrace(p, i)
			if end < 0 {
				return nil, "", fmt.Sprintf("%q: unbalanced {", p)
			}
			name := p[i+1 : end]
			if k := strings.IndexAny(name, ":?"); k >= 0 {
				name = name[:k]
			}
			switch {
			case !isIdent(name):
				return nil, "", fmt.Sprintf("%q: bad param name %q", p, name)
			case name == "user_id":
				return nil, "", fmt.Sprintf("%q: param name user_id is reserved for the authenticated user", p)
			case params[name]:
				return nil, "", fmt.Sprintf("%q: duplicate param %q", p, name)
			}
			params[name] = true
			b.WriteString("{}")
			i = end
		case c == '}':
			return nil, "", fmt.Sprintf("%q: unbalanced }", p)
		case c <= ' ' || c >= 0x7f || strings.IndexByte("%?#\\", c) >= 0:
			return nil, "", fmt.Sprintf("%q must be a plain path (no %%, ?, #, \\, spaces or control bytes outside {params})", p)
		default:
			b.WriteByte(c)
		}
	}
	shape = b.String()
	switch {
	case shape != "/" && strings.HasSuffix(shape, "/"):
		return nil, "", fmt.Sprintf("%q must not end with /", p)
	case strings.Contains(shape, "//"):
		return nil, "", fmt.Sprintf("%q contains //", p)
	}
	for _, seg := range strings.Split(shape[1:], "/") {
		if seg == "." || seg == ".." {
			return nil, "", fmt.Sprintf("%q contains a dot segment", p)
		}
	}
	return params, shape, ""
}

// matchBrace returns the index of the '}' closing the '{' at i (regexes in
// params may nest braces), or -1.
func matchBrace(p string, i int) int {
	depth := 0
	for j := i; j < len(p); j++ {
		switch p[j] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return j
			}
		}
	}
	return -1
}

// checkPartPath reports why a part path is bad, or "": it must start with
// '/', and every placeholder must be {user_id}, {query.name} or a param of
// the aggregate's path.
func checkPartPath(p string, params map[string]bool) string {
	switch {
	case p == "":
		return "required"
	case p[0] != '/':
		return fmt.Sprintf("%q must start with /", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '{':
			end := strings.IndexByte(p[i:], '}')
			if end < 0 {
				return fmt.Sprintf("%q: unclosed {", p)
			}
			name := p[i+1 : i+end]
			if problem := checkPlaceholder(name, params); problem != "" {
				return fmt.Sprintf("%q: %s", p, problem)
			}
			i += end
		case c == '}':
			return fmt.Sprintf("%q: unbalanced }", p)
		case c <= ' ' || c >= 0x7f || c == '#' || c == '\\':
			return fmt.Sprintf("%q: no #, \\, spaces or control bytes", p)
		}
	}
	return ""
}

func checkPlaceholder(name string, params map[string]bool) string {
	switch {
	case name == "user_id":
		return ""
	case strings.HasPrefix(name, "query."):
		q := name[len("query."):]
		for i := 0; i < len(q); i++ {
			if !isIdentByte(q[i]) && q[i] != '-' && q[i] != '.' {
				return fmt.Sprintf("bad query param name in {%s}", name)
			}
		}
		if q == "" {
			return fmt.Sprintf("bad query param name in {%s}", name)
		}
		return ""
	case params != nil && !params[name]: // nil: the aggregate's path is bad, reported already
		return fmt.Sprintf("{%s} is not a param of the aggregate's path (want {user_id}, {query.name} or one of the path's {params})", name)
	}
	return ""
}
