package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/fastgate/fastgate/config"
)

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("198.51.100." + strconv.Itoa(i))
	}
	return keys
}

// BenchmarkLocalAllow: keys the store already tracks, from every P.
func BenchmarkLocalAllow(b *testing.B) {
	l := newLocal(b, limitCfg(100, 50), nil)
	keys := benchKeys(1024)
	for _, k := range keys {
		l.Allow(context.Background(), k)
	}
	var worker atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * 7919
		for pb.Next() {
			l.Allow(context.Background(), keys[i%len(keys)])
			i++
		}
	})
}

// BenchmarkLocalAllowNewKeys: every request a key never seen, in a full
// store, so each one evicts (the cost of a flood of distinct keys).
func BenchmarkLocalAllowNewKeys(b *testing.B) {
	l := newLocal(b, &config.RateLimit{Name: "x", Rate: 100, MaxKeys: 10000}, nil)
	var worker atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := strconv.AppendInt(nil, worker.Add(1), 10)
		buf = append(buf, '-')
		n := len(buf)
		for i := 0; pb.Next(); i++ {
			buf = strconv.AppendInt(buf[:n], int64(i), 10)
			l.Allow(context.Background(), buf)
		}
	})
}

// BenchmarkRedisAllow: one round trip per decision to a local redis-server.
func BenchmarkRedisAllow(b *testing.B) {
	srv := startRedis(b)
	l := newRedisLimiter(b, srv.addr, config.RateLimit{Name: "bench", Rate: 100, Burst: 50}, nil)
	keys := benchKeys(1024)
	var worker atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * 7919
		for pb.Next() {
			if d := l.Allow(context.Background(), keys[i%len(keys)]); d.StoreError {
				b.Fatal("store error")
			}
			i++
		}
	})
}
