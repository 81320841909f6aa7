package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
)

func TestShardSizes(t *testing.T) {
	for _, tc := range []struct {
		maxKeys, wantShards int
	}{
		{1, 1}, {5, 5}, {64, 64}, {65, 64}, {1000, 64}, {100000, 64},
	} {
		t.Run(strconv.Itoa(tc.maxKeys), func(t *testing.T) {
			s := newLocalStore(tc.maxKeys, maxShards)
			total := 0
			for i := range s.shards {
				if s.shards[i].max < 1 {
					t.Errorf("shard %d holds at most %d keys", i, s.shards[i].max)
				}
				total += s.shards[i].max
			}
			if len(s.shards) != tc.wantShards || total != tc.maxKeys {
				t.Errorf("%d shards holding %d keys, want %d shards holding %d", len(s.shards), total, tc.wantShards, tc.maxKeys)
			}
		})
	}
}

// TestEvict checks the victim on a one-shard store of 8 keys, where the
// sample covers the whole shard.
func TestEvict(t *testing.T) {
	const now = 1000
	for _, tc := range []struct {
		name   string
		tats   []int64 // keys k0..k7
		victim string
	}{
		{"the idle key, among busy ones", []int64{1500, 1200, 1900, 999, 1300, 2000, 1100, 1400}, "k3"},
		{"a key exactly full is idle", []int64{1500, 1200, 1900, 1001, 1300, 1000, 1100, 1400}, "k5"},
		{"none idle: the least debt", []int64{1500, 1200, 1900, 1700, 1300, 2000, 1010, 1400}, "k6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLocalStore(8, 1)
			sh := &s.shards[0]
			for i, tat := range tc.tats {
				sh.insert("k"+strconv.Itoa(i), tat, now)
			}
			sh.insert("new", 1010, now)
			if _, ok := sh.idx[tc.victim]; ok || len(sh.idx) != 8 {
				t.Fatalf("%s kept (%d keys): %v", tc.victim, len(sh.idx), sh.idx)
			}
			for k, i := range sh.idx {
				want := int64(1010)
				if k != "new" {
					want = tc.tats[k[1]-'0']
				}
				if sh.tat[i] != want {
					t.Errorf("%s: TAT %d, want %d", k, sh.tat[i], want)
				}
			}
		})
	}
}

// flood makes one request for each of n distinct keys, advancing clk by
// step every 1000 keys.
func flood(l *Limiter, clk *fakeClock, prefix string, n int, step time.Duration) {
	buf := make([]byte, 0, 32)
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], prefix...), int64(i), 10)
		l.Allow(context.Background(), buf)
		if i%1000 == 999 {
			clk.Advance(step)
		}
	}
}

// TestFloodBounded sends 10^5 distinct keys to a store of 10^4, first all
// busy (the clock stands still), then again once they are all idle.
//
// Heap bound: a tracked key costs its string (16 B size class here), a map
// slot (16 B string header + 4 B slot + 1 control byte, at most 7/8 full and
// up to 2x slack after growth: < 64 B) and a TAT (8 B, up to 2x slack in the
// slice): about 100 B (measured: 90-107 B). 10^4 keys -> about 1 MB; the
// bound is 2 MB, while keeping all 2x10^5 keys would take about 20 MB.
func TestFloodBounded(t *testing.T) {
	const maxKeys, keys = 10000, 100000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	clk := newFakeClock()
	l := newLocal(t, &config.RateLimit{Name: "x", Rate: 100, Burst: 50, MaxKeys: maxKeys}, clk)
	flood(l, clk, "busy-", keys, 0)
	if n := l.local.len(); n != maxKeys {
		t.Fatalf("after %d busy keys the store holds %d keys, want max_keys = %d", keys, n, maxKeys)
	}
	clk.Advance(time.Second)
	flood(l, clk, "idle-", keys, time.Millisecond)
	if n := l.local.len(); n != maxKeys {
		t.Fatalf("after %d more keys the store holds %d keys, want max_keys = %d", keys, n, maxKeys)
	}

	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap growth for %d tracked keys after %d distinct ones: %d KiB (%d B/key)", maxKeys, 2*keys, growth>>10, growth/maxKeys)
	if growth > 2<<20 {
		t.Errorf("heap grew by %d KiB, want under 2048 KiB", growth>>10)
	}
	runtime.KeepAlive(l)
}

// TestFloodKeepsBusyKey: a flood of distinct keys must not reset the bucket
// of a key that is being throttled.
func TestFloodKeepsBusyKey(t *testing.T) {
	clk := newFakeClock()
	l := newLocal(t, &config.RateLimit{Name: "x", Rate: 100, Burst: 50, MaxKeys: 1000}, clk)
	busy := []byte("203.0.113.7")
	for range 50 {
		l.Allow(context.Background(), busy)
	}
	if d := l.Allow(context.Background(), busy); d.Allowed {
		t.Fatalf("allowed past the burst: %+v", d)
	}
	flood(l, clk, "attacker-", 100000, time.Millisecond) // 100 x 1ms: 10 of the 50 refilled
	want := Decision{Allowed: true, Limit: 50, Remaining: 9, ResetAfter: 410 * time.Millisecond}
	if d := l.Allow(context.Background(), busy); d != want {
		t.Fatalf("after the flood: %+v, want %+v (49 remaining means the flood reset the bucket)", d, want)
	}
}
