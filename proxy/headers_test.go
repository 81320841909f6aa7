package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// TestAppendID: the counter is written in at least 12 lowercase hex
// digits after the seed's prefix, as "%s-%012x" would write it.
func TestAppendID(t *testing.T) {
	seed := [8]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}
	for _, next := range []uint64{1, 0xf, 0x10, 0xabcdef, 1<<48 - 1, 1 << 48, 1<<64 - 1} {
		t.Run(fmt.Sprintf("%#x", next), func(t *testing.T) {
			g := newIDGen(seed)
			g.n.Store(next - 1)
			want := fmt.Sprintf("deadbeef00010203-%012x", next)
			if got := string(g.appendID([]byte("x"))); got != "x"+want {
				t.Fatalf("appendID = %q, want %q", got, "x"+want)
			}
			if !requestIDPattern.MatchString(want) {
				t.Fatalf("%q does not match the e2e tests' id pattern", want)
			}
		})
	}
}

// TestAppendKeyValue: a client-chosen key part is kept up to maxKeyValue
// bytes, else replaced by a fixed-size hash that tells values apart.
func TestAppendKeyValue(t *testing.T) {
	long := strings.Repeat("k", maxKeyValue)
	tests := []struct {
		name, v, want string
	}{
		{"short", "alpha", "h:alpha"},
		{"at the bound", long, "h:" + long},
		{"over the bound", long + "1", ""},
		{"over the bound, other", long + "2", ""},
		{"8 KiB", strings.Repeat("x", 8<<10), ""},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendKeyValue([]byte("pre|"), "h:", "h#", []byte(tt.v)))
			if !strings.HasPrefix(got, "pre|") {
				t.Fatalf("%q: dst not kept", got)
			}
			got = got[len("pre|"):]
			switch {
			case tt.want != "" && got != tt.want:
				t.Errorf("got %q, want %q", got, tt.want)
			case tt.want == "" && (len(got) != 2+32 || !strings.HasPrefix(got, "h#")):
				t.Errorf("got %q, want h# and 32 hex digits", got)
			}
			if other, dup := seen[got]; dup {
				t.Errorf("%q and %q share the key %q", tt.name, other, got)
			}
			seen[got] = tt.name
			if again := string(appendKeyValue(nil, "h:", "h#", []byte(tt.v))); again != got {
				t.Errorf("not stable: %q then %q", got, again)
			}
		})
	}
}
