package cache

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/valyala/fasthttp"
)

// Method codes open every primary key. HEAD shares GET's code: a HEAD
// request is answered from the GET entry (the server drops the body and
// keeps its Content-Length).
const (
	methodNone = 0
	methodGet  = 'G'
)

// keyBuf is the scratch one call uses to build its keys. Get one with
// Cache.acquireKey and give it back with Cache.releaseKey; never keep a
// reference to its slices after that.
type keyBuf struct {
	pk     []byte  // primary key: method code, host, path, '?', sorted query
	sk     []byte  // secondary key: the request's values of the Vary headers
	params []param // query parameter spans, sorted by appendSortedQuery
}

// param is one query parameter: query[start:end], its name query[start:name].
type param struct{ start, name, end int32 }

// methodCode maps a request method to the code its cache key starts with,
// or methodNone for a method the cache never answers.
func methodCode(req *fasthttp.Request) byte {
	if req.Header.IsGet() || req.Header.IsHead() {
		return methodGet
	}
	return methodNone
}

// buildPrimary sets kb.pk to the primary key of a request: method code,
// lower-cased Host, the normalized path, '?', and the query with its
// parameters sorted by name. The host never holds '/', and a normalized path
// never holds '?', so the parts cannot run into one another.
func (kb *keyBuf) buildPrimary(code byte, host, path, query []byte) {
	b := append(kb.pk[:0], code)
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, path...)
	b = append(b, '?')
	kb.pk, kb.params = appendSortedQuery(b, query, kb.params[:0])
}

// appendSortedQuery appends query to dst in its canonical form: parameters
// (the '&'-separated parts) sorted by name, byte-wise, keeping the relative
// order of parameters with equal names (a=2&a=1 stays a=2&a=1, since order
// can matter to the upstream); empty parts dropped. Nothing is decoded: two
// spellings of one value are two keys, which is never wrong, only a missed
// hit. scratch holds the parameter spans; the grown slice is returned for
// reuse, so that a warm keyBuf sorts without allocating.
func appendSortedQuery(dst, query []byte, scratch []param) ([]byte, []param) {
	ps := scratch[:0]
	for i := 0; i < len(query); {
		end := bytes.IndexByte(query[i:], '&')
		if end < 0 {
			end = len(query)
		} else {
			end += i
		}
		if end > i {
			name := bytes.IndexByte(query[i:end], '=')
			if name < 0 {
				name = end
			} else {
				name += i
			}
			ps = append(ps, param{start: int32(i), name: int32(name), end: int32(end)})
		}
		i = end + 1
	}
	slices.SortStableFunc(ps, func(a, b param) int {
		return bytes.Compare(query[a.start:a.name], query[b.start:b.name])
	})
	for i, p := range ps {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, query[p.start:p.end]...)
	}
	return dst, ps
}

// appendVaryKey appends the request's values of the headers named (in
// canonical form) to dst, each prefixed by its length so that no value can
// pass for two. An absent header and an empty one are the same; of a
// repeated header, the first value counts.
func appendVaryKey(dst []byte, names [][]byte, req *fasthttp.Request) []byte {
	for _, n := range names {
		v := req.Header.PeekBytes(n)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}
