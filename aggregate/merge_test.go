package aggregate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// testParts makes compiled parts with the given keys; a key ending in "!"
// is required.
func testParts(keys ...string) []part {
	ps := make([]part, len(keys))
	for i, k := range keys {
		req := strings.HasSuffix(k, "!")
		k = strings.TrimSuffix(k, "!")
		ps[i] = part{key: k, keyJSON: []byte(`"` + k + `":`), required: req}
	}
	return ps
}

// ok and failed make results as a settled part would have them.
func ok(body string) result { return checkBody(200, []byte(body), 1<<20) }

func failed(o Outcome, status int) result { return result{outcome: o, status: status} }

var (
	goldenAt   = time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("CET", 3600))
	goldenTook = 12345678 * time.Nanosecond
)

func TestMergeGolden(t *testing.T) {
	tests := []struct {
		name  string
		parts []part
		res   []result
	}{
		{"success", testParts("profile", "posts", "notifications", "trending"), []result{
			ok(`{"id":"42","name":"Ada \"the\" admin","tags":["a","b"],"nested":{"x":[1,2,{"y":null}]}}`),
			ok(`[{"id":1,"text":"héllo \u00e9 \n"},{"id":2}]`),
			ok(`3`),
			ok(`  {"topics": ["#go"]}` + "\n\t "),
		}},
		{"partial", testParts("profile", "posts", "notifications", "trending"), []result{
			ok(`{"id":"42"}`),
			failed(OutcomeTimeout, 0),
			checkBody(200, []byte(`<html>oops</html>`), 1<<20),
			checkBody(503, []byte(`{"error":"down"}`), 1<<20),
		}},
		{"every_failure", testParts("a", "b", "c", "d", "e", "f"), []result{
			failed(OutcomeUnreachable, 0),
			failed(OutcomeTimeout, 0),
			failed(OutcomeDeadline, 0),
			checkBody(404, []byte(`{}`), 1<<20),
			checkBody(200, []byte(`{"a":`), 1<<20),
			checkBody(200, []byte(`{"big":"xxxxxxxxxx"}`), 10),
		}},
		{"required_failed", testParts("profile!", "posts"), []result{
			failed(OutcomeUnreachable, 0),
			ok(`{"posts":[]}`),
		}},
		{"deadline", testParts("profile!", "posts"), []result{
			failed(OutcomeDeadline, 0),
			ok(`[]`),
		}},
		{"scalars", testParts("s", "t", "f", "n", "num"), []result{
			ok(`"a string"`), ok(`true`), ok(`false`), ok(`null`), ok(`-1.5e+10`),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := decide(tc.parts, tc.res, 200)
			got := appendAnswer(nil, tc.parts, tc.res, v, goldenAt, goldenTook)
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			// The golden file holds the raw answer (one line), then the
			// verdict; indentation is for reading diffs only.
			out := append(append(got, '\n'), statusNames[v.status]...)
			out = append(append(out, ' '), strconv.Itoa(v.code)...)
			out = append(append(out, "\n\n"...), pretty.Bytes()...)
			out = append(out, '\n')
			file := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(file, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestMergeGolden -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("answer differs from %s:\ngot:\n%s\nwant:\n%s", file, out, want)
			}
		})
	}
}

