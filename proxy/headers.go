package proxy

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

var (
	headerConnection  = canonical("Connection")
	headerRequestID   = canonical("X-Request-ID")
	headerXFF         = canonical("X-Forwarded-For")
	headerXFProto     = canonical("X-Forwarded-Proto")
	headerXFHost      = canonical("X-Forwarded-Host")
	headerGatewaySvc  = canonical("X-Gateway-Service")
	headerRetryAfter  = canonical("Retry-After")
	headerAllow       = canonical("Allow")
	protoHTTP         = []byte("http")
	protoHTTPS        = []byte("https")
	hopByHopHeaders   = [][]byte{[]byte("Keep-Alive"), []byte("Proxy-Connection"), []byte("Proxy-Authenticate"), []byte("Proxy-Authorization"), []byte("TE"), []byte("Trailer"), []byte("Upgrade")}
	headerTrailer     = canonical("Trailer")
	headerExpect      = canonical("Expect") // fasthttp answers 100-continue itself and reads the body before the handler
	maxRequestIDBytes = 128
)

// stripHopByHop removes the headers that only concern one connection: every
// header named by any Connection line, Connection itself and the fixed list
// of RFC 9110 section 7.6.1. fasthttp keeps "close" out of the Connection
// value (it is the ConnectionClose flag, handled by the caller).
//
// peekAll is the header's PeekAll: its values stay readable while del
// removes fields, which only moves them within the header.
func stripHopByHop(peekAll func(string) [][]byte, del func([]byte)) {
	if conns := peekAll(b2s(headerConnection)); len(conns) > 0 {
		for _, conn := range conns {
			for len(conn) > 0 {
				var tok []byte
				tok, conn = nextToken(conn)
				if len(tok) > 0 {
					del(tok)
				}
			}
		}
		del(headerConnection)
	}
	for _, h := range hopByHopHeaders {
		del(h)
	}
}

// stripRequestHopByHop removes the request's hop-by-hop headers and Expect
// (fasthttp has answered 100-continue), before any middleware reads the
// request or the gateway sets its own headers: a header the client named in
// Connection reaches neither the middleware nor the upstream, and cannot
// remove one the gateway sets (X-User-ID, X-Request-ID). The client's
// Connection: close stays with the server.
func stripRequestHopByHop(h *fasthttp.RequestHeader, x *exchange) {
	closeConn := h.ConnectionClose()
	stripHopByHop(h.PeekAll, h.DelBytes)
	h.DelBytes(headerExpect)
	if closeConn {
		h.SetConnectionClose()
	}
	if x.idKept && len(h.PeekCanonical(headerRequestID)) == 0 {
		x.idKept = false // named in Connection: the id is set again upstream
	}
}

// trailerFields is what dropTrailers needs of a request or response header.
type trailerFields interface {
	PeekTrailerKeys() [][]byte
	TrailerHeader() []byte
	PeekAll(key string) [][]byte
	DelBytes(key []byte)
	AddBytesKV(key, value []byte)
}

// dropTrailers discards the trailer section's fields, as RFC 9110 section
// 6.5.1 allows and nginx does, on requests and on upstream answers; a
// header-section field of the same name (Server-Timing may come as both)
// is kept. Kept, trailers would be forwarded in a chunked body, and a
// trailer named like a header the gateway sets would take that header's
// value out of the header section; merged into the header section (what
// fasthttp does when Trailer is deleted, as the hop-by-hop strip does)
// they would be header fields the sender never sent as such, seen by the
// cache among others. scratch is working space; its contents are lost.
func dropTrailers(h trailerFields, scratch []byte) []byte {
	// scratch holds length-prefixed chunks: the announced names, then per
	// name the count of its header-section values and the values.
	scratch = scratch[:0]
	for _, k := range h.PeekTrailerKeys() {
		scratch = binary.AppendUvarint(scratch, uint64(len(k)))
		scratch = append(scratch, k...)
	}
	namesEnd := len(scratch)
	arrived := h.TrailerHeader() // the trailer section as received
	for pos := 0; pos < namesEnd; {
		var k []byte
		k, pos = chunkAt(scratch, pos)
		all := h.PeekAll(b2s(k)) // header-section values first
		head := all[:len(all)-min(countFields(arrived, k), len(all))]
		scratch = binary.AppendUvarint(scratch, uint64(len(head)))
		for _, v := range head {
			scratch = binary.AppendUvarint(scratch, uint64(len(v)))
			scratch = append(scratch, v...)
		}
	}
	h.DelBytes(headerTrailer) // the trailer values join the header section...
	for pos, vpos := 0, namesEnd; pos < namesEnd; {
		var k, v []byte
		k, pos = chunkAt(scratch, pos)
		h.DelBytes(k) // ...and leave it, with the header section's values,
		n, w := binary.Uvarint(scratch[vpos:])
		vpos += w
		for range n {
			v, vpos = chunkAt(scratch, vpos)
			h.AddBytesKV(k, v) // which are put back
		}
	}
	return scratch
}

