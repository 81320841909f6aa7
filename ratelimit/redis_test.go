package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
)

// redisServer is a redis-server process on a loopback port, for one test.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free loopback port and stops it when
// the test ends. It skips the test when redis-server is not installed.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH (Debian package redis-server; `make test` installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &redisServer{t: t, addr: addr, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// start runs redis-server on s.addr and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := ping(s.addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("redis-server on %s not answering after 5s: %v", s.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops redis-server at once (SIGKILL), as a crash would.
func (s *redisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// do sends one inline command and returns the first reply line.
func (s *redisServer) do(command string) string {
	s.t.Helper()
	reply, err := roundTrip(s.addr, command)
	if err != nil {
		s.t.Fatalf("redis %q: %v", command, err)
	}
	return reply
}

func ping(addr string) error {
	reply, err := roundTrip(addr, "PING")
	if err == nil && reply != "+PONG" {
		err = fmt.Errorf("PING answered %q", reply)
	}
	return err
}

func roundTrip(addr, command string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", command); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// stalls checks that decisions take under a bound. A loaded test machine
// (-race, packages tested in parallel on 2 cores) can deschedule a goroutine
// for a few hundred ms: two decisions over the bound are forgiven, none
// over 500ms (half the 1s RedisTimeout the tests use, so a decision that
// waited on Redis would show).
type stalls int

func (s *stalls) check(t testing.TB, i int, took, bound time.Duration) {
	t.Helper()
	if took <= bound {
		return
	}
	if *s++; *s > 2 || took > 500*time.Millisecond {
		t.Errorf("request %d took %v, want under %v", i, took, bound)
	} else {
		t.Logf("request %d took %v, over %v (forgiven as a scheduler stall)", i, took, bound)
	}
}

// stateLog records OnStoreState calls. Safe for concurrent use.
type stateLog struct {
	mu    sync.Mutex
	calls []string
}

func (s *stateLog) record(healthy bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if healthy != (err == nil) {
		s.calls = append(s.calls, fmt.Sprintf("bad call (%v, %v)", healthy, err))
	}
	s.calls = append(s.calls, strconv.FormatBool(healthy))
}

func (s *stateLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.calls, ",")
}

// newRedisLimiter makes a redis Limiter with a 1s RedisTimeout, so that a
// slow moment of a loaded test machine is not taken for a failing Redis
// (TestRedisTimeout tests short timeouts).
func newRedisLimiter(t testing.TB, addr string, cfg config.RateLimit, states *stateLog) *Limiter {
	t.Helper()
	cfg.Backend, cfg.RedisAddr = "redis", addr
	o := Options{RedisTimeout: time.Second}
	if states != nil {
		o.OnStoreState = states.record
	}
	l, err := New(&cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestRedisSharedLimit: two replicas on one Redis share one burst.
func TestRedisSharedLimit(t *testing.T) {
	srv := startRedis(t)
	cfg := config.RateLimit{Name: "shared", Rate: 1, Per: dur(time.Minute), Burst: 10}
	states := &stateLog{}
	a := newRedisLimiter(t, srv.addr, cfg, states)
	b := newRedisLimiter(t, srv.addr, cfg, states)
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		l := a
		if i%2 == 0 {
			l = b
		}
		d := l.Allow(ctx, []byte("203.0.113.7"))
		if !d.Allowed || d.StoreError || d.Limit != 10 || d.Remaining != 10-i || d.RetryAfter != 0 {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, 10-i)
		}
		if wantReset := time.Duration(i) * time.Minute; d.ResetAfter > wantReset || d.ResetAfter < wantReset-time.Second {
			t.Errorf("request %d: ResetAfter %v, want about %v", i, d.ResetAfter, wantReset)
		}
	}
	for _, l := range []*Limiter{a, b} {
		d := l.Allow(ctx, []byte("203.0.113.7"))
		if d.Allowed || d.StoreError || d.Remaining != 0 || d.RetryAfter <= 59*time.Second || d.RetryAfter > time.Minute {
			t.Fatalf("past the shared burst: %+v, want denied, retry in about 1m", d)
		}
	}
	if d := b.Allow(ctx, []byte("198.51.100.1")); !d.Allowed || d.Remaining != 9 {
		t.Errorf("another key: %+v, want allowed with 9 remaining", d)
	}
	other := newRedisLimiter(t, srv.addr, config.RateLimit{Name: "other", Rate: 1, Per: dur(time.Minute), Burst: 10}, nil)
	if d := other.Allow(ctx, []byte("203.0.113.7")); !d.Allowed || d.Remaining != 9 {
		t.Errorf("same key, another limit: %+v, want allowed with 9 remaining", d)
	}

	// The key is named after the limit and expires when its bucket is full.
	pttl, err := strconv.Atoi(strings.TrimPrefix(srv.do("PTTL fastgate:rl:shared:203.0.113.7"), ":"))
	if err != nil || pttl <= 9*60*1000 || pttl > 10*60*1000 {
		t.Errorf("PTTL of the bucket: %d (%v), want about 10m in ms", pttl, err)
	}
	if s := states.String(); s != "" {
		t.Errorf("OnStoreState calls with Redis up: %s", s)
	}
}

// TestRedisRefill uses T = 100ms so that refill is observed in real time.
func TestRedisRefill(t *testing.T) {
	srv := startRedis(t)
	l := newRedisLimiter(t, srv.addr, config.RateLimit{Name: "refill", Rate: 10, Per: dur(time.Second), Burst: 2}, nil)
	ctx, key := context.Background(), []byte("k")
	for i := range 2 {
		if d := l.Allow(ctx, key); !d.Allowed {
			t.Fatalf("request %d of the burst: %+v", i+1, d)
		}
	}
	d := l.Allow(ctx, key)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond {
		t.Fatalf("past the burst: %+v, want denied, retry within 100ms", d)
	}
	time.Sleep(d.RetryAfter + time.Millisecond)
	if d := l.Allow(ctx, key); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after RetryAfter: %+v, want allowed with 0 remaining", d)
	}
	pttl, err := strconv.Atoi(strings.TrimPrefix(srv.do("PTTL fastgate:rl:refill:k"), ":"))
	if err != nil || pttl < 100 || pttl > 200 {
		t.Errorf("PTTL = %d (%v), want about 200ms (the bucket is full again then)", pttl, err)
	}
	time.Sleep(250 * time.Millisecond) // > 2 x 100ms: full again
	if d := l.Allow(ctx, key); !d.Allowed || d.Remaining != 1 || d.ResetAfter > 100*time.Millisecond {
		t.Fatalf("after the reset time: %+v, want allowed with 1 remaining, full in 100ms", d)
	}
}

