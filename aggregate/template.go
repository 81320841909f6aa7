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

// appendURI appends the filled template to dst. user is the user id ({user_id}),
// nil when there is none. It returns the placeholder that could not be filled
// (missing or empty value, or "." or ".."), or nil.
func (t *template) appendURI(dst []byte, ctx *fasthttp.RequestCtx, user []byte) ([]byte, *segment) {
	for i := range t.segs {
		s := &t.segs[i]
		switch s.kind {
		case segLiteral:
			dst = append(dst, s.text...)
			continue
		case segParam:
			switch v := ctx.UserValue(s.key).(type) {
			case string:
				if !fillable(v) {
					return dst, s
				}
				dst = appendEscaped(dst, v)
			case []byte:
				if !fillable(v) {
					return dst, s
				}
				dst = appendEscaped(dst, v)
			default:
				return dst, s
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
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}
