// Command bench measures fastgate side by side with nginx and HAProxy, and
// with the upstream reached directly as the ceiling.
//
// It starts stub upstreams in a child process, then the gateway (built from
// this module), nginx and haproxy with equivalent generated configs, and
// drives each scenario with wrk (closed loop) and with a constant-rate Go
// generator (open loop), interleaving targets in rounds. It prints a
// Markdown table, writes JSON, Markdown and an SVG plot under bench/results,
// and with -check compares the gateway/nginx ratios with a baseline.
//
// Usage:
//
//	go run ./bench [flags]
//	go run ./bench -check              # compare with bench/baseline.json
//	go run ./bench -profile
//
// See bench/README.md for scenarios, flags and the noise band.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/fastgate/fastgate/stub"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK         = 0
	exitRegression = 1
	exitError      = 2
)

// cli holds the parsed command line.
type cli struct {
	opts      options
	scenarios string
	targets   string
	out       string
	name      string
	from      string
	check     bool
	baseline  string
	band      band
	keep      bool
	gateway   string
	wrk       string
	nginx     string
	haproxy   string
	modes     string
	accessLog string

	profile        bool
	profileDir     string
	profileSeconds int

	stubs    int
	stubBody int

	writeConfig   string // -write-config: the peer
	bareProxy     string // -fasthttp-proxy: the reference proxy's config
	configDir     string
	listen        string
	upstreamAddrs string
	workers       int
}

