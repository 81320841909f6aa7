package lazyconn

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection, the first wrapped.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	w := Wrap(c)
	t.Cleanup(func() { w.Close(); peer.Close() })
	return w, peer
}

// countingConn counts the deadlines armed on it and keeps the last read
// deadline; onRead, when set, runs inside each read-deadline arm.
type countingConn struct {
	net.Conn
	reads, writes atomic.Int64
	lastRead      atomic.Pointer[time.Time]
	onRead        func(n int64)
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	n := c.reads.Add(1)
	c.lastRead.Store(&t)
	if c.onRead != nil {
		c.onRead(n)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.writes.Add(1)
	return c.Conn.SetWriteDeadline(t)
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// TestArms checks which deadline changes reach the connection.
func TestArms(t *testing.T) {
	base := time.Now().Add(time.Hour)
	tests := []struct {
		name  string
		steps []time.Duration // offsets from base; -1 = zero time
		arms  int64
	}{
		{"first arms", []time.Duration{0}, 1},
		{"later ones are lazy", []time.Duration{0, 1, 2, time.Second, time.Minute}, 1},
		{"earlier one arms", []time.Duration{time.Minute, 0}, 2},
		{"alternating idle and read", []time.Duration{60 * time.Second, 15 * time.Second, 61 * time.Second, 16 * time.Second, 62 * time.Second}, 2},
		{"zero when none is armed", []time.Duration{-1, -1}, 0},
		{"zero is lazy", []time.Duration{0, -1, 5}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := pair(t)
			cc := &countingConn{Conn: w.Conn}
			w.Conn = cc
			for _, s := range tt.steps {
				d := time.Time{}
				if s >= 0 {
					d = base.Add(s)
				}
				if err := w.SetReadDeadline(d); err != nil {
					t.Fatal(err)
				}
				if err := w.SetWriteDeadline(d); err != nil {
					t.Fatal(err)
				}
			}
			if r, wr := cc.reads.Load(), cc.writes.Load(); r != tt.arms || wr != tt.arms {
				t.Errorf("armed %d read and %d write deadlines, want %d each", r, wr, tt.arms)
			}
		})
	}
}

// TestSetDeadlineBoth: SetDeadline sets both directions, lazily.
func TestSetDeadlineBoth(t *testing.T) {
	w, _ := pair(t)
	cc := &countingConn{Conn: w.Conn}
	w.Conn = cc
	base := time.Now().Add(time.Hour)
	for _, d := range []time.Time{base, base.Add(time.Second), base.Add(-time.Minute)} {
		if err := w.SetDeadline(d); err != nil {
			t.Fatal(err)
		}
	}
	if r, wr := cc.reads.Load(), cc.writes.Load(); r != 2 || wr != 2 {
		t.Errorf("armed %d read and %d write deadlines, want 2 each (first, then earlier)", r, wr)
	}
}

// TestOffset: the stored form keeps "none" apart from any time, also the
// Unix epoch and times too far out for UnixNano.
func TestOffset(t *testing.T) {
	if got := offset(time.Time{}); got != 0 {
		t.Errorf("offset(zero) = %d, want 0 (none)", got)
	}
	if got := offset(time.Unix(0, 0)); got != 1 {
		t.Errorf("offset(Unix 0) = %d, want 1 (a past deadline)", got)
	}
	if got := offset(time.Now().Add(time.Duration(math.MaxInt64))); got <= offset(time.Now().Add(time.Hour)) {
		t.Errorf("offset(far future) = %d, want later than an hour from now", got)
	}
}

// TestReadSurvivesEarlyArm: the armed deadline fires before the one set
// later; the Read goes on and gets the data.
func TestReadSurvivesEarlyArm(t *testing.T) {
	w, peer := pair(t)
	if err := w.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := w.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil { // lazy: 30ms stays armed
		t.Fatal(err)
	}
	go func() {
		time.Sleep(150 * time.Millisecond) // well after the armed deadline
		peer.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	n, err := w.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("Read = %q, %v; want the late data", buf[:n], err)
	}
}

// TestReadTimesOut: once the deadline set has passed, Read fails with
// os.ErrDeadlineExceeded, also after lazy extensions.
func TestReadTimesOut(t *testing.T) {
	w, _ := pair(t)
	start := time.Now()
	_ = w.SetReadDeadline(start.Add(20 * time.Millisecond))
	_ = w.SetReadDeadline(start.Add(80 * time.Millisecond))
	_, err := w.Read(make([]byte, 1))
	if !isTimeout(err) {
		t.Fatalf("Read error %v, want a deadline error", err)
	}
	if el := time.Since(start); el < 80*time.Millisecond || el > time.Second {
		t.Fatalf("Read timed out after %v, want just after the 80ms deadline", el)
	}
	// The connection stays usable, as with net.Conn.
	_ = w.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := w.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("second Read error %v, want a deadline error", err)
	}
}

