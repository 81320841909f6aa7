package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestE2ETrickledHeadersCutOff: a client that sends its header one byte at
// a time is cut off at read_timeout, without the upstream hearing of it.
func TestE2ETrickledHeadersCutOff(t *testing.T) {
	s := startStub(t, "a", 0)
	gw := startGateway(t, fmt.Sprintf(`
[server]
read_timeout = "300ms"
[[services]]
name = "s"
  [[services.instances]]
  id = "a"
  addr = %q
[[routes]]
prefix = "/"
service = "s"
`, s.Addr()))
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
