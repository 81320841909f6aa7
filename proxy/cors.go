package proxy

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

// corsPolicy is the [cors] table ready for the request path. Immutable.
type corsPolicy struct {
	exact       map[string]bool // allowed origins, exactly
	wildcards   []originPattern // "https://*.example.com"
	any         bool            // "*"
	methods     []byte          // Access-Control-Allow-Methods
	methodSet   map[string]bool //
	headers     []byte          // Access-Control-Allow-Headers
	headerSet   map[string]bool // lower-case allowed request headers
	anyHeader   bool            // allowed_headers has "*": any request header
	expose      []byte          // Access-Control-Expose-Headers
	credentials bool
	maxAge      []byte // seconds
}

type originPattern struct{ scheme, suffix string } // "https://", ".example.com"

var (
	headerOrigin  = canonical("Origin")
	headerVary    = canonical("Vary")
	headerACRM    = canonical("Access-Control-Request-Method")
	headerACRH    = canonical("Access-Control-Request-Headers")
	headerACAO    = canonical("Access-Control-Allow-Origin")
	headerACAC    = canonical("Access-Control-Allow-Credentials")
	headerACAM    = canonical("Access-Control-Allow-Methods")
	headerACAH    = canonical("Access-Control-Allow-Headers")
	headerACEH    = canonical("Access-Control-Expose-Headers")
	headerACMA    = canonical("Access-Control-Max-Age")
	valueTrue     = []byte("true")
	valueStar     = []byte("*")
	varyOrigin    = []byte("Origin")
	varyPreflight = []byte("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	methodOptions = []byte(fasthttp.MethodOptions)
)

func newCORSPolicy(c *config.CORS) *corsPolicy {
	p := &corsPolicy{
		exact:       map[string]bool{},
		methodSet:   map[string]bool{},
		headerSet:   map[string]bool{},
		credentials: c.AllowCredentials,
		methods:     []byte(strings.Join(c.AllowedMethods, ", ")),
		headers:     []byte(strings.Join(c.AllowedHeaders, ", ")),
		expose:      []byte(strings.Join(c.ExposedHeaders, ", ")),
		maxAge:      strconv.AppendInt(nil, int64(c.MaxAge.Seconds()), 10),
	}
	for _, o := range c.AllowedOrigins {
		switch scheme, host, _ := strings.Cut(o, "://"); {
		case o == "*":
			p.any = true
		case strings.HasPrefix(host, "*."):
			p.wildcards = append(p.wildcards, originPattern{scheme: scheme + "://", suffix: strings.ToLower(host[1:])})
		default:
			p.exact[strings.ToLower(o)] = true
		}
	}
	for _, m := range c.AllowedMethods {
		p.methodSet[m] = true
	}
	for _, h := range c.AllowedHeaders {
		p.headerSet[strings.ToLower(h)] = true
		p.anyHeader = p.anyHeader || h == "*"
	}
	return p
}

// allowOrigin reports whether origin may read responses. Matching is
// case-insensitive on the scheme and host; "*.example.com" matches any
// subdomain (a.example.com, a.b.example.com), not example.com itself.
func (p *corsPolicy) allowOrigin(origin []byte) bool {
	if len(origin) == 0 {
		return false
	}
	if p.any {
		return true
	}
	var buf [256]byte
	if len(origin) > len(buf) {
		return false
	}
	lo := buf[:len(origin)]
	for i, c := range origin {
		lo[i] = lower(c)
	}
	if p.exact[b2s(lo)] {
		return true
	}
	for _, w := range p.wildcards {
		if len(lo) > len(w.scheme)+len(w.suffix) && string(lo[:len(w.scheme)]) == w.scheme &&
			bytes.HasSuffix(lo, []byte(w.suffix)) && validHost(lo[len(w.scheme):]) {
			return true
		}
	}
	return false
}

// isPreflight reports a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method.
func isPreflight(req *fasthttp.Request) bool {
	return bytes.Equal(req.Header.Method(), methodOptions) &&
		len(req.Header.PeekCanonical(headerOrigin)) > 0 && len(req.Header.PeekCanonical(headerACRM)) > 0
}

// preflight answers a preflight without calling the upstream: 204, with
// the CORS headers when the origin, method and headers are all allowed, and
// none otherwise (the browser then refuses the actual request).
func (p *corsPolicy) preflight(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	resp := &ctx.Response
	resp.SetStatusCode(fasthttp.StatusNoContent)
	resp.Header.SetCanonical(headerVary, varyPreflight)
	origin := h.PeekCanonical(headerOrigin)
	method, asked := h.PeekCanonical(headerACRM), h.PeekCanonical(headerACRH)
	if !p.allowOrigin(origin) || !p.allowMethod(method) || !p.allowHeaders(asked) {
		return
	}
	p.setOrigin(resp, origin)
	resp.Header.SetCanonical(headerACAM, p.methods)
	switch {
	case p.anyHeader && len(asked) > 0:
		// The asked list, not "*": a literal "*" means any header only
		// without credentials (Fetch), and is refused for Authorization.
		resp.Header.SetCanonical(headerACAH, asked)
	case len(p.headers) > 0:
		resp.Header.SetCanonical(headerACAH, p.headers)
	}
	resp.Header.SetCanonical(headerACMA, p.maxAge)
}

// allowMethod reports whether a preflight may ask for method: an allowed
// one, or one of the CORS-safelisted GET, HEAD and POST, which browsers
// allow whatever Access-Control-Allow-Methods says (Fetch).
func (p *corsPolicy) allowMethod(method []byte) bool {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPost:
		return true
	}
	return p.methodSet[b2s(method)]
}

