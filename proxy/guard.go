package proxy

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// checkRequest rejects what fasthttp's parser lets through but a gateway
// must not forward: it returns the status to answer (0 when the request is
// acceptable) and the message. It reads the raw header block once, so that
// duplicates fasthttp would merge or overwrite are seen:
//   - a request target over max_uri_bytes -> 414;
//   - header fields over max_header_bytes -> 431 (the server's read buffer
//     holds both limits, so that a long target is told apart from large
//     headers; a request over both is 431 from handleParseError);
//   - a method that is not an upper-case token -> 400; CONNECT, TRACE -> 405;
//   - a protocol other than HTTP/1.0 or HTTP/1.1 -> 505;
//   - a header line ending in a bare LF, an obs-fold continuation line, a
//     header name that is not a token (fasthttp accepts inner spaces), a
//     value with a control byte -> 400;
//   - no Host, more than one, or one that is not host[:port] (no userinfo,
//     no path), or an absolute-form target naming another host -> 400;
//   - more than one Content-Length, or one that is not digits -> 400;
//   - Transfer-Encoding with Content-Length, repeated, or not ending in
//     chunked -> 400; a coding other than chunked -> 501.
//
// It also notes in x.hop whether a hop-by-hop header is present, and in
// x.dupOwned which owned headers (ownedHeader) are repeated.
func (g *Gateway) checkRequest(ctx *fasthttp.RequestCtx, x *exchange) (int, string) {
	if len(ctx.Request.Header.RequestURI()) > g.maxURI {
		return fasthttp.StatusRequestURITooLong, msgURITooLong
	}
	h := &ctx.Request.Header
	if status, msg := checkMethod(h.Method()); status != 0 {
		return status, msg
	}
	if p := h.Protocol(); !bytes.Equal(p, http11) && !bytes.Equal(p, http10) {
		return fasthttp.StatusHTTPVersionNotSupported, msgVersion
	}
	raw := h.RawHeaders()
	if len(raw) > g.maxHdr {
		return fasthttp.StatusRequestHeaderFieldsTooLarge, msgHeaderLarge
	}
	var hosts, lengths, encodings int
	var te []byte
	var owned uint8 // owned headers seen
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 1 || raw[i-1] != '\r' { // bare LF, or no line end at all
			return fasthttp.StatusBadRequest, msgBadRequest
		}
		line := raw[:i-1]
		raw = raw[i+1:]
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // obs-fold
			return fasthttp.StatusBadRequest, msgBadRequest
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isTokenBytes(line[:colon]) {
			return fasthttp.StatusBadRequest, msgBadRequest
		}
		name, value := line[:colon], line[colon+1:]
		if isHopByHop(name) {
			x.hop = true
		}
		if o := ownedHeader(name); o != 0 {
			x.dupOwned |= owned & o
			owned |= o
		}
		if !validFieldValue(value) {
			return fasthttp.StatusBadRequest, msgBadRequest
		}
		switch {
		case equalFoldBytes(name, "host"):
			hosts++
			if !validHost(bytes.TrimSpace(value)) {
				return fasthttp.StatusBadRequest, msgBadRequest
			}
		case equalFoldBytes(name, "content-length"):
			lengths++
			if !isDigits(bytes.TrimSpace(value)) {
				return fasthttp.StatusBadRequest, msgBadRequest
			}
		case equalFoldBytes(name, "transfer-encoding"):
			encodings++
			te = bytes.TrimSpace(value)
		}
	}
	switch {
	case hosts != 1, lengths > 1, encodings > 1, encodings == 1 && lengths > 0:
		return fasthttp.StatusBadRequest, msgBadRequest
	case encodings == 1:
		return checkTransferEncoding(te)
	}
	if target := h.RequestURI(); len(target) > 0 && target[0] != '/' {
		if rest, ok := cutScheme(target); ok && !sameHost(rest, h.Host()) {
			return fasthttp.StatusBadRequest, msgBadRequest
		}
	}
	return 0, ""
}

var (
	http11 = []byte("HTTP/1.1")
	http10 = []byte("HTTP/1.0")
)

// checkMethod accepts upper-case token methods other than CONNECT and
// TRACE, which a gateway does not proxy.
func checkMethod(m []byte) (int, string) {
	if len(m) == 0 {
		return fasthttp.StatusBadRequest, msgBadRequest
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			if c != '-' && c != '_' {
				return fasthttp.StatusBadRequest, msgBadRequest
			}
		}
	}
	if string(m) == fasthttp.MethodConnect || string(m) == fasthttp.MethodTrace {
		return fasthttp.StatusMethodNotAllowed, msgMethod
	}
	return 0, ""
}