// TestShortenInterrupts: a deadline in the past, set while a Read blocks
// under a far one, ends the Read at once.
func TestShortenInterrupts(t *testing.T) {
	w, _ := pair(t)
	_ = w.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := w.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = w.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !isTimeout(err) {
			t.Fatalf("Read error %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read not interrupted")
	}
}

// TestZeroClears: clearing the deadline lets a Read outlive the one that
// was armed.
func TestZeroClears(t *testing.T) {
	w, peer := pair(t)
	_ = w.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_ = w.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		peer.Write([]byte("x"))
	}()
	if n, err := w.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v; want the byte", n, err)
	}
}

// TestWriteResumes: a Write blocked on a full socket buffer outlives the
// early armed deadline, and every byte arrives once, in order.
func TestWriteResumes(t *testing.T) {
	w, peer := pair(t)
	// Small buffers, so that the Write blocks well before its end.
	_ = w.Conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
	_ = peer.(*net.TCPConn).SetReadBuffer(16 << 10)
	cc := &countingConn{Conn: w.Conn}
	w.Conn = cc
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	_ = w.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	_ = w.SetWriteDeadline(time.Now().Add(10 * time.Second))
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(150 * time.Millisecond) // the Write is blocked by now
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(payload))))
		got <- b
	}()
	n, err := w.Write(payload)
	if err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(payload))
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("peer got %d bytes, not the payload", len(b))
	}
	if n := cc.writes.Load(); n < 2 {
		t.Fatalf("%d write deadline arms: the Write never outlived the early one", n)
	}
}

// TestWriteTimesOut: a Write that cannot finish by the deadline set fails
// with os.ErrDeadlineExceeded and reports what it wrote.
func TestWriteTimesOut(t *testing.T) {
	w, _ := pair(t)
	payload := make([]byte, 16<<20)
	start := time.Now()
	_ = w.SetWriteDeadline(start.Add(20 * time.Millisecond))
	_ = w.SetWriteDeadline(start.Add(60 * time.Millisecond))
	n, err := w.Write(payload)
	if !isTimeout(err) || n >= len(payload) {
		t.Fatalf("Write = %d, %v; want a short write and a deadline error", n, err)
	}
	if el := time.Since(start); el < 60*time.Millisecond {
		t.Fatalf("Write timed out after %v, before the 60ms deadline", el)
	}
}

// TestConcurrentSetters runs setters against a reader (for -race); the
// reader's last deadline, in the past, must end it.
func TestConcurrentSetters(t *testing.T) {
	w, peer := pair(t)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := w.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				_ = w.SetReadDeadline(time.Now().Add(time.Second + time.Duration(i%7)*10*time.Millisecond))
				_ = w.SetWriteDeadline(time.Now().Add(time.Second))
				if i%50 == 0 {
					peer.Write([]byte("ping"))
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-done:
		t.Fatalf("reader ended before the past deadline: %v", err)
	default:
	}
	_ = w.SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-done:
		if !isTimeout(err) {
			t.Fatalf("reader ended with %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader still blocked after a past deadline")
	}
}