func parseFlags(args []string, stderr io.Writer) (*cli, error) {
	c := &cli{band: defaultBand()}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.scenarios, "scenario", "all", "comma-separated scenarios to run, or all: "+scenarioNames())
	fs.StringVar(&c.targets, "targets", strings.Join(targetOrder[:], ","), "comma-separated targets, in round order")
	fs.DurationVar(&c.opts.Duration, "duration", 4*time.Second, "closed-loop (wrk) run per target per round; whole seconds")
	fs.DurationVar(&c.opts.OpenDuration, "open-duration", 2*time.Second, "open-loop run per target per round")
	fs.DurationVar(&c.opts.Warmup, "warmup", time.Second, "unmeasured load per target per scenario before the rounds (0: none)")
	fs.IntVar(&c.opts.Rounds, "rounds", 3, "rounds; targets are interleaved within each round and medians taken over rounds")
	fs.Float64Var(&c.opts.OpenFraction, "open-fraction", 0.5, "open-loop rate as a fraction of the slowest proxy's median closed-loop req/s")
	fs.Float64Var(&c.opts.Rate, "rate", 0, "fixed open-loop rate in req/s, overriding -open-fraction")
	fs.IntVar(&c.opts.Threads, "threads", 2, "wrk threads")
	fs.DurationVar(&c.opts.Timeout, "timeout", 2*time.Second, "per-request timeout, counted as an error")
	fs.StringVar(&c.modes, "mode", "closed,open", "load modes: closed, open or closed,open")
	fs.StringVar(&c.accessLog, "access-log", "on", "access logs for every proxy: on (each to a file in its temp dir) or off")
	fs.DurationVar(&c.opts.StubLatency, "stub-latency", 0, "latency the stub upstreams add to each answer")
	fs.StringVar(&c.out, "out", "", "results directory [bench/results in the module]")
	fs.StringVar(&c.name, "name", "", "results file name stem [timestamp; check-timestamp with -check]")
	fs.StringVar(&c.from, "from", "", "instead of running, read this results JSON, rewrite its .md and .svg, print the table (and -check it)")
	fs.BoolVar(&c.check, "check", false, "compare gateway/nginx ratios with -baseline; exit 1 on a regression beyond the band")
	fs.StringVar(&c.baseline, "baseline", "", "baseline results JSON for -check [bench/baseline.json in the module]")
	fs.Float64Var(&c.band.RPS, "band-rps", c.band.RPS, "tolerated drop of the gateway/nginx req/s ratio, as a fraction")
	fs.Float64Var(&c.band.P99, "band-p99", c.band.P99, "tolerated growth of the closed-loop gateway/nginx p99 ratio's geometric mean over scenarios, as a fraction")
	fs.Float64Var(&c.band.CPU, "band-cpu", c.band.CPU, "tolerated growth of the gateway/nginx CPU/request ratio, as a fraction")
	fs.Float64Var(&c.band.OpenP99, "band-open-p99", c.band.OpenP99, "tolerated growth of the open-loop p99 geomean ratio; 0 reports it without gating")
	fs.BoolVar(&c.keep, "keep", false, "keep the temp dir with configs and logs")
	fs.StringVar(&c.gateway, "gateway", "", "prebuilt gateway binary [go build of the module]")
	fs.StringVar(&c.wrk, "wrk", "", "wrk binary [wrk on PATH]")
	fs.StringVar(&c.nginx, "nginx", "", "nginx binary [nginx on PATH or in /usr/sbin]")
	fs.StringVar(&c.haproxy, "haproxy", "", "haproxy binary [haproxy on PATH or in /usr/sbin]")
	fs.BoolVar(&c.profile, "profile", false, "profile the gateway under wrk proxy-small load instead of benchmarking")
	fs.StringVar(&c.profileDir, "profile-dir", "", "profile output directory [bench/results/profile]")
	fs.IntVar(&c.profileSeconds, "profile-seconds", 10, "CPU and alloc profile duration in seconds")
	fs.IntVar(&c.stubs, "stubs", 0, "internal: serve this many stub upstreams until stdin closes")
	fs.IntVar(&c.stubBody, "stub-body", 256, "internal: stub response size")
	fs.StringVar(&c.writeConfig, "write-config", "", "write the suite's proxy-small config of this peer (gateway, nginx or haproxy) into -config-dir, print its path and exit")
	fs.StringVar(&c.bareProxy, "fasthttp-proxy", "", "internal: serve the fasthttp reference target with this config until SIGTERM")
	fs.StringVar(&c.configDir, "config-dir", "", "with -write-config: the peer's dir")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:18199", "with -write-config: the listen address")
	fs.StringVar(&c.upstreamAddrs, "upstream-addrs", "", "with -write-config: comma-separated upstream addresses, weight 1 each")
	fs.IntVar(&c.workers, "workers", 2, "with -write-config: nginx worker_processes, haproxy nbthread")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.opts.Targets = splitList(c.targets)
	for _, t := range c.opts.Targets {
		if !isTarget(t) {
			return nil, fmt.Errorf("unknown target %q (known: %s, and the opt-in %s)", t, strings.Join(targetOrder[:], ", "), referenceTarget)
		}
	}
	for _, m := range splitList(c.modes) {
		switch m {
		case "closed":
			c.opts.Closed = true
		case "open":
			c.opts.Open = true
		default:
			return nil, fmt.Errorf("unknown mode %q", m)
		}
	}
	switch c.accessLog {
	case "on":
		c.opts.AccessLog = true
	case "off":
	default:
		return nil, fmt.Errorf("-access-log must be on or off, not %q", c.accessLog)
	}
	if c.opts.Rounds < 1 || c.opts.Duration < time.Second || c.opts.OpenDuration <= 0 {
		return nil, errors.New("-rounds must be >= 1, -duration >= 1s and -open-duration > 0")
	}
	if c.opts.OpenFraction <= 0 || c.opts.OpenFraction > 1 {
		return nil, errors.New("-open-fraction must be in (0, 1]")
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	if c.stubs > 0 {
		return serveStubs(c.stubs, c.stubBody, c.opts.StubLatency, os.Stdin, stdout, stderr)
	}
	if c.writeConfig != "" {
		return writeConfig(c, stdout, stderr)
	}
	if c.bareProxy != "" {
		return serveBareProxy(c.bareProxy, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cwd, _ := os.Getwd()
	root, err := moduleRoot(cwd)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	if c.out == "" {
		c.out = filepath.Join(root, "bench", "results")
	}
	if c.profile {
		if err := runProfile(ctx, c, root, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
		return exitOK
	}

	var r *results
	if c.from != "" {
		if r, err = readResults(c.from); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
		if err := renderBeside(c.from, r); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
	} else {
		if r, err = runSuite(ctx, c, root, stderr); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
		if err := saveResults(c, r, stderr); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return exitError
		}
	}
	writeMarkdown(stdout, r)
	if !c.check {
		return exitOK
	}
	if c.baseline == "" {
		c.baseline = filepath.Join(root, "bench", "baseline.json")
	}
	base, err := readResults(c.baseline)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	if base.Settings != r.Settings {
		fmt.Fprintf(stderr, "bench: warning: settings differ from the baseline's (%+v vs %+v); ratios may not be comparable\n",
			r.Settings, base.Settings)
	}
	checks, err := compareBaseline(base, r, c.band)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	if writeChecks(stdout, checks, c.band) {
		fmt.Fprintln(stderr, "bench: regression beyond the noise band")
		return exitRegression
	}
	return exitOK
}

// runSuite resolves the tools, builds the gateway and runs every selected
// scenario.
func runSuite(ctx context.Context, c *cli, root string, stderr io.Writer) (*results, error) {
	scens, err := selectScenarios(c.scenarios)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "fastgate-bench-")
	if err != nil {
		return nil, err
	}
	if c.keep {
		fmt.Fprintln(stderr, "bench: keeping", work)
	} else {
		defer os.RemoveAll(work)
	}
	s := &suite{
		opts:    c.opts,
		workDir: work,
		wrk:     findTool(c.wrk, "wrk"),
		peers:   map[string]peer{},
		missing: map[string]string{},
		stubs:   execStubs,
		prog:    &progress{w: stderr},
		keysDir: filepath.Join(root, "keys"),
	}
	if s.wrk == "" {
		fmt.Fprintln(stderr, "bench: wrk not found: closed loop skipped (make bench-deps installs it)")
	}
	gw := c.gateway
	if gw == "" && wants(c.opts.Targets, "gateway") {
		gw = filepath.Join(work, "fastgate")
		fmt.Fprintln(stderr, "bench: building the gateway")
		if err := buildGateway(ctx, root, gw); err != nil {
			s.missing["gateway"] = "build failed: " + firstLine(err.Error())
			fmt.Fprintln(stderr, "bench: gateway", err)
			gw = ""
		}
	}
	s.peers["gateway"] = gatewayPeer(gw)
	s.peers["nginx"] = nginxPeer(findTool(c.nginx, "nginx"))
	s.peers["haproxy"] = haproxyPeer(findTool(c.haproxy, "haproxy"))
	if self, err := os.Executable(); err == nil {
		s.peers[referenceTarget] = fasthttpPeer(self)
	}
	for name, p := range s.peers {
		if p.Bin == "" && s.missing[name] == "" {
			s.missing[name] = "not installed (make bench-deps)"
		}
	}

	commit, dirty := gitState(root)
	r := &results{
		Timestamp: time.Now().UTC(),
		GitCommit: commit,
		GitDirty:  dirty,
		GoVersion: runtime.Version(),
		Machine:   readMachine(),
		Tools: map[string]string{
			"wrk":     toolVersion(s.wrk, "--version"),
			"nginx":   toolVersion(s.peers["nginx"].Bin, "-v"),
			"haproxy": toolVersion(s.peers["haproxy"].Bin, "-v"),
		},
		Settings: settings{
			Duration: c.opts.Duration.String(), OpenDuration: c.opts.OpenDuration.String(), Rounds: c.opts.Rounds,
			Warmup: c.opts.Warmup.String(), OpenFraction: c.opts.OpenFraction, Rate: c.opts.Rate,
			Threads: c.opts.Threads, AccessLog: c.opts.AccessLog, StubLatency: c.opts.StubLatency.String(), Modes: c.modes,
		},
	}
	var total float64
	for _, sc := range scens {
		total += s.plannedSeconds(sc)
	}
	s.prog.left = time.Duration(total * float64(time.Second))
	for _, sc := range scens {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.Scenarios = append(r.Scenarios, s.runScenario(ctx, sc))
	}
	r.Machine.LoadEnd = loadAvg()
	return r, ctx.Err()
}

// saveResults writes JSON, Markdown and SVG under c.out, and copies them to
// latest.* unless this is a -check run.
func saveResults(c *cli, r *results, stderr io.Writer) error {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	stem := c.name
	if stem == "" {
		stem = r.Timestamp.Format("20060102-150405")
		if c.check {
			stem = "check-" + stem
		}
	}
	stems := []string{stem}
	if !c.check && stem != "latest" {
		stems = append(stems, "latest")
	}
	for _, st := range stems {
		base := filepath.Join(c.out, st)
		if err := writeJSON(base+".json", r); err != nil {
			return err
		}
		if err := writeFileWith(base+".svg", func(w io.Writer) error { return writeSVG(w, r) }); err != nil {
			return err
		}
		if err := writeFileWith(base+".md", func(w io.Writer) error { writeMarkdown(w, r); return nil }); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "bench: wrote %s.{json,md,svg}\n", filepath.Join(c.out, stem))
	return nil
}

// renderBeside rewrites the .md and .svg next to a results JSON.
func renderBeside(jsonPath string, r *results) error {
	base := strings.TrimSuffix(jsonPath, ".json")
	if err := writeFileWith(base+".svg", func(w io.Writer) error { return writeSVG(w, r) }); err != nil {
		return err
	}
	return writeFileWith(base+".md", func(w io.Writer) error { writeMarkdown(w, r); return nil })
}

func writeFileWith(path string, f func(io.Writer) error) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f(file); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

// serveStubs is the -stubs child mode: n stubs on free loopback ports,
// announced as "STUBS addr..." on stdout, served until stdin closes. Each
// "count" line on stdin is answered with "COUNT n", n the requests the
// stubs have served (health checks excluded), so the suite can tell how
// many client requests reached an upstream (a cache hit does not).
func serveStubs(n, body int, latency time.Duration, stdin io.Reader, stdout, stderr io.Writer) int {
	var servers []*stub.Server
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for i := range n {
		s, err := stub.Start(stub.Options{ID: fmt.Sprintf("b%d", i+1), BodySize: body, Latency: latency})
		if err != nil {
			fmt.Fprintln(stderr, "bench stubs:", err)
			return exitError
		}
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
	}
	fmt.Fprintf(stdout, "STUBS %s\n", strings.Join(addrs, " "))
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "count" {
			continue
		}
		var total int64
		for _, s := range servers {
			total += s.Requests()
		}
		fmt.Fprintf(stdout, "COUNT %d\n", total)
	}
	return exitOK
}

// findTool returns flagValue, else name on PATH, else name in the sbin
// directories that a non-root PATH may lack; "" when not found.
func findTool(flagValue, name string) string {
	if flagValue != "" {
		return flagValue
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func wants(list []string, name string) bool {
	for _, v := range list {
		if v == name {
			return true
		}
	}
	return false
}

func isTarget(name string) bool { return wants(targetOrder[:], name) || name == referenceTarget }

func scenarioNames() string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// writeConfig is -write-config: the config the suite would generate for a
// peer on proxy-small, for tools that run the peer themselves
// (scripts/instr.sh).
func writeConfig(c *cli, stdout, stderr io.Writer) int {
	p, ok := peerByName(c.writeConfig)
	addrs := splitList(c.upstreamAddrs)
	if !ok || c.configDir == "" || len(addrs) == 0 {
		fmt.Fprintln(stderr, "bench: -write-config needs gateway, nginx or haproxy, -config-dir and -upstream-addrs")
		return exitError
	}
	pc := peerConfig{Workers: c.workers}.at(c.listen, c.configDir, c.opts.AccessLog, addrs)
	path, err := p.WriteConfig(pc)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return exitError
	}
	fmt.Fprintln(stdout, path)
	return exitOK
}
