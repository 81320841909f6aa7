package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// results is everything one run of the suite measured; it is what the JSON
// under bench/results holds and what bench-check compares.
type results struct {
	Timestamp time.Time         `json:"timestamp"`
	GitCommit string            `json:"git_commit"`
	GitDirty  bool              `json:"git_dirty"`
	GoVersion string            `json:"go_version"`
	Machine   machine           `json:"machine"`
	Tools     map[string]string `json:"tools"`
	Settings  settings          `json:"settings"`
	Scenarios []scenarioResult  `json:"scenarios"`
}

// settings are the knobs a run used, so two runs can be judged comparable.
type settings struct {
	Duration     string  `json:"duration"`
	OpenDuration string  `json:"open_duration"`
	Rounds       int     `json:"rounds"`
	Warmup       string  `json:"warmup"`
	OpenFraction float64 `json:"open_fraction"`
	Rate         float64 `json:"rate,omitempty"`
	Threads      int     `json:"wrk_threads"`
	AccessLog    bool    `json:"access_log"`
	StubLatency  string  `json:"stub_latency"`
	Modes        string  `json:"modes"`
}

type scenarioResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Skipped     string `json:"skipped,omitempty"`
	// OpenRate is the open-loop rate used for every target, req/s.
	OpenRate float64 `json:"open_rate,omitempty"`
	// StubLatencyUS is the latency the stubs added to each answer, µs.
	StubLatencyUS float64        `json:"stub_latency_us,omitempty"`
	Note          string         `json:"note,omitempty"`
	Targets       []targetResult `json:"targets"`
}

type targetResult struct {
	Name    string `json:"name"`
	Skipped string `json:"skipped,omitempty"`
	// Closed and Open are medians over rounds.
	Closed       *sample  `json:"closed,omitempty"`
	Open         *sample  `json:"open,omitempty"`
	ClosedRounds []sample `json:"closed_rounds,omitempty"`
	OpenRounds   []sample `json:"open_rounds,omitempty"`
	// Failures are runs that produced no sample, with their error.
	Failures []string `json:"failures,omitempty"`
}

// target returns the named target's result, or nil.
func (s *scenarioResult) target(name string) *targetResult {
	for i := range s.Targets {
		if s.Targets[i].Name == name {
			return &s.Targets[i]
		}
	}
	return nil
}

// scenario returns the named scenario's result, or nil.
func (r *results) scenario(name string) *scenarioResult {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// ratio is a/b, or NaN when either is missing or b is zero.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return math.NaN()
	}
	return a / b
}

func writeJSON(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readResults(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// writeMarkdown renders the run as Markdown tables, one closed-loop and one
// open-loop table per scenario, with ratios to nginx measured in the same run.
func writeMarkdown(w io.Writer, r *results) {
	commit := r.GitCommit
	if r.GitDirty {
		commit += " (dirty)"
	}
	fmt.Fprintf(w, "## fastgate bench, %s\n\n", r.Timestamp.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Commit %s, %s, %s, %d cores", commit, r.GoVersion, r.Machine.CPU, r.Machine.Cores)
	if r.Machine.Load != "" {
		fmt.Fprintf(w, ", load average %s at start and %s at end", r.Machine.Load, r.Machine.LoadEnd)
	}
	fmt.Fprint(w, ". ")
	fmt.Fprintf(w, "Closed loop: wrk, %d threads, %s per target per round. Open loop: Go generator, %s per target per round, "+
		"constant rate of %.0f%% of the slowest proxy's closed-loop req/s, latency from intended send time. ",
		r.Settings.Threads, r.Settings.Duration, r.Settings.OpenDuration, r.Settings.OpenFraction*100)
	access := "off for every proxy"
	if r.Settings.AccessLog {
		access = "on for every proxy, each writing to a file"
	}
	fmt.Fprintf(w, "Targets interleaved in %d rounds; medians over rounds; errors summed. Access logs %s. "+
		"CPU/req is the proxy's process tree utime+stime from /proc over completed requests. "+
		"Ratios are to nginx in the same run (req/s: higher is better; p99 and CPU: lower is better).\n\n",
		r.Settings.Rounds, access)
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		writeScenarioMarkdown(w, s)
		if s.Skipped == "" {
			writeReference(w, s)
			writeUpstreamCounts(w, s)
			if s.target(singleTarget) != nil {
				writeIssue5(w, issue5Of(r, s))
			}
		}
	}
}

// writeReference states the gateway over the fasthttp reference target
// (bareproxy.go), both in the closed loop, when both ran: what the
// gateway's own work costs over the bare stack.
func writeReference(w io.Writer, s *scenarioResult) {
	g, f := s.target("gateway"), s.target(referenceTarget)
	if g == nil || f == nil || g.Closed == nil || f.Closed == nil {
		return
	}
	fmt.Fprintf(w, "Gateway ÷ %s reference (the gateway's own work over the bare stack), closed loop: req/s %s, p99 %s, CPU/req %s.\n\n",
		referenceTarget, fmtRatio(ratio(g.Closed.RPS, f.Closed.RPS)), fmtRatio(ratio(g.Closed.P99US, f.Closed.P99US)),
		fmtRatio(ratio(g.Closed.CPUPerReqUS, f.Closed.CPUPerReqUS)))
}

// writeUpstreamCounts says how many requests reached the stubs per client
// request, per target and mode: 1 through a proxy, the part count through
// an aggregate, about 0 when a cache answers.
func writeUpstreamCounts(w io.Writer, s *scenarioResult) {
	for _, open := range []bool{false, true} {
		var parts []string
		for i := range s.Targets {
			m := s.Targets[i].Closed
			if open {
				m = s.Targets[i].Open
			}
			if m == nil || m.UpstreamRequests == nil || m.Requests <= 0 {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.2f (%s / %s)", s.Targets[i].Name,
				float64(*m.UpstreamRequests)/float64(m.Requests), fmtCount(*m.UpstreamRequests), fmtCount(m.Requests)))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "Upstream requests (the stubs' count) per client request, %s loop, all rounds: %s.\n\n",
				map[bool]string{false: "closed", true: "open"}[open], strings.Join(parts, ", "))
		}
	}
}

