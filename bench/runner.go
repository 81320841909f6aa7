package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// options are the knobs of one suite run (see the flags in main.go).
type options struct {
	Targets      []string
	Duration     time.Duration // closed loop, per target per round
	OpenDuration time.Duration // open loop, per target per round
	Warmup       time.Duration // per target per scenario, not measured
	Rounds       int
	OpenFraction float64 // open-loop rate as a fraction of the slowest proxy's closed-loop req/s
	Rate         float64 // fixed open-loop rate, overriding OpenFraction [0]
	Threads      int     // wrk threads
	Timeout      time.Duration
	AccessLog    bool
	StubLatency  time.Duration
	Closed, Open bool
}

// targetOrder is the default order targets run in within a round. The
// fasthttp reference target (bareproxy.go) runs only when -targets names it.
var targetOrder = [...]string{"direct", "gateway", "nginx", "haproxy"}

// suite runs scenarios against targets. It is not safe for concurrent use.
type suite struct {
	opts options
	// workDir holds per-scenario configs, logs and wrk scripts.
	workDir string
	// wrk is wrk's path; "" disables the closed loop.
	wrk string
	// peers are the proxies by name; a peer with an empty Bin is skipped.
	peers map[string]peer
	// missing says why a target cannot run.
	missing map[string]string
	stubs   stubLauncher
	prog    *progress
	// keysDir holds the demo JWT keys (the module's keys/) for the jwt
	// scenario [""]: that scenario is then skipped.
	keysDir string
}

// live is a started target.
type live struct {
	name string
	addr string
	// path overrides the scenario's request path [""]: the aggregate
	// scenario's single proxied call through the same gateway.
	path string
	pid  int // process tree measured for CPU [0: none]
	proc *proc
}

// reqPath is the path this target is loaded with in sc.
func (t live) reqPath(sc scenario) string {
	if t.path != "" {
		return t.path
	}
	return sc.Path
}

// runScenario measures every target on one scenario.
func (s *suite) runScenario(ctx context.Context, sc scenario) scenarioResult {
	if s.opts.StubLatency > 0 {
		sc.StubLatency = s.opts.StubLatency
	}
	res := scenarioResult{Name: sc.Name, Description: sc.Describe(), StubLatencyUS: us(sc.StubLatency)}
	if sc.Pending != "" {
		res.Skipped = sc.Pending
		return res
	}
	dir := filepath.Join(s.workDir, sc.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Skipped = err.Error()
		return res
	}
	base := peerConfig{Feature: sc.Feature}
	probe := sc.Headers // what the readiness probe sends
	if sc.Feature == featureJWT {
		keys, token, err := prepareJWT(s.keysDir, dir)
		if err != nil {
			res.Skipped = "jwt keys: " + err.Error()
			return res
		}
		base.JWT = keys
		bearer := header{"Authorization", "Bearer " + token}
		probe = append(slices.Clip(sc.Headers), bearer)
		if sc.Tokens == 0 {
			sc.Headers = probe
		} else if sc.Bearers, err = s.mint(sc, keys, dir); err != nil {
			res.Skipped = "jwt tokens: " + err.Error()
			return res
		}
	}
	ups, err := s.stubs(ctx, 2, sc.RespBody, sc.StubLatency)
	if err != nil {
		res.Skipped = "stubs: " + err.Error()
		return res
	}
	defer ups.Close()

	var targets []live
	for _, name := range s.opts.Targets {
		var t live
		reason := sc.Unsupported[name]
		if name == referenceTarget && sc.Feature != featureProxy {
			reason = notReference
		}
		if reason == "" {
			t, reason = s.start(ctx, name, dir, ups, base, probe...)
		}
		res.Targets = append(res.Targets, targetResult{Name: name, Skipped: reason})
		if reason == "" {
			targets = append(targets, t)
		} else {
			s.prog.logf("[%s] %s skipped: %s", sc.Name, name, reason)
		}
		if name == "gateway" && sc.Feature == featureAggregate {
			// The same gateway's single proxied call, in the same rounds
			// and at the same open-loop rate, for the issue-5 checks.
			res.Targets = append(res.Targets, targetResult{Name: singleTarget, Skipped: reason})
			if reason == "" {
				t.name, t.path = singleTarget, singlePath
				targets = append(targets, t)
			}
		}
	}
	defer func() {
		for _, t := range targets {
			if t.proc != nil {
				_ = t.proc.Stop(5 * time.Second)
			}
		}
	}()
	if len(targets) == 0 {
		return res
	}

	var script string
	if s.wrk != "" {
		if script, err = writeWrkScript(dir, sc); err != nil {
			res.Skipped = err.Error()
			return res
		}
	}
	s.warmup(ctx, sc, script, targets)

	if s.opts.Closed && s.wrk != "" {
		s.rounds(ctx, &res, targets, ups, false, s.opts.Duration, func(t live) (sample, error) {
			smp, _, err := s.wrkRun(sc, script, t, s.opts.Duration).run(ctx)
			return smp, err
		})
	} else if s.opts.Closed {
		res.Note = "Closed loop skipped: wrk not found on PATH."
	}
	if s.opts.Open {
		res.OpenRate = s.openRate(&res)
		if res.OpenRate <= 0 {
			res.Note = strings.TrimSpace(res.Note + " Open loop skipped: no closed-loop throughput to derive a rate from; pass -rate.")
		}
	}
	if res.OpenRate > 0 {
		s.rounds(ctx, &res, targets, ups, true, s.opts.OpenDuration, func(t live) (sample, error) {
			return s.openLoop(sc, t, res.OpenRate, s.opts.OpenDuration).run(ctx)
		})
	}
	for i := range res.Targets {
		t := &res.Targets[i]
		t.Closed = medianSample(t.ClosedRounds)
		t.Open = medianSample(t.OpenRounds)
	}
	return res
}

