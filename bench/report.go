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
	OpenRate float64        `json:"open_rate,omitempty"`
	Note     string         `json:"note,omitempty"`
	Targets  []targetResult `json:"targets"`
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
		writeScenarioMarkdown(w, &r.Scenarios[i])
	}
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
	ng := s.target("nginx")
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
		if open {
			fmt.Fprintf(w, "Open loop at %s req/s:\n\n", fmtNum(s.OpenRate))
			fmt.Fprintln(w, "| target | req/s | p50 | p90 | p99 | p99.9 | max | errors | CPU/req | p99 ÷ nginx | CPU ÷ nginx |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		} else {
			fmt.Fprintln(w, "Closed loop (wrk):")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| target | req/s | p50 | p99 | p99.9 | errors | CPU/req | req/s ÷ nginx | p99 ÷ nginx | CPU ÷ nginx |")
			fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		}
		base := pick(ng, open)
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
