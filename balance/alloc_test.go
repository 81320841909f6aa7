//go:build !race

package balance_test

import (
	"testing"

	"github.com/fastgate/fastgate/balance"
)

func TestPickAllocs(t *testing.T) {
	s := newService(t, 5, 1, 1)
	ins := s.Instances()
	ins[1].SetHealthy(false)
	for _, tc := range []struct {
		name  string
		tried uint64
	}{
		{"one down", 0},
		{"one down and one tried", balance.Tried(0, ins[0])},
		{"nothing left", balance.Tried(balance.Tried(0, ins[0]), ins[2])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, func() { s.Pick(tc.tried) }); n != 0 {
				t.Errorf("Pick allocates %v times per call, want 0", n)
			}
		})
	}
}
