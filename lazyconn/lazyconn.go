// Package lazyconn wraps a net.Conn so that moving a deadline later costs a
// mutex and a compare instead of a runtime timer update.
//
// An HTTP server sets up to three deadlines on a keep-alive connection per
// request (idle, read, write) and fasthttp's client two per upstream call;
// each is a time.Until, a lock of the poller's descriptor and a timer-heap
// update. Almost always the new deadline is later than the one in force,
// so Conn keeps the deadline armed on the connection and only records the
// new one. When the armed deadline fires before the one set, Read or Write
// re-arms and carries on: callers see a timeout only once the deadline
// they set has passed, as with a plain net.Conn. A deadline earlier than
// the armed one, or the first one, is armed at once, so shortening a
// deadline (to interrupt a blocked Read, say) works as before.
//
// The cost is one early wake-up per connection and direction when the
// armed deadline comes due, about once per timeout period.
package lazyconn

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Conn is a net.Conn with lazily armed deadlines. It is safe for
// concurrent use as its underlying Conn is; it must not be copied.
type Conn struct {
	net.Conn
	rd, wd deadline
}

// deadline is one direction's deadline, in Unix nanoseconds (0 = none).
type deadline struct {
	mu    sync.Mutex // guards want and armed; held while arming, so arms happen in the order of the calls
	want  int64      // set by the caller
	armed int64      // in force on the connection
}

// Wrap returns c with lazily armed deadlines. c must have no deadline set.
func Wrap(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read reads from the connection, re-arming the read deadline when the
// armed one fired before the deadline set.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err == nil || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !c.rearm(false) {
			return n, err
		}
	}
}

// Write writes p to the connection, re-arming the write deadline when the
// armed one fired before the deadline set, and then writing the rest.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !c.rearm(true) {
			return written, err
		}
	}
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.set(false, t); err != nil {
		return err
	}
	return c.set(true, t)
}

// SetReadDeadline sets the read deadline; a zero t means none.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.set(false, t) }

// SetWriteDeadline sets the write deadline; a zero t means none.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.set(true, t) }

// set records t as the wanted deadline and arms it only when the armed one
// would fire after t, or never.
func (c *Conn) set(write bool, t time.Time) error {
	d := &c.rd
	if write {
		d = &c.wd
	}
	w := nanos(t)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = w
	if d.armed != 0 && (w == 0 || d.armed <= w) || d.armed == 0 && w == 0 {
		return nil // fires no later than t, if at all; rearm moves it on
	}
	if err := c.arm(write, t); err != nil {
		return err
	}
	d.armed = w
	return nil
}

// rearm runs after the armed deadline fired: it arms the wanted deadline
// and reports true, or reports false when that one has passed as well.
func (c *Conn) rearm(write bool) bool {
	d := &c.rd
	if write {
		d = &c.wd
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var t time.Time
	if d.want != 0 {
		t = time.Unix(0, d.want)
		if !time.Now().Before(t) {
			return false
		}
	}
	if c.arm(write, t) != nil {
		return false
	}
	d.armed = d.want
	return true
}

func (c *Conn) arm(write bool, t time.Time) error {
	if write {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Listener wraps each accepted connection with Wrap.
type Listener struct{ net.Listener }

// Accept waits for and returns the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