// chunkAt returns the length-prefixed chunk (binary.AppendUvarint, then the
// bytes) at b[pos:], and the position after it.
func chunkAt(b []byte, pos int) ([]byte, int) {
	n, w := binary.Uvarint(b[pos:])
	pos += w
	return b[pos : pos+int(n)], pos + int(n)
}

// countFields counts the fields named name (case-insensitive) in a
// serialized header block.
func countFields(block, name []byte) int {
	n := 0
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		if colon := bytes.IndexByte(line, ':'); colon > 0 && bytes.EqualFold(line[:colon], name) {
			n++
		}
	}
	return n
}

// Bits for the headers the gateway owns: it sets, replaces or trusts one
// value of each, so a client's repeated line must not carry a second value
// past it (SetCanonical and PeekCanonical see only the first line).
const (
	ownedXFF uint8 = 1 << iota
	ownedXFProto
	ownedXFHost
	ownedGatewaySvc
	ownedRequestID
	ownedUserID
)

// ownedHeaders lists the owned headers with their bits, for collapseOwned.
var ownedHeaders = [...]struct {
	bit uint8
	key []byte
}{
	{ownedXFF, headerXFF}, {ownedXFProto, headerXFProto}, {ownedXFHost, headerXFHost},
	{ownedGatewaySvc, headerGatewaySvc}, {ownedRequestID, headerRequestID}, {ownedUserID, headerUserID},
}

// ownedHeader returns name's bit when it is an owned header
// (case-insensitive), else 0.
func ownedHeader(name []byte) uint8 {
	switch len(name) {
	case 9:
		if equalFoldBytes(name, "x-user-id") {
			return ownedUserID
		}
	case 12:
		if equalFoldBytes(name, "x-request-id") {
			return ownedRequestID
		}
	case 15:
		if equalFoldBytes(name, "x-forwarded-for") {
			return ownedXFF
		}
	case 16:
		if equalFoldBytes(name, "x-forwarded-host") {
			return ownedXFHost
		}
	case 17:
		switch {
		case equalFoldBytes(name, "x-forwarded-proto"):
			return ownedXFProto
		case equalFoldBytes(name, "x-gateway-service"):
			return ownedGatewaySvc
		}
	}
	return 0
}

// collapseOwned leaves one line of each owned header the client repeated
// (x.dupOwned): X-Forwarded-For's lines joined in order into one list (RFC
// 9110 section 5.3), the first line of the others. Everything after it (the
// trusted-proxy rules, auth, the forwarded headers) sees that one value.
func collapseOwned(h *fasthttp.RequestHeader, x *exchange) {
	for _, o := range ownedHeaders {
		if x.dupOwned&o.bit == 0 {
			continue
		}
		vals := h.PeekAll(b2s(o.key))
		if len(vals) < 2 {
			continue // a line was named in Connection and stripped
		}
		x.scratch = append(x.scratch[:0], vals[0]...)
		if o.bit == ownedXFF {
			for _, v := range vals[1:] {
				x.scratch = append(append(x.scratch, ", "...), v...)
			}
		}
		h.DelBytes(o.key)
		h.SetCanonical(o.key, x.scratch)
	}
}

