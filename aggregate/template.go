package aggregate

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"
)

// segment kinds of a part path template.
const (
	segLiteral = iota
	segParam   // {name}: a router param, ctx.UserValue(name)
	segQuery   // {query.name}: the client's query string
	segUser    // {user_id}: the authenticated user
)

// segment is a literal run of a part path, or one placeholder.
type segment struct {
	kind uint8
	text string // the literal, or the placeholder as written ("{query.limit}") for error answers
	name string // param or query arg name
	key  any    // name boxed once, so that ctx.UserValue does not allocate
}

// template is a parsed part path. It is immutable after parseTemplate.
type template struct {
	segs []segment
}

// parseTemplate splits path into literals and placeholders.
func parseTemplate(path string) (template, error) {
	var t template
	if path == "" || path[0] != '/' {
		return t, fmt.Errorf("%w: %q must start with /", ErrBadPath, path)
	}
	for rest := path; rest != ""; {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, text: rest})
			break
		}
		if i > 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, text: rest[:i]})
		}
		end := strings.IndexByte(rest[i:], '}')
		if rest[i] == '}' || end < 0 {
			return t, fmt.Errorf("%w: unbalanced braces in %q", ErrBadPath, path)
		}
		s, err := placeholder(rest[i+1 : i+end])
		if err != nil {
			return t, fmt.Errorf("%w in %q", err, path)
		}
		t.segs = append(t.segs, s)
		rest = rest[i+end+1:]
	}
	return t, nil
}

func placeholder(inner string) (segment, error) {
	s := segment{text: "{" + inner + "}"}
	switch {
	case inner == "user_id":
		s.kind = segUser
	case strings.HasPrefix(inner, "query."):
		s.kind, s.name = segQuery, inner[len("query."):]
	default:
		s.kind, s.name, s.key = segParam, inner, inner
	}
	if s.kind != segUser && !validName(s.name) {
		return s, fmt.Errorf("%w: %s", ErrBadPlaceholder, s.text)
	}
	return s, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// appendURI appends the filled template to dst. Router params ({name}) are
// ctx user values, string or []byte, percent-encoded as in the request path
// they were matched on (what fasthttp/router sets); query values are
// decoded by QueryArgs; user is the user id ({user_id}), nil when there is
// none. Every value is escaped once by appendEscaped, a param's after its
// escapes are decoded. It returns the placeholder that could not be filled
// (missing or empty value, or "." or ".." once decoded), or nil.
func (t *template) appendURI(dst []byte, ctx *fasthttp.RequestCtx, user []byte) ([]byte, *segment) {
	for i := range t.segs {
		s := &t.segs[i]
		switch s.kind {
		case segLiteral:
			dst = append(dst, s.text...)
			continue
		case segParam:
			start := len(dst)
			switch v := ctx.UserValue(s.key).(type) {
			case string:
				dst = appendParam(dst, v)
			case []byte:
				dst = appendParam(dst, v)
			default:
				return dst, s
			}
			// Only "." escapes to ".", so this checks the decoded value.
			if !fillable(dst[start:]) {
				return dst[:start], s
			}
		case segQuery:
			v := ctx.QueryArgs().Peek(s.name)
			if !fillable(v) {
				return dst, s
			}
			dst = appendEscaped(dst, v)
		case segUser:
			if !fillable(user) {
				return dst, s
			}
			dst = appendEscaped(dst, user)
		}
	}
	return dst, nil
}

// fillable rejects empty values, and "." and ".." which a path normalizer
// would resolve even when escaped (%2E is an unreserved character).
func fillable[T string | []byte](v T) bool {
	switch len(v) {
	case 0:
		return false
	case 1:
		return v[0] != '.'
	case 2:
		return v[0] != '.' || v[1] != '.'
	}
	return true
}

// appendEscaped appends v with every byte but the unreserved ones
// (A-Z a-z 0-9 - . _ ~) percent-encoded, so a value stays one path segment
// or one query value.
func appendEscaped[T string | []byte](dst []byte, v T) []byte {
	for i := 0; i < len(v); i++ {
		dst = appendEscapedByte(dst, v[i])
	}
	return dst
}

// appendParam appends the percent-encoded value v (a router param, as in
// the path) decoded, then escaped as appendEscaped does: "john%20doe" and
// "john doe" both give "john%20doe", "a%2520b" gives "a%2520b". A '%' not
// followed by two hex digits is taken as itself (the gateway's path
// normalization has already rejected such paths).
//
// Decoding first, rather than copying valid escapes through, gives one
// encoding of each value whatever the client sent ("%41" and "A" give
// "A"), and lets the caller check the decoded value: "%2E%2E" must not
// reach a part as "%2E%2E", which a normalizer would resolve as "..".
func appendParam[T string | []byte](dst []byte, v T) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '%' && i+2 < len(v) {
			if hi, lo := unhex(v[i+1]), unhex(v[i+2]); hi >= 0 && lo >= 0 {
				c = byte(hi<<4 | lo)
				i += 2
			}
		}
		dst = appendEscapedByte(dst, c)
	}
	return dst
}

// appendEscapedByte appends c, percent-encoded unless it is unreserved.
func appendEscapedByte(dst []byte, c byte) []byte {
	const hex = "0123456789ABCDEF"
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
		return append(dst, c)
	}
	return append(dst, '%', hex[c>>4], hex[c&15])
}

// unhex is the value of the hex digit c, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