// mint writes sc.Tokens tokens into dir's tokenFile for wrk's script and
// returns them for the open loop. The readiness probe sends another token,
// so that none of these is in the gateway's cache before the load.
func (s *suite) mint(sc scenario, keys *jwtKeys, dir string) ([][]byte, error) {
	start := time.Now()
	bearers, err := prepareTokens(keys, filepath.Join(dir, tokenFile), sc.Tokens)
	if err == nil {
		s.prog.logf("[%s] minted %d tokens in %v", sc.Name, sc.Tokens, time.Since(start).Round(time.Millisecond))
	}
	return bearers, err
}

// cursorFile is where t's runs of sc keep their place in sc's tokens
// ("": sc has none).
func (s *suite) cursorFile(sc scenario, t live) string {
	if sc.Tokens == 0 {
		return ""
	}
	return filepath.Join(s.workDir, sc.Name, "cursor-"+t.name)
}

// rounds runs load against every target in turn, Rounds times (A B C A B
// C ...), appending each sample to the target's open or closed rounds and
// each failure to its Failures.
func (s *suite) rounds(ctx context.Context, res *scenarioResult, targets []live, ups *upstreams, open bool,
	d time.Duration, load func(live) (sample, error)) {
	phase := "closed"
	if open {
		phase = fmt.Sprintf("open @ %s req/s", fmtNum(res.OpenRate))
	}
	for round := 1; round <= s.opts.Rounds && ctx.Err() == nil; round++ {
		for _, t := range targets {
			s.prog.step(res.Name, fmt.Sprintf("%s round %d/%d", phase, round, s.opts.Rounds), t.name, d)
			smp, err := s.measure(ctx, t, ups, func() (sample, error) { return load(t) })
			tr := res.target(t.name)
			switch {
			case err != nil:
				tr.Failures = append(tr.Failures, phase+": "+err.Error())
				s.prog.logf("[%s] %s %s round %d failed: %v", res.Name, t.name, phase, round, firstLine(err.Error()))
			case open:
				tr.OpenRounds = append(tr.OpenRounds, smp)
			default:
				tr.ClosedRounds = append(tr.ClosedRounds, smp)
			}
		}
	}
}

// start launches one target for a scenario, or says why it is skipped.
// base carries the scenario's feature settings into the peer's config;
// the readiness probe sends hdrs, as the load will (the jwt scenario's
// token: a peer that refuses it never becomes ready).
func (s *suite) start(ctx context.Context, name, dir string, ups *upstreams, base peerConfig, hdrs ...header) (live, string) {
	if reason := s.missing[name]; reason != "" {
		return live{}, reason
	}
	if name == "direct" {
		return live{name: name, addr: ups.Addrs[0]}, ""
	}
	p, ok := s.peers[name]
	if !ok {
		return live{}, "unknown target"
	}
	pdir := filepath.Join(dir, name)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return live{}, err.Error()
	}
	addr, err := freeAddr()
	if err != nil {
		return live{}, err.Error()
	}
	pc := base.at(addr, pdir, s.opts.AccessLog, ups.Addrs)
	conf, err := p.WriteConfig(pc)
	if err != nil {
		return live{}, err.Error()
	}
	pr, err := startProc(name, p.Bin, p.Args(pc, conf), filepath.Join(pdir, p.LogFile))
	if err != nil {
		return live{}, "failed to start: " + err.Error()
	}
	if err := waitReady(ctx, pr, addr, p.ReadyPath, 15*time.Second, hdrs...); err != nil {
		_ = pr.Stop(2 * time.Second)
		return live{}, "failed to start: " + err.Error()
	}
	return live{name: name, addr: addr, pid: pr.PID(), proc: pr}, ""
}