// isHopByHop reports whether name is a header stripHopByHop removes by
// name (or Connection, or Expect), case-insensitively. It lets callers skip
// the removals, one scan of the headers each, when none is present.
func isHopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFoldBytes(name, "te")
	case 6:
		return equalFoldBytes(name, "expect")
	case 7:
		return equalFoldBytes(name, "trailer") || equalFoldBytes(name, "upgrade")
	case 10:
		return equalFoldBytes(name, "connection") || equalFoldBytes(name, "keep-alive")
	case 16:
		return equalFoldBytes(name, "proxy-connection")
	case 18:
		return equalFoldBytes(name, "proxy-authenticate")
	case 19:
		return equalFoldBytes(name, "proxy-authorization")
	}
	return false
}

// responseHasHopByHop reports whether the response carries a hop-by-hop
// header (one pass over its headers).
func responseHasHopByHop(h *fasthttp.ResponseHeader) bool {
	for k := range h.All() {
		if isHopByHop(k) {
			return true
		}
	}
	return false
}

// nextToken returns the first comma-separated token of s, trimmed, and the
// rest.
func nextToken(s []byte) (tok, rest []byte) {
	i := bytes.IndexByte(s, ',')
	if i < 0 {
		tok, rest = s, nil
	} else {
		tok, rest = s[:i], s[i+1:]
	}
	return bytes.TrimSpace(tok), rest
}

// validRequestID reports whether a client-supplied X-Request-ID is kept:
// 1 to 128 bytes of [A-Za-z0-9._-].
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDBytes {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// idGen makes request ids unique per process: a random prefix fixed at
// start and a counter, e.g. "3f9a0c1e7b2d4a65-00000000002a".
//
// It is safe for concurrent use.
type idGen struct {
	prefix [17]byte // 16 hex digits and '-'
	n      atomic.Uint64
}

func newIDGen(seed [8]byte) *idGen {
	g := &idGen{}
	hex.Encode(g.prefix[:16], seed[:])
	g.prefix[16] = '-'
	return g
}

// appendID appends a new id to dst: the prefix and the counter in at
// least 12 lowercase hex digits.
func (g *idGen) appendID(dst []byte) []byte {
	dst = append(dst, g.prefix[:]...)
	n := g.n.Add(1)
	if n >= 1<<48 { // more than 12 hex digits
		return strconv.AppendUint(dst, n, 16)
	}
	var num [12]byte
	for i := len(num) - 1; i >= 0; i-- {
		num[i] = hexDigits[n&0xf]
		n >>= 4
	}
	return append(dst, num[:]...)
}

const hexDigits = "0123456789abcdef"

// peerAddr returns the TCP peer's address, unmapped.
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.IPv4Unspecified()
}

// trustedProxies is an immutable list of CIDRs.
type trustedProxies []netip.Prefix

func (t trustedProxies) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the address of the client as far as it can be trusted:
// the TCP peer, or, when the peer is a trusted proxy, the rightmost entry of
// X-Forwarded-For that is not itself a trusted proxy.
func (t trustedProxies) clientIP(peer netip.Addr, xff []byte) netip.Addr {
	if len(t) == 0 || !t.contains(peer) {
		return peer
	}
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		entry := bytes.TrimSpace(xff[i+1:])
		if i < 0 {
			xff = nil
		} else {
			xff = xff[:i]
		}
		a, err := netip.ParseAddr(b2s(entry))
		if err != nil {
			return peer
		}
		a = a.Unmap()
		if !t.contains(a) {
			return a
		}
		peer = a
	}
	return peer
}

// canonical is name as fasthttp stores header names ("X-Request-ID" becomes
// "X-Request-Id"), for PeekCanonical and SetCanonical, which skip the
// per-call normalization of PeekBytes and SetBytesKV.
func canonical(name string) []byte { return fasthttp.AppendNormalizedHeaderKey(nil, name) }