// allowHeaders reports whether every header named in an
// Access-Control-Request-Headers value is allowed ("*" in allowed_headers:
// any).
func (p *corsPolicy) allowHeaders(list []byte) bool {
	if p.anyHeader {
		return true
	}
	var buf [128]byte
	for len(list) > 0 {
		var tok []byte
		tok, list = nextToken(list)
		if len(tok) == 0 {
			continue
		}
		if len(tok) > len(buf) {
			return false
		}
		lo := buf[:len(tok)]
		for i, c := range tok {
			lo[i] = lower(c)
		}
		if !p.headerSet[b2s(lo)] {
			return false
		}
	}
	return true
}

// decorate adds CORS headers to an actual (non-preflight) response when its
// origin is allowed, and Vary: Origin always, since the answer depends on it.
func (p *corsPolicy) decorate(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	addVary(&resp.Header, varyOrigin)
	origin := ctx.Request.Header.PeekCanonical(headerOrigin)
	if !p.allowOrigin(origin) {
		return
	}
	p.setOrigin(resp, origin)
	if len(p.expose) > 0 {
		resp.Header.SetCanonical(headerACEH, p.expose)
	}
}

func (p *corsPolicy) setOrigin(resp *fasthttp.Response, origin []byte) {
	if p.any && !p.credentials {
		resp.Header.SetCanonical(headerACAO, valueStar)
		return
	}
	resp.Header.SetCanonical(headerACAO, origin)
	if p.credentials {
		resp.Header.SetCanonical(headerACAC, valueTrue)
	}
}

// addVary adds name to the response's Vary header unless it is there.
func addVary(h *fasthttp.ResponseHeader, name []byte) {
	v := h.PeekCanonical(headerVary)
	if len(v) == 0 {
		h.SetCanonical(headerVary, name)
		return
	}
	for rest := v; len(rest) > 0; {
		var tok []byte
		tok, rest = nextToken(rest)
		if bytes.EqualFold(tok, name) || bytes.Equal(tok, valueStar) {
			return
		}
	}
	var buf [256]byte
	h.SetCanonical(headerVary, append(append(append(buf[:0], v...), ", "...), name...))
}
