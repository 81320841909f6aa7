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
