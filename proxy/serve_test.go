package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
	"github.com/rs/zerolog"
)

// serveTestConfig is one route to one stub.
func serveTestConfig(t *testing.T, addr string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[[services]]
name = "s"
  [[services.instances]]
  id = "s-1"
  addr = %q
[[routes]]
prefix = "/"
service = "s"
`, addr)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestServeAfterShutdown: a Shutdown that wins the race with Serve (a
// signal during start-up) still ends it, and its listener is closed.
func TestServeAfterShutdown(t *testing.T) {
	g := mustNew(t, serveTestConfig(t, "127.0.0.1:1"), Options{Log: zerolog.Nop(), Access: io.Discard})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	select {
	case <-served:
	case <-time.After(e2eTimeout):
		ln.Close()
		t.Fatal("Serve still running after Shutdown")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Serve returned")
	}
}

// emfileListener fails its first accepts with EMFILE, as a process out of
// file descriptors sees them.
type emfileListener struct {
	net.Listener
	left atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.left.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeRidesOutEMFILE: running out of file descriptors pauses
// accepting; it does not end Serve (and every connection with it).
func TestServeRidesOutEMFILE(t *testing.T) {
	s := startStub(t, "s-1", 0)
	g := mustNew(t, serveTestConfig(t, s.Addr()), Options{Log: zerolog.Nop(), Access: io.Discard})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{Listener: raw}
	ln.left.Store(3)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		_ = g.Shutdown(ctx)
		<-served
	}()
	r := dialRaw(t, raw.Addr().String()).roundTrip(rawGet("/x"))
	if r.status != 200 {
		t.Fatalf("status %d after the accept errors, want 200", r.status)
	}
	select {
	case err := <-served:
		served <- err
		t.Fatalf("Serve returned %v after EMFILE", err)
	default:
	}
}

// countingListener counts the Write calls on the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestAnswerWrites: an answer of header and a 16 KiB body reaches the
// client's socket in two writes with the default write_buffer and in one
// with write_buffer = "32KiB". fasthttp sends a body larger than its write
// buffer with writev only to a bare *net.TCPConn, which the gateway's
// lazyconn wrapper hides, so the buffer decides.
func TestAnswerWrites(t *testing.T) {
	s := startStubWith(t, 16<<10)
	for _, tc := range []struct {
		name, server string
		writes       int64
	}{
		{"default 4KiB", "", 2},
		{"32KiB", "[server]\nwrite_buffer = \"32KiB\"\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tc.server + fmt.Sprintf("[[services]]\nname = \"s\"\n[[services.instances]]\nid = \"s-1\"\naddr = %q\n[[routes]]\nprefix = \"/\"\nservice = \"s\"\n", s)))
			if err != nil {
				t.Fatal(err)
			}
			g := mustNew(t, cfg, Options{Log: zerolog.Nop(), Access: io.Discard})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var writes atomic.Int64
			done := make(chan error, 1)
			go func() { done <- g.Serve(countingListener{ln, &writes}) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = g.Shutdown(ctx)
				<-done
			})
			c := dialRaw(t, ln.Addr().String())
			for i := range 3 {
				before := writes.Load()
				r := c.roundTrip(rawGet("/x"))
				if r.status != 200 || len(r.body) < 16<<10 {
					t.Fatalf("answer %d: status %d, %d bytes", i, r.status, len(r.body))
				}
				if n := writes.Load() - before; n != tc.writes {
					t.Errorf("answer %d of %d bytes took %d writes, want %d", i, len(r.body), n, tc.writes)
				}
			}
		})
	}
}

// startStubWith starts a stub padding its answers to body bytes and
// returns its address.
func startStubWith(t *testing.T, body int) string {
	t.Helper()
	s, err := stub.Start(stub.Options{ID: "big", Addr: "127.0.0.1:0", BodySize: body})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.Addr()
}