// issue5 holds the figures of issue 5's two aggregate targets, all from
// one run: (a) with every part at stub latency L, the aggregate's p99 is
// within L + 1 ms of a single proxied call's p99 at the same open-loop
// rate; (b) the aggregate's closed-loop req/s is at least 25% of a single
// proxied call's.
type issue5 struct {
	LatencyUS float64 // L, the stub latency of every part and of the single call
	OpenRate  float64
	// Open-loop p99 of the aggregate and of the single proxied call, µs [0: not measured].
	AggP99US, SingleP99US float64
	// Closed-loop req/s of the aggregate and of the single call in the same rounds.
	AggRPS, SingleRPS float64
	// SmallRPS is proxy-small's gateway req/s in the same run (stub latency
	// as that scenario's) [0: not in this run].
	SmallRPS float64
}

// The issue-5 targets.
const (
	issue5P99SlackUS = 1000 // (a): aggregate p99 - single p99 <= L + 1 ms
	issue5MinRPS     = 0.25 // (b): aggregate req/s >= 25% of the single call's
)

func issue5Of(r *results, s *scenarioResult) issue5 {
	c := issue5{LatencyUS: s.StubLatencyUS, OpenRate: s.OpenRate}
	if g := s.target("gateway"); g != nil {
		if g.Open != nil {
			c.AggP99US = g.Open.P99US
		}
		if g.Closed != nil {
			c.AggRPS = g.Closed.RPS
		}
	}
	if g := s.target(singleTarget); g != nil {
		if g.Open != nil {
			c.SingleP99US = g.Open.P99US
		}
		if g.Closed != nil {
			c.SingleRPS = g.Closed.RPS
		}
	}
	if ps := r.scenario("proxy-small"); ps != nil {
		if g := ps.target("gateway"); g != nil && g.Closed != nil {
			c.SmallRPS = g.Closed.RPS
		}
	}
	return c
}

func writeIssue5(w io.Writer, c issue5) {
	fmt.Fprintf(w, "Issue 5 checks (gateway; stub latency L = %s on every part and on the single proxied call, measured in the same rounds):\n\n",
		fmtUS(c.LatencyUS))
	fmt.Fprintln(w, "| check | measured | target | verdict |")
	fmt.Fprintln(w, "|---|--:|--:|---|")
	limit := c.LatencyUS + issue5P99SlackUS
	if c.AggP99US > 0 && c.SingleP99US > 0 {
		d := c.AggP99US - c.SingleP99US
		fmt.Fprintf(w, "| (a) p99, open loop at %s req/s: aggregate − single proxied call | %s − %s = %s | ≤ L + 1 ms = %s | %s |\n",
			fmtNum(c.OpenRate), fmtUS(c.AggP99US), fmtUS(c.SingleP99US), fmtSignedUS(d), fmtUS(limit), verdict(d <= limit))
	} else {
		fmt.Fprintf(w, "| (a) p99, open loop: aggregate − single proxied call | not measured (needs the open loop) | ≤ L + 1 ms = %s | — |\n", fmtUS(limit))
	}
	if c.AggRPS > 0 && c.SingleRPS > 0 {
		q := c.AggRPS / c.SingleRPS
		fmt.Fprintf(w, "| (b) req/s, closed loop: aggregate ÷ single proxied call | %s ÷ %s = %.2f | ≥ %.2f | %s |\n",
			fmtNum(c.AggRPS), fmtNum(c.SingleRPS), q, issue5MinRPS, verdict(q >= issue5MinRPS))
	} else {
		fmt.Fprintf(w, "| (b) req/s, closed loop: aggregate ÷ single proxied call | not measured (needs wrk) | ≥ %.2f | — |\n", issue5MinRPS)
	}
	if c.AggRPS > 0 && c.SmallRPS > 0 {
		q := c.AggRPS / c.SmallRPS
		fmt.Fprintf(w, "| (b) also: aggregate ÷ proxy-small's gateway req/s in this run (its own stub latency) | %s ÷ %s = %.2f | ≥ %.2f | %s |\n",
			fmtNum(c.AggRPS), fmtNum(c.SmallRPS), q, issue5MinRPS, verdict(q >= issue5MinRPS))
	}
	fmt.Fprintln(w)
}

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// fmtSignedUS is fmtUS for a difference, which may be zero or negative.
func fmtSignedUS(v float64) string {
	switch {
	case v < 0:
		return "−" + fmtUS(-v)
	case v == 0:
		return "0 µs"
	default:
		return "+" + fmtUS(v)
	}
}

