//go:build !race

package balance_test

import (
	"testing"

	"github.com/fastgate/fastgate/balance"
)

// TestPickWithBreakersAllocs: a pick that looks past an open breaker, an
// exhausted half-open one and a health-down instance allocates nothing.
func TestPickWithBreakersAllocs(t *testing.T) {
	s := newTroubledService(t)
	ins := s.Instances()
	for _, tc := range []struct {
		name  string
		tried uint64
	}{
		{"troubled", 0},
		{"troubled and i0 tried", balance.Tried(0, ins[0])},
		{"nothing left", balance.Tried(balance.Tried(0, ins[0]), ins[4])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, func() { s.Pick(tc.tried) }); n != 0 {
				t.Errorf("Pick allocates %v times per call, want 0", n)
			}
		})
	}
}
