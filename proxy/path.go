package proxy

import (
	"bytes"
	"errors"

	"github.com/fastgate/fastgate/config"
)

// Errors of path normalization; each is answered with 400.
var (
	ErrBadPath      = errors.New("proxy: malformed request target")
	ErrEncodedSlash = errors.New("proxy: encoded slash, backslash or NUL in path")
	ErrBadPercent   = errors.New("proxy: bad percent-encoding in path")
	ErrBadPathByte  = errors.New("proxy: invalid byte in path")
	// ErrDotParams: a "." or ".." segment with path parameters (";..."),
	// which servlet containers such as Tomcat resolve like the bare dot
	// segment after the gateway has routed the path (/public/..;/admin
	// reaches /admin).
	ErrDotParams = errors.New("proxy: dot segment with parameters in path")
	// ErrParamsOnly: a segment of path parameters only (";x") before another
	// segment, an empty segment to a servlet container, which strips the
	// parameters and then merges "//" (/;/admin reaches /admin). As the
	// last segment it is kept: servlet URL rewriting makes /app/;jsessionid=1.
	ErrParamsOnly = errors.New("proxy: segment of path parameters only in path")
)

// SplitTarget splits a request target into its path and query (without the
// '?'). It accepts origin-form ("/p?q") and absolute-form
// ("http://host/p?q"); anything else is ErrBadPath. A fragment is dropped.
// The returned slices alias target.
func SplitTarget(target []byte) (path, query []byte, err error) {
	if len(target) == 0 {
		return nil, nil, ErrBadPath
	}
	if target[0] != '/' {
		rest, ok := cutScheme(target)
		if !ok {
			return nil, nil, ErrBadPath
		}
		i := 0
		for i < len(rest) && rest[i] != '/' && rest[i] != '?' {
			i++
		}
		target = rest[i:]
		switch {
		case len(target) == 0: // "http://host"
			return []byte("/"), nil, nil
		case target[0] != '/': // "http://host?q"
			return nil, nil, ErrBadPath
		}
	}
	for i, c := range target {
		switch c {
		case '#':
			return target[:i], nil, nil
		case '?':
			q := target[i+1:]
			for j, d := range q {
				if d == '#' {
					q = q[:j]
					break
				}
			}
			return target[:i], q, nil
		}
	}
	return target, nil, nil
}

func cutScheme(t []byte) ([]byte, bool) {
	for _, s := range [...]string{"http://", "https://"} {
		if len(t) > len(s) && equalFold(t[:len(s)], s) {
			return t[len(s):], true
		}
	}
	return nil, false
}

func equalFold(b []byte, s string) bool {
	for i := range b {
		if lower(b[i]) != s[i] {
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

// AppendNormalizedPath appends the normalized form of the raw path p to dst
// and returns it. Normalization, in order:
//   - percent-encodings of unreserved characters (ALPHA DIGIT - . _ ~) are
//     decoded; other encodings are kept with upper-case hex digits;
//   - %2F, %5C and %00 (encoded slash, backslash, NUL) are ErrEncodedSlash;
//     a malformed encoding is ErrBadPercent; a raw backslash, control byte,
//     space, DEL or non-ASCII byte is ErrBadPathByte;
//   - empty segments ("//") are merged;
//   - "." and ".." segments are resolved; ".." never climbs above "/";
//   - a "." or ".." segment followed by ';' (".;x", "..;x", also from
//     %2E) is ErrDotParams; a segment starting with ';' is ErrParamsOnly
//     unless it is the last.
//
// The result starts with '/' and keeps a trailing slash. p must start with
// '/'. AppendNormalizedPath does not allocate when dst has room.
func AppendNormalizedPath(dst, p []byte) ([]byte, error) {
	if len(p) == 0 || p[0] != '/' {
		return dst, ErrBadPath
	}
	base := len(dst)
	dst = append(dst, '/')
	segStart := len(dst) // start of the segment being written
	for i := 1; i <= len(p); i++ {
		var c byte
		if i < len(p) {
			c = p[i]
		} else {
			c = '/' // end of input closes the last segment
		}
		if c == '%' {
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return dst[:base], ErrBadPercent
			}
			v := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			switch {
			case v == '/' || v == '\\' || v == 0:
				return dst[:base], ErrEncodedSlash
			case config.IsUnreserved(v):
				dst = append(dst, v)
			default:
				dst = append(dst, '%', upperHex[v>>4], upperHex[v&15])
			}
			continue
		}
		if c != '/' {
			if c <= ' ' || c >= 0x7f || c == '\\' {
				return dst[:base], ErrBadPathByte
			}
			if c == ';' { // path parameters start: the segment's name is dst[segStart:]
				switch {
				case isDotSegment(dst[segStart:]):
					return dst[:base], ErrDotParams
				case len(dst) == segStart && bytes.IndexByte(p[i:], '/') >= 0:
					return dst[:base], ErrParamsOnly
				}
			}
			dst = append(dst, c)
			continue
		}
		// c closes the segment dst[segStart:].
		seg := dst[segStart:]
		last := i == len(p)
		switch {
		case len(seg) == 0: // "//" or the trailing slash
		case len(seg) == 1 && seg[0] == '.':
			dst = dst[:segStart]
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			dst = dst[:segStart]
			if segStart-base > 1 { // drop the previous segment and its slash
				j := segStart - 2
				for dst[j] != '/' {
					j--
				}
				dst = dst[:j+1]
			}
		default:
			if !last {
				dst = append(dst, '/')
			}
		}
		segStart = len(dst)
	}
	return dst, nil
}

// isDotSegment reports whether seg is "." or "..".
func isDotSegment(seg []byte) bool {
	return len(seg) == 1 && seg[0] == '.' || len(seg) == 2 && seg[0] == '.' && seg[1] == '.'
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
