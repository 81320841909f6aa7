package config

import "testing"

func TestReachesListener(t *testing.T) {
	for _, tt := range []struct {
		listen, addr string
		want         bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "localhost:8080", true},
		{"127.0.0.1:8080", "0.0.0.0:8080", true},
		{"0.0.0.0:8080", "127.0.0.1:8080", true},
		{"0.0.0.0:8080", "127.0.0.2:8080", true},
		{":8080", "localhost:8080", true},
		{"[::]:8080", "127.0.0.1:8080", true},
		{"[::1]:8080", "localhost:8080", true},
		{"127.0.0.1:8080", "127.0.0.1:8081", false},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{"127.0.0.1:8080", "10.0.0.5:8080", false},
		{"0.0.0.0:8080", "10.0.0.5:8080", false}, // may be this machine: unknown here
		{"10.0.0.5:8080", "localhost:8080", false},
	} {
		if got := reachesListener(tt.listen, tt.addr); got != tt.want {
			t.Errorf("reachesListener(%q, %q) = %v, want %v", tt.listen, tt.addr, got, tt.want)
		}
	}
}
