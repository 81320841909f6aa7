package cache

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/valyala/fasthttp"
)

// Why Store refused a response. Store reports only whether it stored; the
// reasons are for tests and for reading the code.
var (
	errMethod         = errors.New("cache: only GET responses are stored")
	errStatus         = errors.New("cache: status is not cacheable")
	errRequestNoStore = errors.New("cache: request has Cache-Control no-store")
	errNoStore        = errors.New("cache: response has Cache-Control no-store")
	errPrivate        = errors.New("cache: response has Cache-Control private")
	errNoCache        = errors.New("cache: response has Cache-Control no-cache")
	errSetCookie      = errors.New("cache: response sets a cookie")
	errAuthorization  = errors.New("cache: request has Authorization and the response is neither public nor s-maxage")
	errPartial        = errors.New("cache: partial aggregate (X-Aggregate-Complete: false)")
	errVaryStar       = errors.New("cache: response has Vary: *")
	errVaryRewritten  = errors.New("cache: response varies on a request header the caller rewrites")
	errStale          = errors.New("cache: upstream says the response is already stale")
	errNoTTL          = errors.New("cache: no freshness lifetime (no route cache_ttl, max-age, Expires or default_ttl)")
	errStream         = errors.New("cache: response body is a stream")
	errTooLarge       = errors.New("cache: response is larger than a shard of the cache")
)

// cacheableStatus lists the codes RFC 9110 section 15.1 calls heuristically
// cacheable, 206 excepted (the cache does not handle ranges).
func cacheableStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// directives are the Cache-Control directives the cache acts on.
type directives struct {
	noStore, noCache, private, public bool
	maxAge, sMaxAge                   int64 // seconds; -1 when absent
}

// verdict is what judge decided about a storable response.
type verdict struct {
	ttl     time.Duration // freshness left from the moment of storing
	initAge time.Duration // the upstream's Age, added to the Age served
	shared  bool          // public or s-maxage: may answer requests with Authorization
	vary    [][]byte      // Vary names, canonical, sorted, distinct; nil for none
}

// judge decides whether resp, the answer to req, may be stored and for how
// long. routeTTL > 0 is the edge's own lifetime: it overrides the upstream's
// max-age, s-maxage and Expires in either direction, but never what forbids
// storing (no-store, private, no-cache, an explicit max-age=0 or past Expires,
// Set-Cookie, the Authorization rule).
func judge(req *fasthttp.Request, resp *fasthttp.Response, routeTTL, defaultTTL time.Duration, now time.Time) (verdict, error) {
	var v verdict
	switch {
	case !req.Header.IsGet():
		return v, errMethod
	case !cacheableStatus(resp.StatusCode()):
		return v, errStatus
	case resp.IsBodyStream():
		return v, errStream
	}
	var rd directives
	parseCacheControl(&rd, req.Header.Peek(fasthttp.HeaderCacheControl))
	if rd.noStore {
		return v, errRequestNoStore
	}
	h, err := scanResponse(resp)
	if err != nil {
		return v, err
	}
	v.shared = h.cc.public || h.cc.sMaxAge >= 0
	if len(req.Header.Peek(fasthttp.HeaderAuthorization)) > 0 && !v.shared {
		return v, errAuthorization
	}
	if h.age != nil {
		// Saturated at 2^31 as RFC 9111 section 1.2.2 asks, also past what
		// an integer holds; unbounded, n seconds could wrap past int64
		// nanoseconds into a negative age.
		v.initAge = time.Duration(parseDelta(h.age)) * time.Second
	}
	fresh, ok := upstreamLifetime(&h.cc, h.expires, h.date, now)
	switch {
	case ok && fresh <= 0:
		return v, errStale
	case routeTTL > 0:
		v.ttl = routeTTL
	case ok:
		v.ttl = fresh - v.initAge
	default:
		v.ttl = defaultTTL
	}
	if v.ttl <= 0 {
		return v, errNoTTL
	}
	v.vary = h.vary
	return v, nil
}

// respHeaders are the response headers judge reads.
type respHeaders struct {
	cc                 directives
	expires, date, age []byte
	vary               [][]byte // canonical, sorted, distinct
}

