package proxy

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fastgate/fastgate/config"
)

func TestAppendNormalizedPath(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"/", "/", nil},
		{"/api/v1/users", "/api/v1/users", nil},
		{"/api/v1/users/", "/api/v1/users/", nil},
		{"/api//v1///users", "/api/v1/users", nil},
		{"/api/v1/users/../admin", "/api/v1/admin", nil},
		{"/api/v1/users/./7", "/api/v1/users/7", nil},
		{"/api/v1/users/..", "/api/v1/", nil},
		{"/api/v1/users/.", "/api/v1/users/", nil},
		{"/..", "/", nil},
		{"/../../etc/passwd", "/etc/passwd", nil},
		{"/a/b/../../..", "/", nil},
		{"/a/%2e%2e/b", "/b", nil},
		{"/a/%2E/b", "/a/b", nil},
		{"/%61pi/v1", "/api/v1", nil},
		{"/a%7eb", "/a~b", nil},
		{"/a%20b", "/a%20b", nil},
		{"/a%c3%a9", "/a%C3%A9", nil},
		{"/a/.../b", "/a/.../b", nil},
		{"/a/..b/c", "/a/..b/c", nil},
		{"/a/b;v=1/c", "/a/b;v=1/c", nil},
		{"/a/...;x/c", "/a/...;x/c", nil},
		{"/a/x..;/c", "/a/x..;/c", nil},
		{"/a/..%3B/c", "/a/..%3B/c", nil},
		{"/public/..;/admin", "", ErrDotParams},
		{"/public/..;jsessionid=1/admin", "", ErrDotParams},
		{"/public/.;/admin", "", ErrDotParams},
		{"/public/%2e%2E;/admin", "", ErrDotParams},
		{"/public/..;", "", ErrDotParams},
		{"/;/admin", "", ErrParamsOnly},
		{"/api/;x/v1", "", ErrParamsOnly},
		{"/api/;jsessionid=1/v1/", "", ErrParamsOnly},
		{"/app/;jsessionid=1", "/app/;jsessionid=1", nil},
		{"/app//;x", "/app/;x", nil},
		{"/app/;", "/app/;", nil},
		{"//", "/", nil},
		{"/a/b//", "/a/b/", nil},
		{"/a%2Fb", "", ErrEncodedSlash},
		{"/a%2fb", "", ErrEncodedSlash},
		{"/a%5Cb", "", ErrEncodedSlash},
		{"/a%00", "", ErrEncodedSlash},
		{"/a%zz", "", ErrBadPercent},
		{"/a%2", "", ErrBadPercent},
		{"/a%", "", ErrBadPercent},
		{"/a\\b", "", ErrBadPathByte},
		{"/a b", "", ErrBadPathByte},
		{"/a\x00", "", ErrBadPathByte},
		{"/a\xff", "", ErrBadPathByte},
		{"a/b", "", ErrBadPath},
		{"", "", ErrBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := AppendNormalizedPath([]byte("keep"), []byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if string(got) != "keep" {
					t.Fatalf("dst changed on error: %q", got)
				}
				return
			}
			if string(got) != "keep"+tt.want {
				t.Fatalf("got %q, want %q", got[4:], tt.want)
			}
		})
	}
}

func TestSplitTarget(t *testing.T) {
	tests := []struct {
		in, path, query string
		err             error
	}{
		{"/a/b?x=1&y=2", "/a/b", "x=1&y=2", nil},
		{"/a/b", "/a/b", "", nil},
		{"/a/b?", "/a/b", "", nil},
		{"/a#frag", "/a", "", nil},
		{"/a?q=1#frag", "/a", "q=1", nil},
		{"http://example.com/a?q", "/a", "q", nil},
		{"HTTPS://example.com", "/", "", nil},
		{"http://example.com?q", "", "", ErrBadPath},
		{"*", "", "", ErrBadPath},
		{"example.com:443", "", "", ErrBadPath},
		{"", "", "", ErrBadPath},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, q, err := SplitTarget([]byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && (string(p) != tt.path || string(q) != tt.query) {
				t.Fatalf("got %q ? %q, want %q ? %q", p, q, tt.path, tt.query)
			}
		})
	}
}