// TestSetDuringArm: a setter that takes the lock-free path while a re-arm
// is arming a later deadline must still end with its own, earlier
// deadline armed (armWanted re-reads want after each arm).
func TestSetDuringArm(t *testing.T) {
	w, _ := pair(t)
	cc := &countingConn{Conn: w.Conn}
	w.Conn = cc
	start := time.Now()
	early, later, mid := start.Add(20*time.Millisecond), start.Add(time.Minute), start.Add(30*time.Second)
	_ = w.SetReadDeadline(early) // arm 1
	_ = w.SetReadDeadline(later) // lazy: early stays armed
	cc.onRead = func(n int64) {
		if n != 2 { // arm 2: the re-arm to later, after early fired
			return
		}
		done := make(chan struct{})
		go func() { // must not need the lock held by this arm
			_ = w.SetReadDeadline(mid)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("the concurrent set waited for the arm's lock")
		}
	}
	res := make(chan error, 1)
	go func() {
		_, err := w.Read(make([]byte, 1))
		res <- err
	}()
	waitFor(t, func() bool { return cc.reads.Load() >= 3 })
	if got := *cc.lastRead.Load(); !got.Equal(mid) {
		t.Errorf("armed %v after the race, want the set deadline %v", got.Sub(start), mid.Sub(start))
	}
	_ = w.SetReadDeadline(time.Now().Add(-time.Second))
	if err := <-res; !isTimeout(err) {
		t.Fatalf("Read error %v, want a deadline error", err)
	}
}

// stuckConn fails every Read and Write with a deadline error, as a
// *tls.Conn does after a write timeout.
type stuckConn struct {
	net.Conn
	calls atomic.Int64
}

func (c *stuckConn) Read([]byte) (int, error) {
	c.calls.Add(1)
	return 0, os.ErrDeadlineExceeded
}

func (c *stuckConn) Write([]byte) (int, error) {
	c.calls.Add(1)
	return 0, os.ErrDeadlineExceeded
}

func (c *stuckConn) SetReadDeadline(time.Time) error  { return nil }
func (c *stuckConn) SetWriteDeadline(time.Time) error { return nil }

// TestPermanentErrorNoSpin: a deadline error that re-arming cannot cure is
// returned after at most one retry, not retried until the deadline.
func TestPermanentErrorNoSpin(t *testing.T) {
	for _, write := range []bool{false, true} {
		sc := &stuckConn{}
		w := Wrap(sc)
		_ = w.SetDeadline(time.Now().Add(2 * time.Second)) // a spin would last this long
		var err error
		if write {
			_, err = w.Write([]byte("x"))
		} else {
			_, err = w.Read(make([]byte, 1))
		}
		if !isTimeout(err) || sc.calls.Load() > 2 {
			t.Errorf("write=%v: %v after %d calls, want a deadline error after at most 2", write, err, sc.calls.Load())
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5 s")
}

func BenchmarkSetReadDeadline(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, _ := ln.Accept()
		if c != nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	for _, bc := range []struct {
		name string
		c    net.Conn
	}{{"net.Conn", plain}, {"lazy", Wrap(plain)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.c.SetReadDeadline(time.Now().Add(15 * time.Second))
			}
		})
	}
}

// flakyListener fails its first accepts with errs, then accepts for real.
type flakyListener struct {
	net.Listener
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

// TestListenerRidesOutPassingErrors: out of file descriptors (and the like)
// is retried with a doubling pause; any other error is returned.
func TestListenerRidesOutPassingErrors(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	enfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ENFILE)}
	tests := []struct {
		name      string
		errs      []error
		wantWaits []time.Duration
		wantErr   error
	}{
		{"none", nil, nil, nil},
		{"out of descriptors", []error{emfile, emfile, enfile}, []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}, nil},
		{"capped at a second", []error{emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile, emfile}, []time.Duration{
			5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond,
			160 * time.Millisecond, 320 * time.Millisecond, 640 * time.Millisecond, time.Second}, nil},
		{"closed", []error{net.ErrClosed}, nil, net.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var slept, told []time.Duration
			l := Listener{
				Listener:         &flakyListener{Listener: raw, errs: tt.errs},
				OnTemporaryError: func(_ error, d time.Duration) { told = append(told, d) },
				sleep:            func(d time.Duration) { slept = append(slept, d) },
			}
			go func() {
				if c, err := net.Dial("tcp", raw.Addr().String()); err == nil {
					defer c.Close()
					time.Sleep(100 * time.Millisecond)
				}
			}()
			c, err := l.Accept()
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Accept: %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Accept: %v, want a connection after the passing errors", err)
			default:
				if _, ok := c.(*Conn); !ok {
					t.Errorf("accepted %T, want *lazyconn.Conn", c)
				}
				c.Close()
			}
			if !slices.Equal(slept, tt.wantWaits) || !slices.Equal(told, tt.wantWaits) {
				t.Errorf("slept %v, told %v, want %v", slept, told, tt.wantWaits)
			}
		})
	}
}
