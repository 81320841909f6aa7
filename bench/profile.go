package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// runProfile starts stubs and the gateway with -pprof, drives proxy-small
// with wrk, and meanwhile fetches a CPU profile and a delta alloc profile
// into the profile dir, then prints `go tool pprof -top` of each.
func runProfile(ctx context.Context, c *cli, root string, stdout, stderr io.Writer) error {
	dir := c.profileDir
	if dir == "" {
		dir = filepath.Join(c.out, "profile")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	wrk := findTool(c.wrk, "wrk")
	if wrk == "" {
		return fmt.Errorf("wrk not found (make bench-deps installs it)")
	}
	work, err := os.MkdirTemp("", "fastgate-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin := c.gateway
	if bin == "" {
		bin = filepath.Join(work, "fastgate")
		fmt.Fprintln(stderr, "profile: building the gateway")
		if err := buildGateway(ctx, root, bin); err != nil {
			return err
		}
	}
	sc := scenarios()[0] // proxy-small
	ups, err := execStubs(ctx, 2, sc.RespBody, c.opts.StubLatency)
	if err != nil {
		return err
	}
	defer ups.Close()
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	s := &suite{
		opts:    c.opts,
		workDir: work,
		wrk:     wrk,
		peers:   map[string]peer{"gateway": gatewayPeer(bin, "-pprof", pprofAddr)},
		missing: map[string]string{},
		prog:    &progress{w: stderr},
	}
	t, reason := s.start(ctx, "gateway", work, ups, peerConfig{})
	if reason != "" {
		return fmt.Errorf("gateway: %s", reason)
	}
	defer t.proc.Stop(5 * time.Second)
	if err := waitReady(ctx, t.proc, pprofAddr, "/debug/pprof/", 10*time.Second); err != nil {
		return fmt.Errorf("pprof endpoint (-pprof %s): %w", pprofAddr, err)
	}
	script, err := writeWrkScript(work, sc)
	if err != nil {
		return err
	}

	secs := c.profileSeconds
	load := s.wrkRun(sc, script, t, time.Duration(secs+5)*time.Second)
	fmt.Fprintf(stderr, "profile: wrk %s for %ds against the gateway; profiling %ds\n", sc.Name, secs+5, secs)
	var wg sync.WaitGroup
	var wrkOut string
	var wrkErr error
	wg.Go(func() { _, wrkOut, wrkErr = load.run(ctx) })
	time.Sleep(2 * time.Second)
	profiles := []struct{ file, path string }{
		{"cpu.pprof", fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs)},
		{"allocs.pprof", fmt.Sprintf("/debug/pprof/allocs?seconds=%d", secs)},
	}
	errs := make([]error, len(profiles))
	var pw sync.WaitGroup
	for i, p := range profiles {
		pw.Go(func() {
			errs[i] = fetchTo(filepath.Join(dir, p.file), "http://"+pprofAddr+p.path, time.Duration(secs+30)*time.Second)
		})
	}
	pw.Wait()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if wrkErr != nil {
		return wrkErr
	}
	fmt.Fprintf(stdout, "## wrk during profiling\n\n```\n%s```\n\n", wrkOut)
	tops := []struct {
		title, file string
		args        []string
	}{
		{"CPU", "cpu.pprof", nil},
		{"CPU-cum", "cpu.pprof", []string{"-cum"}},
		{"alloc_space", "allocs.pprof", []string{"-sample_index=alloc_space"}},
		{"alloc_objects", "allocs.pprof", []string{"-sample_index=alloc_objects"}},
	}
	for _, tp := range tops {
		args := append([]string{"tool", "pprof", "-top", "-nodecount=25"}, tp.args...)
		args = append(args, filepath.Join(dir, tp.file))
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %v\n%s", err, out)
		}
		_ = os.WriteFile(filepath.Join(dir, "top-"+tp.title+".txt"), out, 0o644)
		fmt.Fprintf(stdout, "## %s profile (go tool pprof -top %s)\n\n```\n%s```\n\n", tp.title, filepath.Join(dir, tp.file), out)
	}
	fmt.Fprintf(stderr, "profile: wrote %s\n", dir)
	return nil
}

// fetchTo GETs url into path.
func fetchTo(path, url string, timeout time.Duration) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	c := &fasthttp.Client{ReadTimeout: timeout, MaxResponseBodySize: 256 << 20}
	if err := c.DoTimeout(req, resp, timeout); err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("fetch %s: status %d: %s", url, resp.StatusCode(), resp.Body())
	}
	return os.WriteFile(path, resp.Body(), 0o644)
}
