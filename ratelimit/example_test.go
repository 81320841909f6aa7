package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/ratelimit"
)

func ExampleLimiter_Allow() {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := &config.RateLimit{Name: "per-client", Rate: 100, Burst: 2} // per = 1s: one every 10ms
	l, err := ratelimit.New(cfg, ratelimit.Options{Clock: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	ctx, key := context.Background(), []byte("203.0.113.7")
	for range 3 {
		d := l.Allow(ctx, key)
		fmt.Println(d.Allowed, d.Remaining, d.ResetAfter, d.RetryAfter)
	}
	now = now.Add(10 * time.Millisecond)
	d := l.Allow(ctx, key)
	fmt.Println(d.Allowed, d.Remaining, d.ResetAfter, d.RetryAfter)
	// Output:
	// true 1 10ms 0s
	// true 0 20ms 0s
	// false 0 20ms 10ms
	// true 0 20ms 0s
}
