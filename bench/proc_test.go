package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestExecStubs runs the stubs in a child process, as the suite does.
func TestExecStubs(t *testing.T) {
	ups, err := execStubs(t.Context(), 2, 512, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ups.PID <= 0 || ups.PID == os.Getpid() || len(ups.Addrs) != 2 {
		t.Fatalf("upstreams %+v", ups)
	}
	if n, ok := ups.Requests(); !ok || n != 0 {
		t.Fatalf("count before any request = %d, %v", n, ok)
	}
	for i, addr := range ups.Addrs {
		t.Run(addr, func(t *testing.T) {
			code, body, err := fasthttp.GetTimeout(nil, "http://"+addr+"/x", time.Second)
			if err != nil || code != 200 || len(body) < 512 || !strings.Contains(string(body), `"b`+string(rune('1'+i))+`"`) {
				t.Fatalf("GET: %d %q %v", code, body, err)
			}
		})
	}
	// Health checks are not counted; each stub's GET is.
	_, _, _ = fasthttp.GetTimeout(nil, "http://"+ups.Addrs[0]+"/health", time.Second)
	for range 2 { // asked twice: the answers stay in step
		if n, ok := ups.Requests(); !ok || n != 2 {
			t.Fatalf("count = %d, %v; want 2", n, ok)
		}
	}
	if err := ups.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, ok := ups.Requests(); ok {
		t.Fatal("count after Close")
	}
	if _, _, err := fasthttp.GetTimeout(nil, "http://"+ups.Addrs[0]+"/", 200*time.Millisecond); err == nil {
		t.Fatal("stub still answers after Close")
	}
}

func TestProcStopKillsGroup(t *testing.T) {
	dir := t.TempDir()
	// The shell's child ignores nothing; a group kill must end both.
	p, err := startProc("sh", "/bin/sh", []string{"-c", "sleep 30 & sleep 30"}, filepath.Join(dir, "log"))
	if err != nil {
		t.Skip("no /bin/sh:", err)
	}
	time.Sleep(100 * time.Millisecond)
	procs, _ := readProcs("/proc")
	var child int
	for _, pr := range procs {
		if pr.PPID == p.PID() {
			child = pr.PID
		}
	}
	if child == 0 {
		t.Fatal("no child found")
	}
	start := time.Now()
	if err := p.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || time.Since(start) > 3*time.Second {
		t.Fatal("not stopped")
	}
	time.Sleep(100 * time.Millisecond)
	if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "stat")); err == nil && !strings.Contains(string(b), ") Z ") {
		t.Fatalf("child %d survived: %s", child, b)
	}
}

func TestWaitReadyReportsExit(t *testing.T) {
	dir := t.TempDir()
	p, err := startProc("false", "/bin/sh", []string{"-c", "echo 'bad config line 3'; exit 1"}, filepath.Join(dir, "log"))
	if err != nil {
		t.Skip("no /bin/sh:", err)
	}
	addr, _ := freeAddr()
	err = waitReady(t.Context(), p, addr, "/health", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "bad config line 3") {
		t.Fatalf("err = %v, want the process's last log line", err)
	}
}