// fmtCount is an integer with thousands separators, zero included.
func fmtCount(n int64) string {
	if n == 0 {
		return "0"
	}
	if n < 0 {
		return "-" + fmtNum(float64(-n))
	}
	return fmtNum(float64(n))
}

func writeScenarioMarkdown(w io.Writer, s *scenarioResult) {
	fmt.Fprintf(w, "### %s: %s\n\n", s.Name, s.Description)
	if s.Skipped != "" {
		fmt.Fprintf(w, "skipped: %s\n\n", s.Skipped)
		return
	}
	if s.Note != "" {
		fmt.Fprintf(w, "%s\n\n", s.Note)
	}
	pick := func(t *targetResult, open bool) *sample {
		if t == nil {
			return nil
		}
		if open {
			return t.Open
		}
		return t.Closed
	}
	for _, open := range []bool{false, true} {
		if !hasMode(s, open) {
			continue
		}
		// Ratios are to nginx; to haproxy when nginx has no equivalent
		// (or did not run) and haproxy does.
		ref := "nginx"
		base := pick(s.target(ref), open)
		if hp := pick(s.target("haproxy"), open); base == nil && hp != nil {
			ref, base = "haproxy", hp
		}
		if open {
			fmt.Fprintf(w, "Open loop at %s req/s:\n\n", fmtNum(s.OpenRate))
			fmt.Fprintf(w, "| target | req/s | p50 | p90 | p99 | p99.9 | max | errors | CPU/req | p99 ÷ %[1]s | CPU ÷ %[1]s |\n", ref)
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		} else {
			fmt.Fprintln(w, "Closed loop (wrk):")
			fmt.Fprintln(w)
			fmt.Fprintf(w, "| target | req/s | p50 | p99 | p99.9 | errors | CPU/req | req/s ÷ %[1]s | p99 ÷ %[1]s | CPU ÷ %[1]s |\n", ref)
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		}
		for i := range s.Targets {
			t := &s.Targets[i]
			m := pick(t, open)
			if t.Skipped != "" || m == nil {
				reason := t.Skipped
				if reason == "" {
					reason = "no successful run"
					if len(t.Failures) > 0 {
						reason = firstLine(t.Failures[0])
					}
				}
				cols := 9
				if open {
					cols = 10
				}
				fmt.Fprintf(w, "| %s | skipped: %s |%s\n", t.Name, reason, strings.Repeat(" |", cols-1))
				continue
			}
			cpu := "—"
			if m.CPUPerReqUS > 0 {
				cpu = fmtUS(m.CPUPerReqUS)
			}
			var b sample
			if base != nil {
				b = *base
			}
			if open {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s |\n", t.Name,
					fmtNum(m.RPS), fmtUS(m.P50US), fmtUS(m.P90US), fmtUS(m.P99US), fmtUS(m.P999US), fmtUS(m.MaxUS),
					m.Errors.Total(), cpu, fmtRatio(ratio(m.P99US, b.P99US)), fmtRatio(ratio(m.CPUPerReqUS, b.CPUPerReqUS)))
			} else {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", t.Name,
					fmtNum(m.RPS), fmtUS(m.P50US), fmtUS(m.P99US), fmtUS(m.P999US), m.Errors.Total(), cpu,
					fmtRatio(ratio(m.RPS, b.RPS)), fmtRatio(ratio(m.P99US, b.P99US)), fmtRatio(ratio(m.CPUPerReqUS, b.CPUPerReqUS)))
			}
		}
		fmt.Fprintln(w)
	}
}

// hasMode reports whether the scenario ran the closed or open loop.
func hasMode(s *scenarioResult, open bool) bool {
	if open {
		return s.OpenRate > 0
	}
	for _, t := range s.Targets {
		if t.Closed != nil {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// fmtUS formats microseconds with a unit that keeps 3 significant digits.
func fmtUS(v float64) string {
	switch {
	case v <= 0 || math.IsNaN(v):
		return "—"
	case v < 1000:
		return fmt.Sprintf("%.0f µs", v)
	case v < 10_000:
		return fmt.Sprintf("%.2f ms", v/1000)
	case v < 1_000_000:
		return fmt.Sprintf("%.1f ms", v/1000)
	default:
		return fmt.Sprintf("%.2f s", v/1e6)
	}
}

// fmtNum formats a rate with thousands separators.
func fmtNum(v float64) string {
	if math.IsNaN(v) || v <= 0 {
		return "—"
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}
