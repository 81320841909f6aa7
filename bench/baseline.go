package main

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// band is the noise band bench-check tolerates, as fractions of the
// baseline ratio. The defaults come from repeated runs on the 2-core
// reference machine; see README.md.
type band struct {
	RPS float64 // a scenario's gateway/nginx req/s may drop by this fraction
	P99 float64 // the geometric mean over scenarios of gateway/nginx p99 may grow by this fraction
	CPU float64 // a scenario's gateway/nginx CPU per request may grow by this fraction
	// OpenP99 is P99's counterpart for the open loop; 0 reports the ratio
	// without gating on it (the default: on the shared 2-core reference
	// machine it swings more than 3x between identical runs).
	OpenP99 float64
}

func defaultBand() band { return band{RPS: 0.20, P99: 1.50, CPU: 0.30} }

// check is one compared ratio.
type check struct {
	Scenario string
	Metric   string
	Base     float64
	Fresh    float64
	// Limit is the worst fresh value still inside the band [0: not gated,
	// unless Exact].
	Limit float64
	Exact bool // gated on Limit, even 0, outside any band
	// New is a scenario the fresh run ran and the baseline lacks: reported,
	// never gated, since there is nothing to compare it with.
	New       bool
	Regressed bool
}

// errNoComparable is returned when baseline and fresh share nothing to compare.
var errNoComparable = errors.New("bench: no scenario with both gateway and nginx results in baseline and fresh run")

// metricSpec says how to read one tracked ratio from a scenario.
type metricSpec struct {
	name         string
	value        func(*sample) float64
	open         bool // from the open-loop medians
	higherBetter bool
	// pooled metrics are compared once, as the geometric mean over the
	// scenarios both runs have, because one scenario's is too noisy.
	pooled bool
	tol    func(band) float64
}

func trackedMetrics() []metricSpec {
	return []metricSpec{
		{name: "req/s gateway÷nginx", value: func(s *sample) float64 { return s.RPS }, higherBetter: true,
			tol: func(b band) float64 { return b.RPS }},
		{name: "p99 gateway÷nginx (closed)", value: func(s *sample) float64 { return s.P99US }, pooled: true,
			tol: func(b band) float64 { return b.P99 }},
		{name: "p99 gateway÷nginx (open)", value: func(s *sample) float64 { return s.P99US }, open: true, pooled: true,
			tol: func(b band) float64 { return b.OpenP99 }},
		{name: "CPU/req gateway÷nginx", value: func(s *sample) float64 { return s.CPUPerReqUS },
			tol: func(b band) float64 { return b.CPU }},
	}
}

// gatewayRatio is the gateway's metric over nginx's in one scenario, or NaN.
func gatewayRatio(s *scenarioResult, m metricSpec) float64 {
	g, n := s.target("gateway"), s.target("nginx")
	if g == nil || n == nil {
		return math.NaN()
	}
	gs, ns := g.Closed, n.Closed
	if m.open {
		gs, ns = g.Open, n.Open
	}
	if gs == nil || ns == nil {
		return math.NaN()
	}
	return ratio(m.value(gs), m.value(ns))
}

// compareBaseline compares the fresh run's gateway/nginx ratios with the
// baseline's: req/s and CPU per request scenario by scenario, p99 pooled
// over scenarios. A metric missing on either side is not compared;
// errNoComparable when nothing was. A scenario the baseline lacks is
// listed as new, not compared.
func compareBaseline(base, fresh *results, b band) ([]check, error) {
	var out []check
	for _, m := range trackedMetrics() {
		var bl, fl []float64 // pooled ratios, log
		for i := range fresh.Scenarios {
			fs := &fresh.Scenarios[i]
			bs := base.scenario(fs.Name)
			if bs == nil || fs.Skipped != "" || bs.Skipped != "" {
				continue
			}
			bv, fv := gatewayRatio(bs, m), gatewayRatio(fs, m)
			if math.IsNaN(bv) || math.IsNaN(fv) {
				continue
			}
			if m.pooled {
				bl, fl = append(bl, math.Log(bv)), append(fl, math.Log(fv))
				continue
			}
			out = append(out, judge(fs.Name, m, bv, fv, b))
		}
		if len(bl) > 0 {
			out = append(out, judge(fmt.Sprintf("all %d (geomean)", len(bl)), m, math.Exp(mean(bl)), math.Exp(mean(fl)), b))
		}
	}
	if len(out) == 0 {
		return nil, errNoComparable
	}
	out = append(out, soundnessChecks(base, fresh)...)
	return append(out, newScenarios(base, fresh)...), nil
}

