package proxy

import (
	"bytes"
	"time"
)

// route is one [[routes]] entry, ready for the request path. Immutable.
type route struct {
	prefix  []byte
	strip   []byte
	methods [][]byte // empty = all
	allow   []byte   // Allow header for 405
	up      *upstream
	attempt time.Duration // per attempt
	retries int           // extra attempts
	timeout time.Duration // whole request
	metrics *routeMetrics
	edge    *edgeRoute
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
		if hasPathPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
}

// hasPathPrefix reports whether prefix matches path on a segment boundary:
// "/a" matches "/a" and "/a/b", never "/ab"; "/" matches every path. It is
// config.HasPathPrefix for bytes.
func hasPathPrefix(path, prefix []byte) bool {
	if len(prefix) == 0 {
		return true
	}
	if !bytes.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// appendForwardPath appends the path to send upstream: path without the
// route's strip prefix, and "/" when nothing is left.
func (r *route) appendForwardPath(dst, path []byte) []byte {
	if len(r.strip) > 0 && hasPathPrefix(path, r.strip) {
		path = path[len(r.strip):]
		if len(path) == 0 || path[0] != '/' {
			dst = append(dst, '/')
		}
	}
	return append(dst, path...)
}
