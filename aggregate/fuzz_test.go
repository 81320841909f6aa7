package aggregate

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzMerge: whatever the parts answer, the aggregate's answer is valid
// JSON, every part key is in "data", and a part kept as valid holds exactly
// the part's JSON.
func FuzzMerge(f *testing.F) {
	for _, seed := range [][4]string{
		{`{"a":1}`, `[1,2,3]`, `"s"`, `null`},
		{`<html>`, `{"a":`, ``, ` `},
		{`{"a":"\u00e9\"\\"}`, "\"\x01\"", `1e5`, `-0.0`},
		{`[[[[[[]]]]]]`, `{"":{"":{}}}`, `tru`, `0123`},
		{"\xff\xfe", `"\ud800"`, `{"a":1,}`, `[1,]`},
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