// scanResponse reads the headers that decide storing in one pass over
// resp's headers, and refuses what they forbid outright.
func scanResponse(resp *fasthttp.Response) (respHeaders, error) {
	h := respHeaders{cc: directives{maxAge: -1, sMaxAge: -1}}
	var err error
	for k, val := range resp.Header.All() {
		switch {
		case eqFold(k, fasthttp.HeaderCacheControl):
			parseCacheControl(&h.cc, val)
		case eqFold(k, fasthttp.HeaderSetCookie):
			err = errSetCookie
		case eqFold(k, "X-Aggregate-Complete"):
			if eqFold(bytes.TrimSpace(val), "false") {
				err = errPartial
			}
		case eqFold(k, fasthttp.HeaderVary):
			var star bool
			if h.vary, star = appendVaryNames(h.vary, val); star {
				err = errVaryStar
			}
		case eqFold(k, fasthttp.HeaderExpires):
			h.expires = val
		case eqFold(k, fasthttp.HeaderDate):
			h.date = val
		case eqFold(k, fasthttp.HeaderAge):
			h.age = val
		}
	}
	switch {
	case err != nil:
		return h, err
	case h.cc.noStore:
		return h, errNoStore
	case h.cc.private:
		return h, errPrivate
	case h.cc.noCache:
		return h, errNoCache
	}
	slices.SortFunc(h.vary, bytes.Compare)
	h.vary = slices.CompactFunc(h.vary, bytes.Equal)
	return h, nil
}

// upstreamLifetime is the freshness lifetime the upstream gave: s-maxage
// (this is a shared cache), else max-age, else Expires minus Date (or minus
// now without a Date). ok is false when it gave none. An Expires that does
// not parse means already expired (RFC 9111 section 5.3).
func upstreamLifetime(d *directives, expires, date []byte, now time.Time) (time.Duration, bool) {
	switch {
	case d.sMaxAge >= 0:
		return time.Duration(d.sMaxAge) * time.Second, true
	case d.maxAge >= 0:
		return time.Duration(d.maxAge) * time.Second, true
	case expires == nil:
		return 0, false
	}
	exp, err := fasthttp.ParseHTTPDate(expires)
	if err != nil {
		return 0, true
	}
	base := now
	if t, err := fasthttp.ParseHTTPDate(date); err == nil {
		base = t
	}
	return exp.Sub(base), true
}

// maxDeltaSeconds caps max-age and s-maxage, as RFC 9111 section 1.2.2 asks.
const maxDeltaSeconds = 1 << 31

// parseCacheControl adds the directives of one Cache-Control field value to
// d. Names are case-insensitive; values may be quoted; a max-age that does
// not parse is 0 (stale), as RFC 9111 section 4.2.1 asks. The qualified forms
// no-cache="f" and private="f" count as the bare ones: the cache does not
// strip single fields.
func parseCacheControl(d *directives, v []byte) {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		name, val, _ := bytes.Cut(bytes.TrimSpace(part), []byte("="))
		name = bytes.TrimSpace(name)
		switch {
		case eqFold(name, "no-store"):
			d.noStore = true
		case eqFold(name, "no-cache"):
			d.noCache = true
		case eqFold(name, "private"):
			d.private = true
		case eqFold(name, "public"):
			d.public = true
		case eqFold(name, "max-age"):
			d.maxAge = parseDelta(val)
		case eqFold(name, "s-maxage"):
			d.sMaxAge = parseDelta(val)
		}
	}
}

// parseDelta parses delta-seconds, quoted or not; junk is 0.
func parseDelta(v []byte) int64 {
	v = bytes.Trim(bytes.TrimSpace(v), `"`)
	if len(v) == 0 {
		return 0
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		if n = n*10 + int64(c-'0'); n >= maxDeltaSeconds {
			return maxDeltaSeconds
		}
	}
	return n
}

// appendVaryNames adds the header names of one Vary field value to names in
// canonical form (Accept-Encoding); star reports a "*".
func appendVaryNames(names [][]byte, v []byte) (_ [][]byte, star bool) {
	for part := range bytes.SplitSeq(v, []byte(",")) {
		part = bytes.TrimSpace(part)
		switch {
		case len(part) == 0:
		case len(part) == 1 && part[0] == '*':
			return names, true
		default:
			names = append(names, canonicalName(part))
		}
	}
	return names, false
}

// canonicalName returns a copy of a header name in the form fasthttp
// normalizes to: upper case after the start and after '-', lower elsewhere.
func canonicalName(n []byte) []byte {
	out := make([]byte, len(n))
	up := true
	for i, c := range n {
		switch {
		case up && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !up && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		out[i] = c
		up = c == '-'
	}
	return out
}

// eqFold reports whether b equals s, ignoring ASCII case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
