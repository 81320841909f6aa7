package aggregate

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
	"unicode/utf8"
)

// FuzzMerge: whatever the parts answer, the aggregate's answer is valid
// JSON in valid UTF-8 (encoding/json.Valid does not check UTF-8), every
// part key is in "data", a part kept as valid holds exactly the part's
// JSON, and a 2xx part within max_part_bytes and maxDepth that
// encoding/json accepts in valid UTF-8 is kept.
func FuzzMerge(f *testing.F) {
	for _, seed := range [][4]string{
		{`{"a":1}`, `[1,2,3]`, `"s"`, `null`},
		{`<html>`, `{"a":`, ``, ` `},
		{`{"a":"\u00e9\"\\"}`, "\"\x01\"", `1e5`, `-0.0`},
		{`[[[[[[]]]]]]`, `{"":{"":{}}}`, `tru`, `0123`},
		{"\xff\xfe", `"\ud800"`, `{"a":1,}`, `[1,]`},
		{"{\"msg\":\"col1\tcol2 \\\"quoted\\\"\"}", "\"\x01\\n\"", "{\"k\x02\\u0041\":1}", "[\"0123456789abcdef\x1f\\/\"]"},
		{"{\"name\":\"caf\xe9\"}", "\"\xed\xa0\x80\\t\"", "\"\xc0\xaf\"", "{\n\t\"é\": [\"✓ 😀\"]\n}"},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]), []byte(seed[2]), []byte(seed[3]), uint16(200), uint16(1000))
	}
	parts := testParts("profile!", "posts", "notifications", "trending")
	f.Fuzz(func(t *testing.T, a, b, c, d []byte, status, maxBytes uint16) {
		bodies := [4][]byte{a, b, c, d}
		var res [4]result
		for i, body := range bodies {
			st := 200
			if i == 3 {
				st = int(status)
			}
			res[i] = checkBody(st, body, int(maxBytes))
		}
		v := decide(parts, res[:], 200)
		out := appendAnswer(nil, parts, res[:], v, goldenAt, goldenTook)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON answer: %q", out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("answer not valid UTF-8: %q", out)
		}
		var doc struct {
			Status string                     `json:"status"`
			Data   map[string]json.RawMessage `json:"data"`
			Errors map[string]struct {
				Status int    `json:"status"`
				Error  string `json:"error"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("unmarshal: %v: %q", err, out)
		}
		for i, p := range parts {
			raw, ok := doc.Data[p.key]
			if !ok {
				t.Fatalf("data has no %q: %q", p.key, out)
			}
			_, failed := doc.Errors[p.key]
			if failed == (res[i].outcome == OutcomeOK) {
				t.Fatalf("part %s: outcome %v but errors entry %v", p.key, res[i].outcome, failed)
			}
			if res[i].outcome != OutcomeOK {
				if res[i].outcome == OutcomeInvalidJSON && json.Valid(bodies[i]) && utf8.Valid(bodies[i]) &&
					bytes.Count(bodies[i], []byte("{"))+bytes.Count(bodies[i], []byte("[")) <= maxDepth {
					t.Fatalf("part %s rejected, but encoding/json accepts it: %q", p.key, bodies[i])
				}
				continue
			}
			var want, got bytes.Buffer
			if err := json.Compact(&want, bodies[i]); err != nil {
				t.Fatalf("part %s kept but encoding/json rejects it: %v: %q", p.key, err, bodies[i])
			}
			_ = json.Compact(&got, raw)
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("part %s = %q, want %q", p.key, got.Bytes(), want.Bytes())
			}
		}
	})
}

// FuzzAppendParam: a router param comes out escaped once, whatever escapes
// it holds: only unreserved bytes and upper-case %XX escapes, unchanged by
// another round (already canonical), and the escaping of the value
// url.PathUnescape decodes when it accepts it.
func FuzzAppendParam(f *testing.F) {
	for _, seed := range []string{"42", "john%20doe", "caf%C3%A9", "%c3%a9", "a%2520b", "%2E%2E", "a b/c", "%", "%4", "%zz", "100%", "%%41", "é\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		out := appendParam(nil, v)
		for i := 0; i < len(out); i++ {
			c := out[i]
			switch {
			case c == '%':
				if i+2 >= len(out) || !isUpperHex(out[i+1]) || !isUpperHex(out[i+2]) {
					t.Fatalf("%q: bad escape in %q", v, out)
				}
				i += 2
			case !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'):
				t.Fatalf("%q: unescaped %q in %q", v, c, out)
			}
		}
		if again := appendParam(nil, out); !bytes.Equal(again, out) {
			t.Fatalf("%q: %q escaped again is %q", v, out, again)
		}
		if dec, err := url.PathUnescape(v); err == nil {
			if want := appendEscaped(nil, dec); !bytes.Equal(out, want) {
				t.Fatalf("%q = %q, want %q (the escaped %q)", v, out, want, dec)
			}
		}
	})
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }
