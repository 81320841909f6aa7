package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the flusher and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAsyncWriterKeepsEveryLineInOrder(t *testing.T) {
	var dst lockedBuffer
	w := NewAsyncWriter(&dst, 64, time.Hour) // tiny buffers: many swaps
	var want strings.Builder
	for i := range 200 {
		line := fmt.Sprintf("line %03d\n", i)
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			time.Sleep(10 * time.Microsecond) // let the flusher keep up
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := dst.String()
	// Lines may be dropped only when the flusher lags; all kept lines must
	// be whole and in order, and drops must be counted.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if int64(len(lines))+w.Dropped() != 200 {
		t.Fatalf("%d lines written + %d dropped != 200", len(lines), w.Dropped())
	}
	prev := -1
	for _, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l, "line %03d", &n); err != nil || n <= prev {
			t.Fatalf("line %q out of order or torn (after %d)", l, prev)
		}
		prev = n
	}
	if _, err := w.Write([]byte("late\n")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	release chan struct{}
	n       int
	mu      sync.Mutex
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	b.n += len(p)
	b.mu.Unlock()
	return len(p), nil
}

// TestAsyncWriterNeverBlocks: with the destination stuck, Write returns at
// once and counts what it had to drop.
func TestAsyncWriterNeverBlocks(t *testing.T) {
	dst := &blockingWriter{release: make(chan struct{})}
	w := NewAsyncWriter(dst, 100, time.Millisecond)
	line := []byte(strings.Repeat("x", 49) + "\n")
	start := time.Now()
	for range 1000 {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("1000 writes took %v with a stuck destination", d)
	}
	if w.Dropped() < 990 {
		t.Fatalf("dropped %d of 1000 with room for at most 4 lines", w.Dropped())
	}
	close(dst.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if dst.n == 0 || dst.n%len(line) != 0 {
		t.Fatalf("destination got %d bytes, want whole lines", dst.n)
	}
}

func TestAsyncWriterDropsOversizedLine(t *testing.T) {
	var dst lockedBuffer
	w := NewAsyncWriter(&dst, 16, time.Hour)
	_, _ = w.Write([]byte("0123456789abcdefXYZ\n"))
	_, _ = w.Write([]byte("ok\n"))
	_ = w.Close()
	if dst.String() != "ok\n" || w.Dropped() != 1 {
		t.Fatalf("got %q, dropped %d", dst.String(), w.Dropped())
	}
}

// TestAsyncWriterCloseTimeout: with a destination that has stopped taking
// writes, CloseTimeout returns at its bound with ErrLogStuck (a process
// must exit though its stdout reader hangs); with one that works, it
// flushes and returns nil.
func TestAsyncWriterCloseTimeout(t *testing.T) {
	t.Run("stuck", func(t *testing.T) {
		dst := &blockingWriter{release: make(chan struct{})}
		defer close(dst.release)
		w := NewAsyncWriter(dst, 100, time.Millisecond)
		if _, err := w.Write([]byte("line\n")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := w.CloseTimeout(100 * time.Millisecond); err != ErrLogStuck {
			t.Fatalf("CloseTimeout: %v, want ErrLogStuck", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("CloseTimeout took %v", d)
		}
	})
	t.Run("working", func(t *testing.T) {
		var dst lockedBuffer
		w := NewAsyncWriter(&dst, 100, time.Hour)
		if _, err := w.Write([]byte("line\n")); err != nil {
			t.Fatal(err)
		}
		if err := w.CloseTimeout(5 * time.Second); err != nil {
			t.Fatalf("CloseTimeout: %v", err)
		}
		if dst.String() != "line\n" {
			t.Fatalf("destination got %q, want the buffered line", dst.String())
		}
	})
}