// newScenarios lists the scenarios the fresh run ran that the baseline
// lacks (added since it was taken).
func newScenarios(base, fresh *results) []check {
	var out []check
	for _, fs := range fresh.Scenarios {
		if fs.Skipped == "" && base.scenario(fs.Name) == nil {
			out = append(out, check{Scenario: fs.Name, Metric: "not in the baseline: not compared", New: true})
		}
	}
	return out
}

// soundnessChecks are what makes the ratios mean something, gated outside
// any band, in every scenario the fresh run ran that the baseline compares:
//   - the gateway and nginx produced every result the baseline has (closed
//     loop, and open loop when the baseline has it), and the gateway failed
//     no more runs than nginx: a gateway that crashed leaves no ratio, or
//     a median of the rounds it survived, which must not pass;
//   - the gateway answered no more errors than nginx, beyond one per
//     thousand of its requests (a stray timeout on a noisy box): errors are
//     out of req/s and CPU per request, so a failing gateway would
//     otherwise look fine.
func soundnessChecks(base, fresh *results) []check {
	var out []check
	for i := range fresh.Scenarios {
		fs := &fresh.Scenarios[i]
		bs := base.scenario(fs.Name)
		if bs == nil || fs.Skipped != "" || bs.Skipped != "" || !hasClosed(bs, "gateway") || !hasClosed(bs, "nginx") {
			continue // not compared in the baseline (nginx skipped: aggregate-4, jwt)
		}
		g, n := fs.target("gateway"), fs.target("nginx")
		wantOpen := bs.target("gateway").Open != nil && bs.target("nginx").Open != nil
		complete := hasClosed(fs, "gateway") && hasClosed(fs, "nginx") &&
			(!wantOpen || g.Open != nil && n.Open != nil) && len(g.Failures) <= len(n.Failures)
		if !complete {
			out = append(out, check{Scenario: fs.Name, Metric: "results gateway, nginx (every run)", Base: 1, Fresh: 0, Limit: 1, Exact: true, Regressed: true})
			continue
		}
		ge, ne := g.Closed.Errors.Total(), n.Closed.Errors.Total()
		reqs := g.Closed.Requests
		if g.Open != nil && n.Open != nil {
			ge, ne, reqs = ge+g.Open.Errors.Total(), ne+n.Open.Errors.Total(), reqs+g.Open.Requests
		}
		limit := max(ne, reqs/1000)
		out = append(out, check{Scenario: fs.Name, Metric: "errors gateway (limit: nginx's, or 0.1%)", Base: float64(ne), Fresh: float64(ge),
			Limit: float64(limit), Exact: true, Regressed: ge > limit})
	}
	return out
}

// hasClosed reports whether s has closed-loop results for target name.
func hasClosed(s *scenarioResult, name string) bool {
	t := s.target(name)
	return t != nil && t.Skipped == "" && t.Closed != nil
}

func judge(scenario string, m metricSpec, base, fresh float64, b band) check {
	c := check{Scenario: scenario, Metric: m.name, Base: base, Fresh: fresh}
	switch {
	case m.tol(b) <= 0:
		// Reported, not gated.
	case m.higherBetter:
		c.Limit = base * (1 - m.tol(b))
		c.Regressed = fresh < c.Limit
	default:
		c.Limit = base * (1 + m.tol(b))
		c.Regressed = fresh > c.Limit
	}
	return c
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// writeChecks prints the comparison as Markdown and reports whether any
// metric regressed.
func writeChecks(w io.Writer, checks []check, b band) (regressed bool) {
	fmt.Fprintf(w, "### bench-check against the baseline (band: req/s -%.0f%%, closed p99 geomean +%.0f%%, CPU/req +%.0f%%, open p99 geomean %s)\n\n",
		b.RPS*100, b.P99*100, b.CPU*100, map[bool]string{true: fmt.Sprintf("+%.0f%%", b.OpenP99*100), false: "not gated"}[b.OpenP99 > 0])
	fmt.Fprintln(w, "| scenario | ratio | baseline | fresh | limit | verdict |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|---|")
	for _, c := range checks {
		if c.New {
			fmt.Fprintf(w, "| %s | %s | — | — | — | new (not gated) |\n", c.Scenario, c.Metric)
			continue
		}
		verdict, limit := "ok", fmt.Sprintf("%.3f", c.Limit)
		switch {
		case c.Regressed:
			verdict = "REGRESSION"
			regressed = true
		case c.Limit == 0 && !c.Exact:
			verdict, limit = "info (not gated)", "—"
		}
		fmt.Fprintf(w, "| %s | %s | %.3f | %.3f | %s | %s |\n", c.Scenario, c.Metric, c.Base, c.Fresh, limit, verdict)
	}
	fmt.Fprintln(w)
	return regressed
}
