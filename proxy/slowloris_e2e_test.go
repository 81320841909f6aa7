package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
)

// startOneRouteGateway starts a gateway with the given [server] settings
// and one route, "/", to one instance at addr (route timeout 10s).
func startOneRouteGateway(t *testing.T, server, addr string) *e2eGateway {
	t.Helper()
	return startGateway(t, fmt.Sprintf(`
[server]
%s
[[services]]
name = "s"
timeout = "10s"
  [[services.instances]]
  id = "a"
  addr = %q
[[routes]]
prefix = "/"
service = "s"
`, server, addr))
}

// TestE2ETrickledHeadersCutOff: a client that sends its header one byte at
// a time is cut off at read_timeout, without the upstream hearing of it.
func TestE2ETrickledHeadersCutOff(t *testing.T) {
	s := startStub(t, "a", 0)
	gw := startOneRouteGateway(t, `read_timeout = "300ms"`, s.Addr())
	c, err := net.DialTimeout("tcp", gw.addr, e2eTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closedAt := make(chan time.Duration, 1)
	go func() { // the reader notices the close (EOF, or a 408 and then EOF)
		_, _ = io.Copy(io.Discard, bufio.NewReader(c))
		closedAt <- time.Since(start)
	}()
	req := "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + strings.Repeat("a", 100) + "\r\n\r\n"
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			break // closed by the gateway: what we want
		}
		select {
		case d := <-closedAt:
			closedAt <- d
			i = len(req)
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case d := <-closedAt:
		if d < 250*time.Millisecond || d > 2*time.Second {
			t.Fatalf("connection closed after %v, want about read_timeout (300ms)", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a client trickling its header was never cut off")
	}
	if n := s.Requests(); n != 0 {
		t.Fatalf("the upstream saw %d requests", n)
	}
}

// TestE2EIdleKeepAliveClosed: a keep-alive connection left idle after an
// answer is closed at idle_timeout, whether that is shorter or longer than
// read_timeout. Connection deadlines are armed lazily (package lazyconn):
// when the idle time is the longer, the read deadline armed for the
// request fires first and must be re-armed, not taken for the idle one.
func TestE2EIdleKeepAliveClosed(t *testing.T) {
	s := startStub(t, "a", 0)
	tests := []struct {
		name          string
		read, idle    string
		atLeast, upTo time.Duration // when the close may come, after the answer
	}{
		{"idle shorter than read", "5s", "300ms", 250 * time.Millisecond, 1500 * time.Millisecond},
		{"idle longer than read", "300ms", "1s", 900 * time.Millisecond, 1900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := startOneRouteGateway(t, fmt.Sprintf("read_timeout = %q\nidle_timeout = %q", tt.read, tt.idle), s.Addr())
			c := dialRaw(t, gw.addr)
			if r := c.roundTrip(rawGet("/x")); r.status != 200 {
				t.Fatalf("status %d, want 200", r.status)
			}
			start := time.Now()
			ok, how := c.closed() // waits up to 2s
			d := time.Since(start)
			if !ok {
				t.Fatalf("idle connection not closed: %s", how)
			}
			if d < tt.atLeast || d > tt.upTo {
				t.Fatalf("idle connection closed after %v, want between %v and %v", d, tt.atLeast, tt.upTo)
			}
		})
	}
}

// TestE2EWriteTimeoutCutsNonReader: a client that stops reading a large
// answer is cut off at write_timeout instead of holding the connection and
// the answer's memory for as long as it likes.
func TestE2EWriteTimeoutCutsNonReader(t *testing.T) {
	const size = 32 << 20 // well over loopback's socket buffers
	s, err := stub.Start(stub.Options{ID: "big", Addr: "127.0.0.1:0", BodySize: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	gw := startOneRouteGateway(t, `write_timeout = "300ms"`, s.Addr())
	c, err := net.DialTimeout("tcp", gw.addr, e2eTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, rawGet("/big")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // not reading: the gateway's write blocks
	_ = c.SetReadDeadline(time.Now().Add(e2eTimeout))
	n, err := io.Copy(io.Discard, c)
	if n >= size {
		t.Fatalf("the whole answer (%d bytes) arrived after the client stalled past write_timeout", n)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after %d bytes: %v, want EOF or a reset (connection closed by the gateway)", n, err)
	}
	if s.Requests() != 1 {
		t.Fatalf("upstream saw %d requests, want 1", s.Requests())
	}
}