// FuzzAppendNormalizedPath checks the properties of a normalized path on
// any input: it starts with '/', has no empty, "." or ".." segment (with
// or without ";" parameters), keeps
// only canonical escapes, and normalizing it again changes nothing.
func FuzzAppendNormalizedPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/a//b/./c/", "/%2e%2E/x", "/a%2fb", "/a%c3%a9", "/..%2f", "/a/b/../../../c", "/a/..;/b", "/a/%2e;x", "/;/a", "/a/;x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := AppendNormalizedPath(nil, []byte(in))
		if err != nil {
			return
		}
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("%q -> %q: not absolute", in, out)
		}
		segs := bytes.Split(out[1:], []byte("/"))
		for i, s := range segs {
			if len(s) == 0 && i != len(segs)-1 {
				t.Fatalf("%q -> %q: empty segment", in, out)
			}
			if name, _, _ := bytes.Cut(s, []byte(";")); string(name) == "." || string(name) == ".." {
				t.Fatalf("%q -> %q: dot segment", in, out)
			}
			if len(s) > 0 && s[0] == ';' && i != len(segs)-1 {
				t.Fatalf("%q -> %q: a segment of parameters only before another", in, out)
			}
		}
		again, err := AppendNormalizedPath(nil, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("%q -> %q -> %q (%v): not idempotent", in, out, again, err)
		}
	})
}

// servletView is the path a servlet container (Tomcat, Spring's
// UrlPathHelper) serves for a normalized path: each segment's ";params"
// stripped, then "//" merged.
func servletView(p []byte) []byte {
	var out []byte
	for _, s := range bytes.Split(p[1:], []byte("/")) {
		if i := bytes.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		if len(s) > 0 || len(out) == 0 || out[len(out)-1] != '/' {
			out = append(append(out, '/'), s...)
		}
	}
	return out
}

// FuzzRouteOwnsServletPath: a route prefix matches a normalized path
// exactly when it matches the path a servlet container serves for it, so
// path parameters cannot move a request to another route than the one the
// upstream's resource belongs to.
func FuzzRouteOwnsServletPath(f *testing.F) {
	for _, s := range []string{"/api/v1/users/7", "/api;x/v1/users", "/api/;/v1/users", "/a;b/c", "/api/v1/users;v=1", "/api/v1;x/users;y/7"} {
		f.Add(s)
	}
	prefixes := []string{"/", "/api", "/api/v1", "/api/v1/users", "/a/c"}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := AppendNormalizedPath(nil, []byte(in))
		if err != nil {
			return
		}
		view := servletView(out)
		for _, pre := range prefixes {
			if config.HasPathPrefix(string(out), pre) != config.HasPathPrefix(string(view), pre) {
				t.Fatalf("%q -> %q (servlet: %q): prefix %q matches one and not the other", in, out, view, pre)
			}
		}
	})
}

func TestAppendForwardPath(t *testing.T) {
	tests := []struct{ strip, path, want string }{
		{"", "/api/v1/users", "/api/v1/users"},
		{"/api", "/api/v1/users", "/v1/users"},
		{"/api", "/api", "/"},
		{"/api", "/apix/v1", "/apix/v1"},
		{"/api", "/api/v1/users;v=2", "/v1/users;v=2"},
		{"/api", "/api;x/v1/users/7", "/v1/users/7"},
		{"/api/v1/users", "/api/v1/users;v=2/7", "/7"},
		{"/api/v1/users", "/api/v1/users;v=2", "/"},
		{"/api/v1/users", "/api;x/v1;y/users/7", "/7"},
	}
	for _, tt := range tests {
		t.Run(tt.strip+"|"+tt.path, func(t *testing.T) {
			r := &route{strip: []byte(tt.strip)}
			if got := string(r.appendForwardPath(nil, []byte(tt.path))); got != tt.want {
				t.Errorf("strip %q from %q: %q, want %q", tt.strip, tt.path, got, tt.want)
			}
		})
	}
}
