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
	"syscall"
	"time"
)

// Conn is a net.Conn with lazily armed deadlines. It is safe for
// concurrent use as its underlying Conn is; it must not be copied.
type Conn struct {
	net.Conn
	rd, wd deadline
}

// deadline is one direction's deadline, as a monotonic offset from epoch in
// nanoseconds (0 = none; a deadline at or before epoch is stored as 1).
// want and armed are atomics so that the common case, a deadline later
// than the armed one, takes no lock; arming, which is rarer, is serialized
// by mu and re-checks want after each arm, so a concurrent set that saw a
// stale armed value cannot leave a later deadline armed than the one set.
type deadline struct {
	mu    sync.Mutex   // held while arming
	want  atomic.Int64 // set by the caller
	armed atomic.Int64 // in force on the connection
}

// epoch is the origin of the stored deadlines. Offsets from it keep the
// monotonic clock reading of the callers' times, so wall-clock steps move
// no deadline. It is set once, at package initialization.
var epoch = time.Now()

// Wrap returns c with lazily armed deadlines. c must have no deadline set
// and should be the raw connection, with TLS above the wrapper: a
// *tls.Conn's write timeouts are permanent, so below it an early arm would
// break the TLS stream. The wrapper does not promote optional methods of c,
// such as *net.TCPConn's SetKeepAlive or ReadFrom.
func Wrap(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read reads from the connection, re-arming the read deadline when the
// armed one fired before the deadline set.
func (c *Conn) Read(p []byte) (int, error) {
	retried := false // a retry for which nothing was re-armed
	for {
		n, err := c.Conn.Read(p)
		if err == nil || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		rearmed, ok := c.rearm(false)
		if !ok || !rearmed && retried {
			return n, err
		}
		retried = !rearmed
	}
}

// Write writes p to the connection, re-arming the write deadline when the
// armed one fired before the deadline set, and then writing the rest.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	retried := false // a retry, without progress, for which nothing was re-armed
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		rearmed, ok := c.rearm(true)
		if !ok || !rearmed && retried && n == 0 {
			return written, err
		}
		retried = !rearmed
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
	w := offset(t)
	d.want.Store(w)
	if a := d.armed.Load(); a != 0 && (w == 0 || a <= w) || a == 0 && w == 0 {
		return nil // fires no later than t, if at all; rearm moves it on
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return c.armWanted(write, d)
}

// rearm runs after a deadline error. ok is false when the wanted deadline
// has passed: the error is the caller's. Otherwise the wanted deadline is
// armed (rearmed true) unless it already was: then the error came from a
// deadline replaced meanwhile, or is permanent (a *tls.Conn's), and Read
// and Write retry once more at most without progress.
func (c *Conn) rearm(write bool) (rearmed, ok bool) {
	d := c.dir(write)
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.want.Load()
	if w != 0 && time.Since(epoch) >= time.Duration(w) {
		return false, false
	}
	if w == d.armed.Load() {
		return false, true
	}
	return true, c.armWanted(write, d) == nil
}

// armWanted arms want until it stays unchanged across the arm. d.mu is held.
func (c *Conn) armWanted(write bool, d *deadline) error {
	for {
		w := d.want.Load()
		var t time.Time
		if w != 0 {
			t = epoch.Add(time.Duration(w))
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

// offset is t's stored form: 0 for the zero time (no deadline), else its
// monotonic distance from epoch, at least 1 (t.Sub saturates far out).
func offset(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(int64(t.Sub(epoch)), 1)
}

// Listener wraps each accepted connection with Wrap, and rides out accept
// errors that pass.
type Listener struct {
	net.Listener

	// OnTemporaryError, when set, is told of each accept error that Accept
	// retries, and of the pause before the retry.
	OnTemporaryError func(err error, wait time.Duration)

	sleep func(time.Duration) // time.Sleep; tests replace it
}

// Accept waits for and returns the next connection, wrapped.
//
// An error that ends by itself (out of file descriptors, EMFILE or ENFILE,
// which connections closing cure; ENOBUFS, ENOMEM) is retried after a pause
// that doubles from 5 ms to 1 s, as net/http's server does. fasthttp's
// Serve returns on any accept error but a timeout, which would end the
// whole server, every client connection with it, at the first burst of
// connections over the descriptor limit. Other errors (the listener
// closed) are returned.
func (l Listener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return Wrap(c), nil
		}
		if !passing(err) {
			return nil, err
		}
		wait = min(max(2*wait, 5*time.Millisecond), time.Second)
		if l.OnTemporaryError != nil {
			l.OnTemporaryError(err, wait)
		}
		if l.sleep != nil {
			l.sleep(wait)
		} else {
			time.Sleep(wait)
		}
	}
}

// passing reports an accept error that ends by itself.
func passing(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
