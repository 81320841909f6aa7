package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// proc is a child process the suite started, leading its own process group
// so that stopping it also stops the workers it forked (nginx).
//
// It is forbidden copying proc instances.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // path of the file receiving stdout and stderr
	done chan struct{}
	err  error // valid after done is closed
}

// startProc runs bin with args, stdout and stderr appended to logPath.
func startProc(name, bin string, args []string, logPath string) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id of the group leader.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	pgid := p.PID()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Workers left behind by a master that died first.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// LogTail returns the last n lines the process wrote, for error messages.
func (p *proc) LogTail(n int) string { return tailFile(p.log, n) }

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls http://addr+path, sending hdrs, until it answers 200,
// the process exits or timeout passes.
func waitReady(ctx context.Context, p *proc, addr, path string, timeout time.Duration, hdrs ...header) error {
	deadline := time.Now().Add(timeout)
	url := "http://" + addr + path
	var lastErr error
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before becoming ready (%v): %s", p.name, p.err, lastLine(p.LogTail(15)))
		}
		code, err := getStatus(url, hdrs)
		if err == nil && code == fasthttp.StatusOK {
			return nil
		}
		lastErr = err
		if err == nil {
			lastErr = fmt.Errorf("status %d", code)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	name := "target"
	if p != nil {
		name = p.name
	}
	return fmt.Errorf("%s not ready at %s after %v: %v", name, url, timeout, lastErr)
}

// getStatus GETs url with hdrs and returns the status.
func getStatus(url string, hdrs []header) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	for _, h := range hdrs {
		req.Header.Set(h.Name, h.Value)
	}
	if err := fasthttp.DoTimeout(req, resp, time.Second); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// upstreams are running stub instances.
type upstreams struct {
	Addrs []string
	// PID is the process serving them, for CPU accounting [0: not measured].
	PID  int
	stop func() error
	// count returns the requests the stubs have served so far, health
	// checks excluded [nil: not available].
	count func() (int64, error)
}

// Requests is the stubs' request count so far; ok is false when the
// stubs cannot tell.
func (u *upstreams) Requests() (n int64, ok bool) {
	if u == nil || u.count == nil {
		return 0, false
	}
	n, err := u.count()
	return n, err == nil
}

// Close stops the stubs.
func (u *upstreams) Close() error { return u.stop() }

// stubLauncher starts n stub instances answering bodySize bytes after latency.
type stubLauncher func(ctx context.Context, n, bodySize int, latency time.Duration) (*upstreams, error)

// execStubs runs the stubs in a child process (this binary in -stubs mode),
// so their CPU is neither the load generator's nor the proxy's. The child
// prints its addresses on one line and exits when its stdin closes.
func execStubs(ctx context.Context, n, bodySize int, latency time.Duration) (*upstreams, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-stubs", fmt.Sprint(n), "-stub-body", fmt.Sprint(bodySize), "-stub-latency", latency.String())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start stubs: %w", err)
	}
	stop := func() error {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
	// The first line announces the addresses; every later one answers a
	// "count" request.
	line := make(chan string, 1)
	counts := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		s, _ := r.ReadString('\n')
		line <- s
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				close(counts)
				return
			}
			select {
			case counts <- s:
			default: // nobody asked (a late answer): drop it
			}
		}
	}()
	var mu sync.Mutex
	count := func() (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		for drained := false; !drained; { // a late answer to an earlier request
			select {
			case _, ok := <-counts:
				if !ok {
					return 0, errors.New("stubs: exited")
				}
			default:
				drained = true
			}
		}
		if _, err := io.WriteString(stdin, "count\n"); err != nil {
			return 0, err
		}
		select {
		case s, ok := <-counts:
			v, found := strings.CutPrefix(strings.TrimSpace(s), "COUNT ")
			if !ok || !found {
				return 0, fmt.Errorf("stubs: bad count line %q", s)
			}
			return strconv.ParseInt(v, 10, 64)
		case <-time.After(2 * time.Second):
			return 0, errors.New("stubs: no count after 2s")
		}
	}
	select {
	case s := <-line:
		addrs := strings.Fields(strings.TrimPrefix(strings.TrimSpace(s), "STUBS"))
		if len(addrs) != n {
			_ = stop()
			return nil, fmt.Errorf("stubs: unexpected ready line %q", s)
		}
		return &upstreams{Addrs: addrs, PID: cmd.Process.Pid, stop: stop, count: count}, nil
	case <-time.After(10 * time.Second):
		_ = stop()
		return nil, errors.New("stubs: not ready after 10s")
	case <-ctx.Done():
		_ = stop()
		return nil, ctx.Err()
	}
}

// moduleRoot walks up from dir to the directory holding fastgate's go.mod.
func moduleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/fastgate/fastgate\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no fastgate go.mod above %s", dir)
		}
	}
}

// buildGateway runs `go build -o out .` in the module root.
func buildGateway(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %v\n%s", err, strings.TrimSpace(string(b)))
	}
	return nil
}
