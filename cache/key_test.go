package cache

import (
	"bytes"
	"slices"
	"testing"
)

func TestAppendSortedQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a=1", "a=1"},
		{"b=2&a=1", "a=1&b=2"},
		{"a=2&b=1&a=1", "a=2&a=1&b=1"},         // repeated names keep their order
		{"b&a=&a", "a=&a&b"},                   // "a=" and "a" share the name a
		{"&&b=1&&a=1&", "a=1&b=1"},             // empty parts dropped
		{"ab=1&a=2&a%3D=3", "a=2&a%3D=3&ab=1"}, // byte order, nothing decoded
		{"z=1&y=2&x=3&w=4", "w=4&x=3&y=2&z=1"},
		{"q=a=b&p=c", "p=c&q=a=b"}, // the name ends at the first '='
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, _ := appendSortedQuery([]byte("?"), []byte(tt.in), nil)
			if string(got) != "?"+tt.want {
				t.Fatalf("%q, want %q", got[1:], tt.want)
			}
		})
	}
}

func TestPrimaryKey(t *testing.T) {
	var a, b keyBuf
	a.buildPrimary(methodGet, []byte("API.Example.com"), []byte("/x"), []byte("b=1&a=2"))
	b.buildPrimary(methodGet, []byte("api.example.com"), []byte("/x"), []byte("a=2&b=1"))
	if !bytes.Equal(a.pk, b.pk) || string(a.pk) != "Gapi.example.com/x?a=2&b=1" {
		t.Fatalf("keys %q and %q, want both Gapi.example.com/x?a=2&b=1", a.pk, b.pk)
	}
}

// FuzzSortedQuery: canonicalization never panics, is idempotent, keeps the
// multiset of non-empty parameters and the order of those sharing a name.
func FuzzSortedQuery(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "b=2&a=1&a=0", "&&", "a&a=&=a&=", "x=%26&y=\x00", "k=v&k=w&j"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		once, _ := appendSortedQuery(nil, []byte(q), nil)
		twice, _ := appendSortedQuery(nil, once, nil)
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent: %q -> %q -> %q", q, once, twice)
		}
		in, out := parts(q), parts(string(once))
		if !slices.Equal(sorted(in), sorted(out)) {
			t.Fatalf("parameters changed: %q -> %q", q, once)
		}
		for _, name := range in {
			if !slices.Equal(sameName(in, name), sameName(out, name)) {
				t.Fatalf("order of %q parameters changed: %q -> %q", name, q, once)
			}
		}
	})
}

func parts(q string) []string {
	var ps []string
	for p := range bytes.SplitSeq([]byte(q), []byte("&")) {
		if len(p) > 0 {
			ps = append(ps, string(p))
		}
	}
	return ps
}

func sorted(ps []string) []string { return slices.Sorted(slices.Values(ps)) }

// sameName returns the parameters of ps whose name is the name of p.
func sameName(ps []string, p string) []string {
	name, _, _ := bytes.Cut([]byte(p), []byte("="))
	var out []string
	for _, q := range ps {
		if n, _, _ := bytes.Cut([]byte(q), []byte("=")); bytes.Equal(n, name) {
			out = append(out, q)
		}
	}
	return out
}
