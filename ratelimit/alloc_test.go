//go:build !race

package ratelimit

import (
	"context"
	"testing"
)

func TestLocalAllowAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
	}{
		{"short key", "203.0.113.7"},
		{"long key", "2001:db8:85a3:8d3:1319:8a2e:370:7348/user-1234567890abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLocal(t, limitCfg(100, 50), nil)
			key := []byte(tc.key)
			l.Allow(context.Background(), key) // first sight: the key is copied once
			if n := testing.AllocsPerRun(1000, func() { l.Allow(context.Background(), key) }); n != 0 {
				t.Errorf("Allow on a tracked key allocates %v times per call, want 0", n)
			}
		})
	}
}