// TestRedisDown kills Redis mid-test and brings it back on the same port.
func TestRedisDown(t *testing.T) {
	for _, tc := range []struct {
		onStoreError string
		allowed      bool
	}{
		{"allow", true},
		{"deny", false},
	} {
		t.Run(tc.onStoreError, func(t *testing.T) {
			srv := startRedis(t)
			states := &stateLog{}
			cfg := config.RateLimit{Name: "down", Rate: 1, Per: dur(time.Minute), Burst: 1000, OnStoreError: tc.onStoreError}
			l := newRedisLimiter(t, srv.addr, cfg, states)
			ctx, key := context.Background(), []byte("k")
			if d := l.Allow(ctx, key); !d.Allowed || d.StoreError {
				t.Fatalf("Redis up: %+v", d)
			}

			srv.kill()
			var slow stalls
			for i := range 50 {
				start := time.Now()
				d := l.Allow(ctx, key)
				slow.check(t, i, time.Since(start), 200*time.Millisecond)
				if !d.StoreError || d.Allowed != tc.allowed {
					t.Fatalf("request %d with Redis down: %+v, want StoreError and Allowed=%v", i, d, tc.allowed)
				}
				if i%10 == 0 {
					time.Sleep(probeEvery) // let some requests probe Redis too
				}
			}
			if s := states.String(); s != "false" {
				t.Fatalf("OnStoreState calls after 50 failing requests: [%s], want [false]", s)
			}

			srv.start()
			deadline := time.Now().Add(5 * time.Second)
			for l.Allow(ctx, key).StoreError {
				if time.Now().After(deadline) {
					t.Fatalf("still failing 5s after Redis came back; OnStoreState calls: [%s]", states)
				}
				time.Sleep(10 * time.Millisecond)
			}
			for range 10 {
				if d := l.Allow(ctx, key); d.StoreError || !d.Allowed {
					t.Fatalf("Redis back: %+v", d)
				}
			}
			if s := states.String(); s != "false,true" {
				t.Fatalf("OnStoreState calls: [%s], want [false,true]", s)
			}
		})
	}
}

// TestRedisTimeout: a Redis that accepts connections and never answers
// costs one RedisTimeout, then follows on_store_error at once.
func TestRedisTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { // read, never answer, until the client gives up
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	states := &stateLog{}
	cfg := config.RateLimit{Name: "slow", Rate: 10, Backend: "redis", RedisAddr: ln.Addr().String(), OnStoreError: "deny"}
	l, err := New(&cfg, Options{OnStoreState: states.record, RedisTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var slow stalls
	for i := range 20 {
		start := time.Now()
		d := l.Allow(context.Background(), []byte("k"))
		if took := time.Since(start); i == 0 && (took < 50*time.Millisecond || took > 500*time.Millisecond) {
			t.Errorf("first request took %v, want the 50ms RedisTimeout", took)
		} else if i > 0 {
			slow.check(t, i, took, 40*time.Millisecond) // no more timeouts to wait
		}
		if !d.StoreError || d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("request %d: %+v, want a denying StoreError", i, d)
		}
	}
	if s := states.String(); s != "false" {
		t.Errorf("OnStoreState calls: [%s], want [false]", s)
	}
}

// TestRedisConcurrent: many goroutines on two replicas never exceed the
// shared burst (and race-detect the health tracking).
func TestRedisConcurrent(t *testing.T) {
	srv := startRedis(t)
	cfg := config.RateLimit{Name: "conc", Rate: 1, Per: dur(time.Minute), Burst: 25}
	replicas := []*Limiter{newRedisLimiter(t, srv.addr, cfg, nil), newRedisLimiter(t, srv.addr, cfg, nil)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowedN, errs := 0, 0
	for g := range 8 {
		wg.Go(func() {
			for range 10 {
				d := replicas[g%2].Allow(context.Background(), []byte("k"))
				mu.Lock()
				if d.Allowed && !d.StoreError {
					allowedN++
				}
				if d.StoreError {
					errs++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowedN != 25 || errs != 0 {
		t.Errorf("80 concurrent requests: %d allowed, %d store errors; want exactly 25 allowed", allowedN, errs)
	}
}
