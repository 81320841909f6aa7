package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults, stated once; the field comments in types.go repeat them.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultReadTimeout     = 15 * time.Second
	DefaultWriteTimeout    = 15 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultMaxRequestBody  = 4 << 20
	DefaultMaxHeaderBytes  = 8 << 10
	DefaultMaxURIBytes     = 4 << 10
	DefaultWriteBuffer     = 4 << 10
	DefaultServiceTimeout  = time.Second
	DefaultRetries         = 1
	DefaultMaxConns        = 1024
	DefaultIdleConnTimeout = 4 * time.Second
)

func (c *Config) setDefaults() {
	s := &c.Server
	setStr(&s.Listen, DefaultListen)
	setDur(&s.ReadTimeout, DefaultReadTimeout)
	setDur(&s.WriteTimeout, DefaultWriteTimeout)
	setDur(&s.IdleTimeout, DefaultIdleTimeout)
	setDur(&s.ShutdownTimeout, DefaultShutdownTimeout)
	setSize(&s.MaxRequestBody, DefaultMaxRequestBody)
	setSize(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setSize(&s.MaxURIBytes, DefaultMaxURIBytes)
	setSize(&s.WriteBuffer, DefaultWriteBuffer)
	setStr(&s.HealthPath, "/health")
	setStr(&s.MetricsPath, "/metrics")

	setStr(&c.Log.Level, "info")
	setStr(&c.Log.Format, "json")
	if c.Log.Access == nil {
		c.Log.Access = ptr(true)
	}
	if c.Log.AccessSample == nil {
		c.Log.AccessSample = ptr(1)
	}

	for i := range c.Services {
		svc := &c.Services[i]
		setDur(&svc.Timeout, DefaultServiceTimeout)
		if svc.Retries == nil {
			svc.Retries = ptr(DefaultRetries)
		}
		if svc.MaxConns == 0 {
			svc.MaxConns = DefaultMaxConns
		}
		setDur(&svc.IdleConnTimeout, DefaultIdleConnTimeout)
		svc.setHealthDefaults()
		for j := range svc.Instances {
			if svc.Instances[j].Weight == nil {
				svc.Instances[j].Weight = ptr(1)
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if svc := c.Service(r.Service); svc != nil && svc.Timeout.err == "" && svc.Timeout.Duration > 0 &&
			*svc.Retries >= 0 && *svc.Retries < MaxInstances {
			setDur(&r.Timeout, svc.Timeout.Duration*time.Duration(*svc.Retries+1))
		}
	}
	c.setAggregateDefaults()
	c.setEdgeDefaults()
}

// Service returns the service named name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func setStr(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setDur(d *Duration, def time.Duration) {
	if !d.set {
		d.Duration, d.set = def, true
	}
}

func setSize(z *Size, def int64) {
	if !z.set {
		z.N, z.set = def, true
	}
}

// validator collects problems, resolving each key to its line.
type validator struct {
	lines map[string]int
	ps    Problems
}

func (v *validator) add(key, format string, args ...any) {
	v.ps = append(v.ps, Problem{Key: key, Line: v.line(key), Msg: fmt.Sprintf(format, args...)})
}

// line finds key's line, or that of the nearest enclosing table in the file.
func (v *validator) line(key string) int {
	for k := key; k != ""; {
		if l, ok := v.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (v *validator) duration(key string, d Duration) {
	switch {
	case d.err != "":
		v.add(key, "%s", d.err)
	case d.Duration <= 0:
		v.add(key, "must be positive, got %s", d.Duration)
	}
}

func (v *validator) size(key string, z Size) {
	switch {
	case z.err != "":
		v.add(key, "%s", z.err)
	case z.N <= 0:
		v.add(key, "must be positive")
	}
}

func (v *validator) addr(key, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		v.add(key, "bad address %q: want host:port", addr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(key, "bad port in %q", addr)
	}
}

func (c *Config) validate(v *validator) {
	c.Server.validate(v)
	c.Log.validate(v)
	ids := map[string]string{}
	names := map[string]bool{}
	for i := range c.Services {
		svc := &c.Services[i]
		key := fmt.Sprintf("services[%d]", i)
		switch {
		case svc.Name == "":
			v.add(key+".name", "required")
		case names[svc.Name]:
			v.add(key+".name", "duplicate service name %q", svc.Name)
		case strings.HasPrefix(svc.Name, "_"):
			// The gateway's own metric series use such service labels
			// (_aggregate, _rejected...): a clash would register one twice.
			v.add(key+".name", "%q: names starting with _ are reserved", svc.Name)
		}
		names[svc.Name] = true
		svc.validate(v, key, ids)
		for j, in := range svc.Instances {
			if reachesListener(c.Server.Listen, in.Addr) {
				v.add(fmt.Sprintf("%s.instances[%d].addr", key, j), "%q reaches the gateway's own server.listen %q: requests would loop", in.Addr, c.Server.Listen)
			}
		}
	}
	prefixes := map[string]bool{}
	folded := map[string]int{} // lower-case prefix -> its first route
	for i := range c.Routes {
		r := &c.Routes[i]
		key := fmt.Sprintf("routes[%d]", i)
		lower := strings.ToLower(r.Prefix)
		j, seen := folded[lower]
		switch {
		case prefixes[r.Prefix]:
			v.add(key+".prefix", "duplicate route prefix %q", r.Prefix)
		case seen && (r.IgnoreCase || c.Routes[j].IgnoreCase):
			v.add(key+".prefix", "%q is routes[%d]'s %q ignoring case, and one of them has ignore_case", r.Prefix, j, c.Routes[j].Prefix)
		}
		prefixes[r.Prefix] = true
		if !seen {
			folded[lower] = i
		}
		r.validate(v, key, c)
	}
	c.checkCaseNesting(v)
	c.validateAggregates(v)
	c.validateEdge(v)
}

func (s *Server) validate(v *validator) {
	v.addr("server.listen", s.Listen)
	v.duration("server.read_timeout", s.ReadTimeout)
	v.duration("server.write_timeout", s.WriteTimeout)
	v.duration("server.idle_timeout", s.IdleTimeout)
	v.duration("server.shutdown_timeout", s.ShutdownTimeout)
	v.size("server.max_request_body", s.MaxRequestBody)
	v.size("server.max_header_bytes", s.MaxHeaderBytes)
	v.size("server.max_uri_bytes", s.MaxURIBytes)
	if s.MaxHeaderBytes.err == "" && s.MaxHeaderBytes.N > 0 && s.MaxHeaderBytes.N < 1024 {
		v.add("server.max_header_bytes", "must be at least 1KiB")
	}
	v.size("server.write_buffer", s.WriteBuffer)
	if s.WriteBuffer.err == "" && s.WriteBuffer.N > 0 && (s.WriteBuffer.N < 1024 || s.WriteBuffer.N > 1<<20) {
		v.add("server.write_buffer", "must be within 1KiB..1MiB")
	}
	s.Trusted = s.Trusted[:0]
	for i, cidr := range s.TrustedProxies {
		p, err := parsePrefix(cidr)
		if err != nil {
			v.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "bad CIDR %q", cidr)
			continue
		}
		s.Trusted = append(s.Trusted, p)
	}
	for _, k := range []struct{ key, path string }{{"server.health_path", s.HealthPath}, {"server.metrics_path", s.MetricsPath}} {
		if err := checkPath(k.path); err != "" {
			v.add(k.key, "%s", err)
		}
	}
	if s.HealthPath == s.MetricsPath {
		v.add("server.metrics_path", "same as health_path %q", s.HealthPath)
	}
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (l *Log) validate(v *validator) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "unknown level %q (want debug|info|warn|error)", l.Level)
	}
	switch l.Format {
	case "json", "console":
	default:
		v.add("log.format", "unknown format %q (want json|console)", l.Format)
	}
	if *l.AccessSample < 1 {
		v.add("log.access_sample", "must be at least 1, got %d", *l.AccessSample)
	}
}

func (s *Service) validate(v *validator, key string, ids map[string]string) {
	v.duration(key+".timeout", s.Timeout)
	v.duration(key+".idle_conn_timeout", s.IdleConnTimeout)
	s.validateHealth(v, key)
	if r := *s.Retries; r < 0 || r >= MaxInstances {
		v.add(key+".retries", "must be within 0..%d (each retry goes to another instance), got %d", MaxInstances-1, r)
	}
	if s.MaxConns < 1 {
		v.add(key+".max_conns", "must be at least 1, got %d", s.MaxConns)
	}
	switch n := len(s.Instances); {
	case n == 0:
		v.add(key+".instances", "a service needs at least one instance")
	case n > MaxInstances:
		v.add(key+".instances", "%d instances; at most %d per service", n, MaxInstances)
	}
	total, badWeight := 0, false
	for j, in := range s.Instances {
		ik := fmt.Sprintf("%s.instances[%d]", key, j)
		switch {
		case in.ID == "":
			v.add(ik+".id", "required")
		case ids[in.ID] != "":
			v.add(ik+".id", "duplicate instance id %q (also %s)", in.ID, ids[in.ID])
		default:
			ids[in.ID] = ik
		}
		v.addr(ik+".addr", in.Addr)
		if _, port, err := net.SplitHostPort(in.Addr); err == nil && port == "0" {
			v.add(ik+".addr", "port 0 in %q: an upstream needs its port", in.Addr)
		}
		switch w := *in.Weight; {
		case w < 0:
			v.add(ik+".weight", "must not be negative, got %d", w)
			badWeight = true
		case w > 1000:
			v.add(ik+".weight", "at most 1000, got %d", w)
			badWeight = true
		default:
			total += w
		}
	}
	if len(s.Instances) > 0 && total == 0 && !badWeight {
		v.add(key+".instances", "every instance has weight 0: the service could never answer")
	}
}

func (r *Route) validate(v *validator, key string, c *Config) {
	if err := checkPath(r.Prefix); err != "" {
		v.add(key+".prefix", "%s", err)
	}
	if r.Service == "" {
		v.add(key+".service", "required")
	} else if c.Service(r.Service) == nil {
		v.add(key+".service", "unknown service %q", r.Service)
	}
	for i, m := range r.Methods {
		if !isToken(m) || strings.ToUpper(m) != m {
			v.add(fmt.Sprintf("%s.methods[%d]", key, i), "bad method %q (want an upper-case token such as GET)", m)
		}
	}
	if r.StripPrefix != "" {
		if err := checkPath(r.StripPrefix); err != "" {
			v.add(key+".strip_prefix", "%s", err)
		} else if _, ok := PathPrefixEnd(r.Prefix, r.StripPrefix, r.IgnoreCase); !ok {
			v.add(key+".strip_prefix", "%q is not a prefix of the route prefix %q", r.StripPrefix, r.Prefix)
		}
	}
	if r.Timeout.set {
		v.duration(key+".timeout", r.Timeout)
	}
}

// checkCaseNesting refuses a case-sensitive route under an ignore_case
// prefix: the other letter cases of its paths go to the ignore_case route,
// whose upstream serves them as this route's paths, past this route's
// auth, limits and methods. Checked for every pair, whatever the services:
// two services can name the same instances.
func (c *Config) checkCaseNesting(v *validator) {
	for i := range c.Routes {
		outer := &c.Routes[i]
		if !outer.IgnoreCase {
			continue
		}
		for j := range c.Routes {
			inner := &c.Routes[j]
			if i == j || inner.IgnoreCase || inner.Prefix == "" || outer.Prefix == "" || strings.EqualFold(inner.Prefix, outer.Prefix) { // equal: the duplicate check reports it
				continue
			}
			if _, ok := PathPrefixEnd(inner.Prefix, outer.Prefix, true); ok {
				v.add(fmt.Sprintf("routes[%d].ignore_case", j), "%q is under routes[%d]'s ignore_case prefix %q, which would take its other letter cases: set ignore_case here too", inner.Prefix, i, outer.Prefix)
			}
		}
	}
}

// HasPathPrefix reports whether prefix matches path on a segment boundary:
// "/a" matches "/a" and "/a/b", never "/ab". "/" matches every path. Path
// parameters (";...") never take part: each of path's segments is compared
// by its name, the part before ';' ("/a;v=1/b" and "/a/b;v=1" are under
// "/a/b"), as servlet containers such as Tomcat strip the parameters of
// every segment before routing.
func HasPathPrefix(path, prefix string) bool {
	_, ok := PathPrefixEnd(path, prefix, false)
	return ok
}

// PathPrefixEnd is HasPathPrefix, ignoring ASCII letter case when fold,
// that also returns where the matched part of path ends: after the last
// matched segment and its parameters.
func PathPrefixEnd(path, prefix string, fold bool) (int, bool) {
	// Bytes agree up to the first difference; only a ';' in path against
	// a '/' in prefix there can still match (prefixes hold no ';').
	k, n := 0, min(len(path), len(prefix))
	for k < n && equalByte(path[k], prefix[k], fold) {
		k++
	}
	if k == len(prefix) {
		return prefixEnd(path, prefix, k)
	}
	if k == len(path) || path[k] != ';' || prefix[k] != '/' {
		return 0, false
	}
	i, j := k, k
	for j < len(prefix) {
		switch {
		case i < len(path) && equalByte(path[i], prefix[j], fold):
			i, j = i+1, j+1
		case i < len(path) && path[i] == ';' && prefix[j] == '/':
			i = skipParams(path, i) // the path segment's name ended where the prefix's did
		default:
			return 0, false
		}
	}
	return prefixEnd(path, prefix, i)
}

// equalByte is a == b, or ASCII-case-insensitive when fold.
func equalByte(a, b byte, fold bool) bool {
	if a == b {
		return true
	}
	if !fold {
		return false
	}
	if 'A' <= a && a <= 'Z' {
		a += 'a' - 'A'
	}
	if 'A' <= b && b <= 'Z' {
		b += 'a' - 'A'
	}
	return a == b
}

// prefixEnd finishes PathPrefixEnd once prefix matched path[:i]: the match
// must end on a segment boundary, and takes that segment's parameters.
func prefixEnd(path, prefix string, i int) (int, bool) {
	switch {
	case prefix == "" || prefix[len(prefix)-1] == '/' || i == len(path) || path[i] == '/':
		return i, true
	case path[i] == ';':
		return skipParams(path, i), true
	}
	return 0, false
}

// skipParams returns the index of the '/' that ends the segment holding
// path[i], or len(path).
func skipParams(path string, i int) int {
	if k := strings.IndexByte(path[i:], '/'); k >= 0 {
		return i + k
	}
	return len(path)
}

// IsUnreserved reports whether c is an unreserved URI character (RFC 3986:
// ALPHA DIGIT - . _ ~), the bytes path normalization decodes from
// percent-encodings and the only ones a route prefix may hold besides '/'.
func IsUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// checkPath reports why p is not a normalized absolute path, or "".
func checkPath(p string) string {
	switch {
	case p == "":
		return "required"
	case p[0] != '/':
		return fmt.Sprintf("%q must start with /", p)
	case p != "/" && strings.HasSuffix(p, "/"):
		return fmt.Sprintf("%q must not end with / (prefixes match on segment boundaries)", p)
	case strings.Contains(p, "//"):
		return fmt.Sprintf("%q contains //", p)
	case strings.ContainsAny(p, "%?#\\ \t"):
		return fmt.Sprintf("%q must be a plain path (no %%, ?, #, \\ or spaces)", p)
	}
	for i := 0; i < len(p); i++ {
		// Normalization keeps any other byte percent-encoded when the client
		// encodes it ("%40"), and upstreams decode it: such a prefix could
		// never match that spelling. ';' would start path parameters.
		if c := p[i]; c != '/' && !IsUnreserved(c) {
			return fmt.Sprintf("%q may only hold letters, digits, '-', '.', '_', '~' and '/'", p)
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("%q contains a dot segment", p)
		}
	}
	return ""
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// reachesListener reports whether dialing addr reaches a listener on
// listen, as far as the text shows: the same address; on the same port, a
// loopback or unspecified address (or localhost) when listen is
// unspecified, localhost or an unspecified address when listen is
// 127.0.0.1 or ::1. The machine's other addresses are not known here.
func reachesListener(listen, addr string) bool {
	lh, lp, err1 := net.SplitHostPort(listen)
	ih, ip, err2 := net.SplitHostPort(addr)
	if err1 != nil || err2 != nil || lp != ip {
		return false
	}
	parse := func(h string) (netip.Addr, bool) {
		a, err := netip.ParseAddr(h)
		return a.Unmap(), err == nil
	}
	unspecified := func(h string) bool {
		a, ok := parse(h)
		return h == "" || ok && a.IsUnspecified()
	}
	l, lok := parse(lh)
	switch {
	case lh == ih:
		return true
	case unspecified(lh):
		a, ok := parse(ih)
		return ih == "localhost" || unspecified(ih) || ok && a.IsLoopback()
	case lok && (l == netip.IPv6Loopback() || l == netip.AddrFrom4([4]byte{127, 0, 0, 1})):
		return ih == "localhost" || unspecified(ih)
	}
	return false
}
