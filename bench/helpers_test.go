package main

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/fastgate/fastgate/stub"
)

// TestMain lets execStubs and the fasthttp reference peer re-execute the
// test binary as their child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "-stubs" || os.Args[1] == "-fasthttp-proxy") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startTestStub runs an in-process stub for the test's lifetime.
func startTestStub(t *testing.T, body int) string {
	t.Helper()
	s, err := stub.Start(stub.Options{BodySize: body})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.Addr()
}

// inProcessStubs is a stubLauncher for tests: the stubs share the test's
// process, so their CPU is not measured (PID 0).
func inProcessStubs(_ context.Context, n, body int, latency time.Duration) (*upstreams, error) {
	var servers []*stub.Server
	stop := func() error {
		for _, s := range servers {
			_ = s.Close()
		}
		return nil
	}
	u := &upstreams{stop: stop, count: func() (int64, error) {
		var n int64
		for _, s := range servers {
			n += s.Requests()
		}
		return n, nil
	}}
	for range n {
		s, err := stub.Start(stub.Options{BodySize: body, Latency: latency})
		if err != nil {
			_ = stop()
			return nil, err
		}
		servers = append(servers, s)
		u.Addrs = append(u.Addrs, s.Addr())
	}
	return u, nil
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
