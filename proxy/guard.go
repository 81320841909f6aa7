package proxy

import (
	"bytes"
	"errors"

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
//   - a header name that is not a token, a value with a control byte -> 400;
//   - no Host, or more than one -> 400;
//   - more than one Content-Length, or one that is not digits -> 400;
//   - Transfer-Encoding with Content-Length, repeated, or not ending in
//     chunked -> 400; a coding other than chunked -> 501.
func (g *Gateway) checkRequest(ctx *fasthttp.RequestCtx) (int, string) {
	if len(ctx.Request.Header.RequestURI()) > g.maxURI {
		return fasthttp.StatusRequestURITooLong, msgURITooLong
	}
	raw := ctx.Request.Header.RawHeaders()
	if len(raw) > g.maxHdr {
		return fasthttp.StatusRequestHeaderFieldsTooLarge, msgHeaderLarge
	}
	var hosts, lengths, encodings int
	var te []byte
	for len(raw) > 0 {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			line, raw = raw, nil
		}
		line = bytes.TrimSuffix(line, crSuffix)
		if len(line) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isTokenBytes(line[:colon]) {
			return fasthttp.StatusBadRequest, msgBadRequest
		}
		name, value := line[:colon], line[colon+1:]
		if !validFieldValue(value) {
			return fasthttp.StatusBadRequest, msgBadRequest
		}
		switch {
		case equalFoldBytes(name, "host"):
			hosts++
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
	return 0, ""
}

var crSuffix = []byte{'\r'}

// checkTransferEncoding accepts exactly "chunked" (any case).
func checkTransferEncoding(te []byte) (int, string) {
	last := []byte(nil)
	for rest := te; len(rest) > 0; {
		var tok []byte
		tok, rest = nextToken(rest)
		if !equalFoldBytes(tok, "chunked") && !equalFoldBytes(tok, "identity") {
			return fasthttp.StatusNotImplemented, msgUnsupported
		}
		last = tok
	}
	if !equalFoldBytes(last, "chunked") || !equalFoldBytes(te, "chunked") {
		return fasthttp.StatusBadRequest, msgBadRequest
	}
	return 0, ""
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
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// handleParseError answers requests fasthttp could not parse, as JSON, and
// closes the connection: 413 for a body over max_request_body, 431 for a
// header block over max_header_bytes, 408 for a client too slow to send its
// request, 400 for the rest.
func (g *Gateway) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fasthttp.StatusBadRequest, msgBadRequest
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, msg = fasthttp.StatusRequestEntityTooLarge, msgBodyLarge
	case errors.As(err, &small):
		status, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, msgHeaderLarge
	case isTimeout(err):
		status, msg = fasthttp.StatusRequestTimeout, msgTimeoutRead
	}
	x := acquireExchange()
	x.id = g.ids.appendID(x.id)
	g.reject(ctx, x, status, msg)
	g.observe(ctx, x, g.rejected, ctx.Time())
	releaseExchange(x)
}
