package aggregate

import (
	"testing"
	"time"
)

// TestSettledSignal drives a one-part call's two references (the handler's
// and the part's) in both orders. Only the last part to settle may signal,
// and only while it holds its reference: a signal sent by a holder whose
// reference is already dropped could land after the call went back to the
// pool, and the next request's wait would return at once, abandoning every
// part ("deadline" in microseconds).
func TestSettledSignal(t *testing.T) {
	for _, tt := range []struct {
		name         string
		handlerFirst bool // the handler leaves (at its deadline) before the part settles
	}{
		{"handler leaves first", true},
		{"part settles first", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := mustNew(t, Spec{Name: "/x", Timeout: time.Second, Parts: []PartSpec{{Key: "a", Service: "s", Path: "/a"}}},
				func(string) Doer { return fixedDoer{[]byte(`{}`)} }, nil)
			c := e.newCall()
			s := &c.slots[0]
			c.pending.Store(1)
			c.refs.Store(2)
			s.deadline = time.Now().Add(time.Second)
			s.state.Store(slotRunning)
			if tt.handlerFirst {
				s.state.Store(slotAbandoned) // as answer does at the deadline
				c.unref()
				if n := len(c.settled); n != 0 {
					t.Fatalf("the handler's unref left %d signal(s) in a call the part may release", n)
				}
				s.do()
			} else {
				s.do()
				if n := len(c.settled); n != 1 {
					t.Fatalf("%d signals after the only part settled, want 1", n)
				}
				c.unref()
			}
			if refs, n, st := c.refs.Load(), len(c.settled), s.state.Load(); refs != 0 || n != 0 || st != slotIdle {
				t.Errorf("after both references: refs %d, %d signal(s) pending, slot state %d; want a released call (0, 0, idle)", refs, n, st)
			}
		})
	}
}

func TestHasPrivateDirective(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"private", true},
		{"public, max-age=60", false},
		{"max-age=60, No-Store", true},
		{`private="Set-Cookie", max-age=60`, true},
		{" no-cache ", true},
		{"no-transform, s-maxage=10", false},
		{"privateer", false},
		{"", false},
	} {
		t.Run(tt.v, func(t *testing.T) {
			if got := hasPrivateDirective([]byte(tt.v)); got != tt.want {
				t.Errorf("hasPrivateDirective(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
