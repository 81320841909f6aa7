package proxy

import (
	"bytes"
	"time"

	"github.com/fastgate/fastgate/config"
)

// route is one [[routes]] entry, ready for the request path. Immutable.
type route struct {
	prefix    []byte
	logFields []byte // its access-log fields (routeLogFields)
	strip     []byte
	fold      bool     // prefix and strip ignore ASCII case (ignore_case)
	methods   [][]byte // empty = all
	allow     []byte   // Allow header for 405
	up        *upstream
	attempt   time.Duration // per attempt
	retries   int           // extra attempts
	timeout   time.Duration // whole request
	metrics   *routeMetrics
	edge      *edgeRoute
}

// allows reports whether the route accepts method.
func (r *route) allows(method []byte) bool {
	if len(r.methods) == 0 {
		return true
	}
	for _, m := range r.methods {
		if bytes.Equal(m, method) {
			return true
		}
	}
	return false
}

// table is the immutable route table, longest prefix first.
type table struct {
	routes []*route
}

// match returns the route with the longest prefix that matches path on a
// segment boundary, or nil. path must be normalized.
func (t *table) match(path []byte) *route {
	for _, r := range t.routes {
		if _, ok := config.PathPrefixEnd(b2s(path), b2s(r.prefix), r.fold); ok {
			return r
		}
	}
	return nil
}

// appendForwardPath appends the path to send upstream: path without the
// route's strip prefix, and "/" when nothing is left.
func (r *route) appendForwardPath(dst, path []byte) []byte {
	if len(r.strip) > 0 {
		if end, ok := config.PathPrefixEnd(b2s(path), b2s(r.strip), r.fold); ok {
			path = path[end:] // with the stripped segments' parameters
			if len(path) == 0 || path[0] != '/' {
				dst = append(dst, '/')
			}
		}
	}
	return append(dst, path...)
}