func TestCheckBody(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	atLimit := strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth)
	bracketsInStrings := `["` + strings.Repeat("[", 2*maxDepth) + `"]`
	atLimitUTF8 := strings.Repeat(`{"é":`, maxDepth) + "1" + strings.Repeat("}", maxDepth)
	tests := []struct {
		name   string
		status int
		body   string
		max    int
		want   Outcome
		kept   string
	}{
		{"object", 200, `{"a":1}`, 100, OutcomeOK, `{"a":1}`},
		{"trimmed", 201, " \r\n\t[1, 2] \n", 100, OutcomeOK, `[1, 2]`},
		{"204 empty", 204, ``, 100, OutcomeInvalidJSON, ``},
		{"empty", 200, ``, 100, OutcomeInvalidJSON, ``},
		{"only spaces", 200, `   `, 100, OutcomeInvalidJSON, ``},
		{"html", 200, `<html></html>`, 100, OutcomeInvalidJSON, ``},
		{"two values", 200, `{} {}`, 100, OutcomeInvalidJSON, ``},
		{"truncated", 200, `{"a":[1,2`, 100, OutcomeInvalidJSON, ``},
		{"control char in string", 200, "\"a\x01\"", 100, OutcomeInvalidJSON, ``},
		{"bad escape", 200, `"\x"`, 100, OutcomeInvalidJSON, ``},
		{"nan", 200, `NaN`, 100, OutcomeInvalidJSON, ``},
		{"leading zero", 200, `01`, 100, OutcomeInvalidJSON, ``},
		{"non-2xx", 500, `{"a":1}`, 100, OutcomeBadStatus, ``},
		{"redirect", 302, `{}`, 100, OutcomeBadStatus, ``},
		{"over max", 200, `{"a":"0123456789"}`, 10, OutcomeTooLarge, ``},
		{"at max", 200, `[1]`, 3, OutcomeOK, `[1]`},
		{"too deep", 200, deep, 1 << 20, OutcomeInvalidJSON, ``},
		{"deep at the limit", 200, atLimit, 1 << 20, OutcomeOK, atLimit},
		{"brackets in strings", 200, bracketsInStrings, 1 << 20, OutcomeOK, bracketsInStrings},
		{"too deep, not ASCII", 200, `["é",` + deep + `]`, 1 << 20, OutcomeInvalidJSON, ``},
		{"deep at the limit, not ASCII", 200, "\t" + atLimitUTF8, 1 << 20, OutcomeOK, atLimitUTF8},
		// fastjson checks a string for control characters only after its
		// last escape, and not for UTF-8: these are checked before it.
		{"tab before an escape", 200, "{\"msg\":\"col1\tcol2 \\\"quoted\\\"\"}", 100, OutcomeInvalidJSON, ``},
		{"control char before an escape", 200, "\"\x01\\n\"", 100, OutcomeInvalidJSON, ``},
		{"control char in a key", 200, "{\"k\x02\\u0041\":1}", 100, OutcomeInvalidJSON, ``},
		{"newline between escapes", 200, "[\"\\t\n\\t\"]", 100, OutcomeInvalidJSON, ``},
		{"control char in a long run", 200, "[\"0123456789abcdef\x1f0123456789\\/\"]", 100, OutcomeInvalidJSON, ``},
		{"DEL", 200, "\"\x7f\\n\"", 100, OutcomeOK, "\"\x7f\\n\""},
		{"escaped controls", 200, `"\t\n\u0001\u001f\\"`, 100, OutcomeOK, `"\t\n\u0001\u001f\\"`},
		{"latin-1", 200, "{\"name\":\"caf\xe9\"}", 100, OutcomeInvalidJSON, ``},
		{"truncated sequence", 200, "\"\xc3\"", 100, OutcomeInvalidJSON, ``},
		{"overlong slash", 200, "\"\xc0\xaf\"", 100, OutcomeInvalidJSON, ``},
		{"encoded surrogate", 200, "\"\xed\xa0\x80\"", 100, OutcomeInvalidJSON, ``},
		{"above U+10FFFF", 200, "\"\xf4\x90\x80\x80\"", 100, OutcomeInvalidJSON, ``},
		{"invalid UTF-8 after an escape", 200, "[\"\\\"\xff\"]", 100, OutcomeInvalidJSON, ``},
		{"UTF-8", 200, "{\"name\":\"café ✓ 😀 \\u00e9\",\"\xef\xbf\xbd\":1}", 100, OutcomeOK, "{\"name\":\"café ✓ 😀 \\u00e9\",\"\xef\xbf\xbd\":1}"},
		{"pretty-printed", 200, "{\n\t\"a\": [\r\n\t\t1\n\t]\n}\n", 100, OutcomeOK, "{\n\t\"a\": [\r\n\t\t1\n\t]\n}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := checkBody(tc.status, []byte(tc.body), tc.max)
			if r.outcome != tc.want || string(r.body) != tc.kept || r.status != tc.status {
				t.Errorf("checkBody = %v %d %q, want %v %d %q", r.outcome, r.status, r.body, tc.want, tc.status, tc.kept)
			}
		})
	}
}

// A part body that fastjson alone would let through, with a raw control
// character or invalid UTF-8 in a string, fails only its part: the answer
// stays valid JSON in valid UTF-8.
func TestMergeBadStrings(t *testing.T) {
	for _, body := range []string{
		"{\"msg\":\"col1\tcol2 \\\"quoted\\\"\"}",
		"\"\x01\\n\"",
		"{\"k\x02\\u0041\":1}",
		"{\"name\":\"caf\xe9\"}",
		"[\"\\u00e9\xed\xa0\x80\"]",
	} {
		t.Run(strconv.Quote(body), func(t *testing.T) {
			parts := testParts("profile", "bad")
			res := []result{ok(`{"id":"42"}`), checkBody(200, []byte(body), 1<<20)}
			v := decide(parts, res, 200)
			out := appendAnswer(nil, parts, res, v, goldenAt, goldenTook)
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("invalid answer: %q", out)
			}
			var doc struct {
				Status string
				Data   map[string]json.RawMessage
				Errors map[string]struct{ Error string }
			}
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Status != "partial" || string(doc.Data["bad"]) != "null" || doc.Errors["bad"].Error != "invalid_json" {
				t.Errorf("answer %s, want the part failed as invalid_json", out)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	okR, to, dl, un := result{outcome: OutcomeOK}, result{outcome: OutcomeTimeout}, result{outcome: OutcomeDeadline}, result{outcome: OutcomeUnreachable}
	tests := []struct {
		name     string
		keys     []string
		res      []result
		partial  int
		status   string
		code     int
		succeded int
	}{
		{"all ok", []string{"a", "b!"}, []result{okR, okR}, 200, "success", 200, 2},
		{"optional failed", []string{"a", "b"}, []result{okR, un}, 200, "partial", 200, 1},
		{"optional failed, partial 206", []string{"a", "b"}, []result{okR, to}, 206, "partial", 206, 1},
		{"optional failed, partial 503", []string{"a", "b"}, []result{to, okR}, 503, "partial", 503, 1},
		{"all failed", []string{"a", "b"}, []result{un, to}, 200, "error", 502, 0},
		{"all timed out", []string{"a", "b"}, []result{dl, to}, 200, "error", 504, 0},
		{"required unreachable", []string{"a!", "b"}, []result{un, okR}, 200, "error", 502, 1},
		{"required timed out", []string{"a!", "b"}, []result{to, okR}, 200, "error", 504, 1},
		{"required deadline, optional unreachable", []string{"a!", "b"}, []result{dl, un}, 200, "error", 504, 0},
		{"two required, one unreachable", []string{"a!", "b!"}, []result{dl, un}, 200, "error", 502, 0},
		{"single part failed", []string{"a"}, []result{dl}, 200, "error", 504, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := decide(testParts(tc.keys...), tc.res, tc.partial)
			if statusNames[v.status] != tc.status || v.code != tc.code || v.succeeded != tc.succeded {
				t.Errorf("decide = %s %d (%d ok), want %s %d (%d ok)", statusNames[v.status], v.code, v.succeeded, tc.status, tc.code, tc.succeded)
			}
		})
	}
}
