package proxy

import (
	"fmt"
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