// sameHost reports whether the authority at the start of rest (an
// absolute-form target without its scheme) is host.
func sameHost(rest, host []byte) bool {
	end := 0
	for end < len(rest) && rest[end] != '/' && rest[end] != '?' && rest[end] != '#' {
		end++
	}
	return bytes.EqualFold(rest[:end], host)
}

// validHost accepts reg-name, IPv4 or [IPv6], with an optional port: no
// userinfo ("good@evil"), path, or other delimiters.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		for _, c := range h[1:end] {
			if !(c == ':' || c == '.' || unhex(c) >= 0) {
				return false
			}
		}
		h = h[end+1:]
		return len(h) == 0 || h[0] == ':' && isDigits(h[1:])
	}
	if i := bytes.IndexByte(h, ':'); i >= 0 {
		if !isDigits(h[i+1:]) {
			return false
		}
		h = h[:i]
	}
	for _, c := range h {
		if !hostChars[c] {
			return false
		}
	}
	return len(h) > 0
}

// hostChars marks the bytes of a host name validHost accepts: letters,
// digits, '-', '.' and '_'.
var hostChars = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_'
	}
	return t
}()

// checkTransferEncoding accepts exactly "chunked" (any case): another
// coding, identity included, is 501; chunked repeated or not last is 400.
func checkTransferEncoding(te []byte) (int, string) {
	if equalFoldBytes(te, "chunked") {
		return 0, ""
	}
	for rest := te; len(rest) > 0; {
		var tok []byte
		tok, rest = nextToken(rest)
		if !equalFoldBytes(tok, "chunked") {
			return fasthttp.StatusNotImplemented, msgUnsupported
		}
	}
	return fasthttp.StatusBadRequest, msgBadRequest
}

// unsupportedTE extracts the Transfer-Encoding value fasthttp refused: its
// parser rejects any value but chunked or identity before the handler runs,
// with `unsupported transfer-encoding: "VALUE"` in an error that wraps no
// sentinel (fasthttp v1.78, header.go), so the text is the only way to tell
// an unknown coding (501) from other framing errors (400).
func unsupportedTE(msg string) (string, bool) {
	const marker = `unsupported transfer-encoding: `
	i := strings.Index(msg, marker)
	if i < 0 {
		return "", false
	}
	v, err := strconv.QuotedPrefix(msg[i+len(marker):])
	if err != nil {
		return "", false
	}
	te, err := strconv.Unquote(v)
	return te, err == nil
}

func equalFoldBytes(b []byte, lowerASCII string) bool {
	return len(b) == len(lowerASCII) && equalFold(b, lowerASCII)
}

func isDigits(b []byte) bool {
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// tokenChars marks the bytes allowed in an HTTP token (RFC 9110 5.6.2).
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isTokenBytes(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue rejects control bytes other than horizontal tab.
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if badValueChars[c] {
			return false
		}
	}
	return true
}

// badValueChars marks the bytes validFieldValue rejects.
var badValueChars = func() (t [256]bool) {
	for c := range t {
		t[c] = c < ' ' && c != '\t' || c == 0x7f
	}
	return t
}()

// handleParseError answers requests fasthttp could not parse, as JSON, and
// closes the connection: 413 for a body over max_request_body, 431 for a
// header block over max_header_bytes, 408 for a client too slow to send its
// request, 400 for the rest.
func (g *Gateway) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	// fasthttp calls this before it sets the request time: ctx.Time() is
	// zero, or the previous request's on a kept-alive connection.
	start := time.Now()
	status, msg := fasthttp.StatusBadRequest, msgBadRequest
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, msgBodyLarge
	case errors.As(err, &small):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, msgHeaderLarge
	case isTimeout(err):
		status, msg = fasthttp.StatusRequestTimeout, msgTimeoutRead
	default:
		if te, ok := unsupportedTE(err.Error()); ok {
			status, msg = checkTransferEncoding([]byte(te))
		}
	}
	x := acquireExchange()
	x.id = g.ids.appendID(x.id)
	// fasthttp resets the request on a failed header and on most failed
	// bodies (Request.ReadBody: a chunked body over the limit, a bad chunk,
	// a body cut short or too slow); its Method then defaults to GET and
	// its RequestURI to "/". A Content-Length over max_request_body or a Host
	// it cannot parse is refused with the header still there, and then its
	// raw block is not empty (it holds that line). The path is then the one
	// the handler would have logged, or none when the handler would have
	// refused the target.
	if len(ctx.Request.Header.RawHeaders()) > 0 {
		_, _ = x.setPath(ctx.Request.Header.RequestURI()) // on error x.path stays empty
	} else {
		x.unparsed = true
	}
	g.reject(ctx, x, status, msg)
	g.observe(ctx, x, g.rejected, start)
	releaseExchange(x)
}
