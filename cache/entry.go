package cache

import (
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// entryOverhead is added to the size of every entry for the structures that
// hold it (the entry, its group of variants and their map slots), so that a
// flood of tiny responses is bounded by maxBytes too. Measured: an entry
// with one header and no body holds about 700 bytes of heap
// (TestAccountingTracksHeap), its keys and header bytes included.
const entryOverhead = 600

// entry is one stored response.
//
// Everything but prev, next, group and vkey is immutable once the entry is
// in a shard, so a hit copies it into the caller's response after dropping
// the shard lock; an evicted entry stays valid for whoever still reads it.
type entry struct {
	prev, next *entry    // LRU list; protected by shard.mu
	group      *variants // protected by shard.mu
	vkey       string    // secondary key in group.entries

	size    int64     // bytes charged to the shard
	status  int       // status code
	fields  []field   // headers to replay, in upstream order
	body    []byte    // never written after storing: hits alias it
	stored  time.Time // Clock() when stored
	expires time.Time // stored + TTL
	initAge time.Duration
	shared  bool // public or s-maxage: may answer requests with Authorization
}

// field is one stored header; k and v share the entry's backing array.
type field struct{ k, v []byte }

// keepHeader reports whether an entry keeps response header k. It leaves
// out hop-by-hop headers, those fasthttp or the gateway set per response
// (Content-Length, Date, Age, X-Request-ID, X-Cache), and Set-Cookie, which
// never gets this far.
func keepHeader(k []byte) bool {
	for _, n := range [...]string{
		fasthttp.HeaderConnection, "Keep-Alive", "Proxy-Connection", fasthttp.HeaderTransferEncoding,
		fasthttp.HeaderTrailer, fasthttp.HeaderUpgrade, fasthttp.HeaderTE,
		fasthttp.HeaderContentLength, fasthttp.HeaderDate, fasthttp.HeaderAge, fasthttp.HeaderSetCookie,
		"X-Request-ID", "X-Cache",
	} {
		if eqFold(k, n) {
			return false
		}
	}
	return true
}

// newEntry copies status, headers and body of resp into one backing array.
func newEntry(resp *fasthttp.Response, v *verdict, now time.Time) *entry {
	n, nf := 0, 0
	for k, val := range resp.Header.All() {
		if keepHeader(k) {
			n += len(k) + len(val)
			nf++
		}
	}
	body := resp.Body()
	buf := make([]byte, 0, n+len(body))
	e := &entry{
		status:  resp.StatusCode(),
		fields:  make([]field, 0, nf),
		stored:  now,
		expires: now.Add(v.ttl),
		initAge: v.initAge,
		shared:  v.shared,
	}
	for k, val := range resp.Header.All() {
		if !keepHeader(k) || len(e.fields) == nf {
			continue
		}
		i := len(buf)
		buf = append(buf, k...)
		j := len(buf)
		buf = append(buf, val...)
		e.fields = append(e.fields, field{k: buf[i:j:j], v: buf[j:len(buf):len(buf)]})
	}
	e.body = append(buf, body...)[len(buf):]
	e.size = int64(cap(buf)) + int64(cap(e.fields))*int64(unsafe.Sizeof(field{})) + entryOverhead
	return e
}

// age is the Age of e at now: its age when stored plus its time here.
func (e *entry) age(now time.Time) time.Duration {
	return e.initAge + now.Sub(e.stored)
}

// writeTo gives dst e's status, headers, body (not copied: dst aliases the
// stored body, which is never written) and an Age header in whole seconds.
// It does not Reset dst: that would also clear the flags the server set on
// it for this request (NoDefaultDate, NoDefaultContentType, Connection:
// close), and the headers the gateway set before the look-up.
func (e *entry) writeTo(dst *fasthttp.Response, age time.Duration) {
	dst.SetStatusCode(e.status)
	// The names are stored as fasthttp parsed them: normalizing them again
	// would only cost time.
	if normalizing := !dst.Header.DisableNormalizing(); normalizing {
		defer dst.Header.EnableNormalizing()
	}
	for i := range e.fields {
		dst.Header.AddBytesKV(e.fields[i].k, e.fields[i].v)
	}
	dst.SetBodyRaw(e.body)
	var b [20]byte
	dst.Header.SetBytesV(fasthttp.HeaderAge, strconv.AppendInt(b[:0], int64(age/time.Second), 10))
}