// measure runs load and fills the sample's CPU and syscall fields from
// /proc deltas of the target's and the stubs' process trees, and its
// upstream request count from the stubs' counter.
func (s *suite) measure(ctx context.Context, t live, ups *upstreams, load func() (sample, error)) (sample, error) {
	if t.proc != nil && t.proc.Exited() {
		return sample{}, fmt.Errorf("%s has exited: %s", t.name, lastLine(t.proc.LogTail(10)))
	}
	stubPID := 0
	if ups != nil {
		stubPID = ups.PID
	}
	n0, ok0 := ups.Requests()
	before := treeUsage(t.pid, stubPID)
	smp, err := load()
	after := treeUsage(t.pid, stubPID)
	n1, ok1 := ups.Requests()
	if err != nil {
		return sample{}, err
	}
	smp.setUsage(after[0].sub(before[0]), after[1].sub(before[1]))
	if ok0 && ok1 {
		smp.UpstreamRequests = new(n1 - n0)
	}
	// Let closing connections settle before the next target's run.
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
	return smp, nil
}

// warmup loads each target briefly so pools and caches are filled before
// the measured rounds.
func (s *suite) warmup(ctx context.Context, sc scenario, script string, targets []live) {
	if s.opts.Warmup <= 0 {
		return
	}
	for _, t := range targets {
		s.prog.step(sc.Name, "warmup", t.name, s.opts.Warmup)
		if s.wrk != "" {
			_, _, _ = s.wrkRun(sc, script, t, s.opts.Warmup).run(ctx)
		} else if s.opts.Rate > 0 {
			_, _ = s.openLoop(sc, t, s.opts.Rate, s.opts.Warmup).run(ctx)
		}
	}
}

// openRate is the fixed -rate, or OpenFraction of the lowest median
// closed-loop req/s among the proxies (direct only when no proxy ran), so
// every target gets the same offered load.
func (s *suite) openRate(res *scenarioResult) float64 {
	if s.opts.Rate > 0 {
		return s.opts.Rate
	}
	var proxies, direct []float64
	for _, t := range res.Targets {
		m := medianSample(t.ClosedRounds)
		if m == nil || m.RPS <= 0 {
			continue
		}
		switch t.Name {
		case referenceTarget:
			// A floor to read the others against; it sets no load.
		case "direct":
			direct = append(direct, m.RPS)
		default:
			proxies = append(proxies, m.RPS)
		}
	}
	if len(proxies) == 0 {
		proxies = direct
	}
	if len(proxies) == 0 {
		return 0
	}
	return float64(int(slices.Min(proxies) * s.opts.OpenFraction))
}

func (s *suite) wrkRun(sc scenario, script string, t live, d time.Duration) wrkRun {
	w := wrkRun{
		Bin: s.wrk, URL: "http://" + t.addr + t.reqPath(sc), Threads: s.opts.Threads, Conns: sc.Conns,
		Duration: d, Timeout: s.opts.Timeout, Script: script, Cursor: s.cursorFile(sc, t),
	}
	for _, h := range sc.Headers {
		w.Headers = append(w.Headers, h.Name+": "+h.Value)
	}
	return w
}

func (s *suite) openLoop(sc scenario, t live, rate float64, d time.Duration) openLoop {
	o := openLoop{Addr: t.addr, Method: sc.Method, Path: t.reqPath(sc), Headers: sc.Headers, Rate: rate, Duration: d,
		Conns: sc.Conns, Timeout: s.opts.Timeout, Tokens: sc.Bearers, Cursor: s.cursorFile(sc, t)}
	if sc.ReqBody > 0 {
		o.Body = make([]byte, sc.ReqBody)
		for i := range o.Body {
			o.Body[i] = 'x'
		}
	}
	return o
}

// plannedSeconds estimates a scenario's run time for the progress display.
func (s *suite) plannedSeconds(sc scenario) float64 {
	if sc.Pending != "" {
		return 0
	}
	n := 0
	for _, name := range s.opts.Targets {
		if s.missing[name] == "" && sc.Unsupported[name] == "" && (name != referenceTarget || sc.Feature == featureProxy) {
			n++
			if name == "gateway" && sc.Feature == featureAggregate {
				n++ // its single proxied call
			}
		}
	}
	per := s.opts.Warmup.Seconds()
	if s.opts.Closed && s.wrk != "" {
		per += float64(s.opts.Rounds) * (s.opts.Duration.Seconds() + 0.3)
	}
	if s.opts.Open {
		per += float64(s.opts.Rounds) * (s.opts.OpenDuration.Seconds() + 0.3)
	}
	return 2 + float64(n)*per
}

// progress writes one line per step to stderr with the time left.
type progress struct {
	w    io.Writer
	left time.Duration
}

func (p *progress) step(scen, phase, target string, d time.Duration) {
	if p == nil {
		return
	}
	fmt.Fprintf(p.w, "[%s] %s: %s for %v, about %v left\n", scen, phase, target, d, p.left.Round(time.Second))
	p.left = max(0, p.left-d-300*time.Millisecond)
}

func (p *progress) logf(format string, args ...any) {
	if p == nil {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}
