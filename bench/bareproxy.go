package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/valyala/fasthttp"
)

// The fasthttp reference target: the least a proxy built on fasthttp does,
// a handler that only calls HostClient.Do on the next instance. No
// timeouts, forwarded headers, request ids, checks, access log, metrics or
// retries. It is not a peer to beat but the floor of the gateway's stack:
// its distance to nginx is the stack's, and the gateway's distance to it is
// the gateway's own work. Opt in with -targets ...,fasthttp,...
const referenceTarget = "fasthttp"

// notReference is why the reference target sits out a scenario with a
// feature: it has none.
const notReference = "reference only: a bare fasthttp proxy has no features"

func fasthttpPeer(bin string) peer {
	return peer{
		Name:       referenceTarget,
		Bin:        bin,
		ConfigFile: "fasthttp.conf",
		Config:     bareConfig,
		Args: func(_ peerConfig, conf string) []string {
			return []string{"-fasthttp-proxy", conf}
		},
		ReadyPath: "/",
		LogFile:   "stdout.log",
	}
}

// bareConfig renders the reference proxy's config: one directive per line,
// "listen ADDR", "max_conns N" and "upstream ADDR WEIGHT". The access log
// setting does not apply: the reference has none.
func bareConfig(pc peerConfig) string {
	pc = pc.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "# bare fasthttp proxy (bench -fasthttp-proxy): no access log, metrics or checks\nlisten %s\nmax_conns %d\n", pc.Listen, pc.MaxConns)
	for _, u := range pc.Upstreams {
		fmt.Fprintf(&b, "upstream %s %d\n", u.Addr, u.Weight)
	}
	return b.String()
}

// bareSpec is a parsed reference proxy config.
type bareSpec struct {
	Listen    string
	MaxConns  int
	Upstreams []upstream
}

// parseBareConfig reads bareConfig's format; every bad line is reported
// with its number.
func parseBareConfig(r io.Reader) (bareSpec, error) {
	var (
		spec bareSpec
		errs []error
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		bad := func(why string) { errs = append(errs, fmt.Errorf("line %d: %s: %q", n, why, line)) }
		switch {
		case f[0] == "listen" && len(f) == 2:
			spec.Listen = f[1]
		case f[0] == "max_conns" && len(f) == 2:
			v, err := strconv.Atoi(f[1])
			if err != nil || v <= 0 {
				bad("max_conns must be a positive integer")
				continue
			}
			spec.MaxConns = v
		case f[0] == "upstream" && len(f) == 3:
			w, err := strconv.Atoi(f[2])
			if err != nil || w <= 0 || w > 100 {
				bad("upstream weight must be an integer in 1..100")
				continue
			}
			spec.Upstreams = append(spec.Upstreams, upstream{Addr: f[1], Weight: w})
		default:
			bad("want listen ADDR, max_conns N or upstream ADDR WEIGHT")
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if spec.Listen == "" {
		errs = append(errs, errors.New("no listen line"))
	}
	if len(spec.Upstreams) == 0 {
		errs = append(errs, errors.New("no upstream line"))
	}
	if spec.MaxConns == 0 {
		spec.MaxConns = 1024
	}
	return spec, errors.Join(errs...)
}

// bareHandler returns the reference proxy's handler: each request goes to
// the next client of a sequence in which every upstream appears weight
// times, through HostClient.Do, and a failure is a bare 502.
func bareHandler(spec bareSpec) fasthttp.RequestHandler {
	var seq []*fasthttp.HostClient
	for _, u := range spec.Upstreams {
		c := &fasthttp.HostClient{Addr: u.Addr, MaxConns: spec.MaxConns}
		for range u.Weight {
			seq = append(seq, c)
		}
	}
	var next atomic.Uint64
	return func(ctx *fasthttp.RequestCtx) {
		c := seq[next.Add(1)%uint64(len(seq))]
		if err := c.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Response.Reset()
			ctx.SetStatusCode(fasthttp.StatusBadGateway)
		}
	}
}

// serveBareProxy is the -fasthttp-proxy mode: the reference proxy on the
// config at path, until SIGINT or SIGTERM.
func serveBareProxy(path string, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(stderr, "bench fasthttp-proxy:", err)
		return exitError
	}
	spec, err := parseBareConfig(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "bench fasthttp-proxy: %s: %v\n", path, err)
		return exitError
	}
	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "bench fasthttp-proxy:", err)
		return exitError
	}
	srv := &fasthttp.Server{Handler: bareHandler(spec), NoDefaultServerHeader: true}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown()
	}()
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(stderr, "bench fasthttp-proxy:", err)
		return exitError
	}
	return exitOK
}
