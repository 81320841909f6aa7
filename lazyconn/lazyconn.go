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
	"sync/atomic"
	"time"
)

// Conn is a net.Conn with lazily armed deadlines. It is safe for
// concurrent use as its underlying Conn is; it must not be copied.
type Conn struct {
	net.Conn
	rd, wd deadline
}

// deadline is one direction's deadline, in Unix nanoseconds (0 = none).
// want and armed are atomics so that the common case, a deadline later
// than the armed one, takes no lock; arming, which is rarer, is serialized
// by mu and re-checks want after each arm, so a concurrent set that saw a
// stale armed value cannot leave a later deadline armed than the one set.
type deadline struct {
	mu    sync.Mutex   // held while arming
	want  atomic.Int64 // set by the caller
	armed atomic.Int64 // in force on the connection
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
	d := c.dir(write)
	w := nanos(t)
	d.want.Store(w)
	if a := d.armed.Load(); a != 0 && (w == 0 || a <= w) || a == 0 && w == 0 {
		return nil // fires no later than t, if at all; rearm moves it on
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return c.armWanted(write, d)
}

// rearm runs after the armed deadline fired: it arms the wanted deadline
// and reports true, or reports false when that one has passed as well.
func (c *Conn) rearm(write bool) bool {
	d := c.dir(write)
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.want.Load(); w != 0 && time.Now().UnixNano() >= w {
		return false
	}
	return c.armWanted(write, d) == nil
}

// armWanted arms want until it stays unchanged across the arm. d.mu is held.
func (c *Conn) armWanted(write bool, d *deadline) error {
	for {
		w := d.want.Load()
		var t time.Time
		if w != 0 {
			t = time.Unix(0, w)
		}
		if err := c.arm(write, t); err != nil {
			return err
		}
		d.armed.Store(w)
		if d.want.Load() == w {
			return nil
		}
	}
}

func (c *Conn) dir(write bool) *deadline {
	if write {
		return &c.wd
	}
	return &c.rd
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
