package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// fakeResults is one scenario where the gateway and nginx have the given
// closed-loop req/s, p99 and CPU/req, and open-loop p99.
func fakeResults(name string, gw, ng [4]float64) *results {
	mk := func(v [4]float64) targetResult {
		return targetResult{
			Closed: &sample{RPS: v[0], P99US: v[1], CPUPerReqUS: v[2], P50US: v[1] / 4, P999US: v[1] * 2, SyscallsPerReq: 4.5,
				Spectrum: []point{{50, v[1] / 4}, {99, v[1]}, {99.9, v[1] * 2}}},
			Open: &sample{RPS: 1000, P99US: v[3], P50US: v[3] / 4, Spectrum: []point{{50, v[3] / 4}, {99, v[3]}}},
		}
	}
	g, n := mk(gw), mk(ng)
	g.Name, n.Name = "gateway", "nginx"
	return &results{Settings: settings{Rounds: 3}, Scenarios: []scenarioResult{{
		Name: name, Description: "GET", OpenRate: 1000,
		Targets: []targetResult{{Name: "direct", Closed: &sample{RPS: 90000, P99US: 500}}, g, n},
	}}}
}

func TestCompareBaseline(t *testing.T) {
	even := [4]float64{50000, 5000, 20, 400}
	// two is proxy-small with the given values plus post-4k with nginx's.
	two := func(gw1, gw2 [4]float64) *results {
		r := fakeResults("proxy-small", gw1, even)
		r.Scenarios = append(r.Scenarios, fakeResults("post-4k", gw2, even).Scenarios...)
		return r
	}
	one := fakeResults("proxy-small", even, even)
	b := band{RPS: 0.10, P99: 0.25, CPU: 0.15, OpenP99: 0.25}
	tests := []struct {
		name      string
		base      *results
		fresh     *results
		checks    int
		regressed []string // metrics expected to regress
		band      *band    // [b]
	}{
		{name: "same", base: one, fresh: fakeResults("proxy-small", even, even), checks: 5},
		{name: "inside band", base: one, fresh: fakeResults("proxy-small", [4]float64{46000, 6000, 22, 480}, even), checks: 5},
		{name: "both slower, ratio same", base: one, checks: 5,
			fresh: fakeResults("proxy-small", [4]float64{25000, 10000, 40, 800}, [4]float64{25000, 10000, 40, 800})},
		{name: "throughput regression", base: one, fresh: fakeResults("proxy-small", [4]float64{40000, 5000, 20, 400}, even), checks: 5,
			regressed: []string{"req/s gateway÷nginx"}},
		{name: "p99 and cpu regression", base: one, fresh: fakeResults("proxy-small", [4]float64{50000, 7000, 25, 600}, even), checks: 5,
			regressed: []string{"p99 gateway÷nginx (closed)", "p99 gateway÷nginx (open)", "CPU/req gateway÷nginx"}},
		{name: "improvement is not a regression", base: one, fresh: fakeResults("proxy-small", [4]float64{70000, 2000, 10, 100}, even), checks: 5},
		{name: "p99 pooled: one noisy scenario absorbed", base: two(even, even), checks: 8,
			fresh: two([4]float64{50000, 7000, 20, 400}, even)},
		{name: "p99 pooled: worse in every scenario", base: two(even, even), checks: 8,
			fresh:     two([4]float64{50000, 7000, 20, 400}, [4]float64{50000, 7000, 20, 400}),
			regressed: []string{"p99 gateway÷nginx (closed)"}},
		// Soundness, outside any band: one row per compared scenario.
		{name: "gateway answered errors", base: one, checks: 5, regressed: []string{"errors gateway (limit: nginx's, or 0.1%)"},
			fresh: func() *results {
				r := fakeResults("proxy-small", even, even)
				r.Scenarios[0].target("gateway").Closed.Errors.Status = 10
				return r
			}()},
		{name: "gateway failed every round of a scenario", base: two(even, even), checks: 6, regressed: []string{"results gateway, nginx (every run)"},
			fresh: func() *results {
				r := two(even, even)
				r.Scenarios[1].target("gateway").Closed = nil
				return r
			}()},
		{name: "gateway died in the open loop", base: two(even, even), checks: 8, regressed: []string{"results gateway, nginx (every run)"},
			fresh: func() *results {
				r := two(even, even)
				g := r.Scenarios[1].target("gateway")
				g.Open, g.Failures = nil, []string{"open round 1: refused", "open round 2: refused", "open round 3: refused"}
				return r
			}()},
		{name: "gateway failed one closed round", base: one, checks: 5, regressed: []string{"results gateway, nginx (every run)"},
			fresh: func() *results {
				r := fakeResults("proxy-small", even, even)
				r.Scenarios[0].target("gateway").Failures = []string{"closed round 2: exit status 2"}
				return r
			}()},
		{name: "a stray error is tolerated", base: one, checks: 5,
			fresh: func() *results {
				r := fakeResults("proxy-small", even, even)
				g := r.Scenarios[0].target("gateway")
				g.Closed.Requests, g.Closed.Errors.Timeout = 200000, 3
				return r
			}()},
		{name: "a scenario nginx skips is not checked", checks: 5,
			base: func() *results {
				r := two(even, even)
				n := r.Scenarios[1].target("nginx")
				n.Skipped, n.Closed, n.Open = "no equivalent", nil, nil
				return r
			}(),
			fresh: func() *results {
				r := two(even, even)
				n := r.Scenarios[1].target("nginx")
				n.Skipped, n.Closed, n.Open = "no equivalent", nil, nil
				return r
			}()},
		// jwt-verify was added after the baseline was taken: listed, not
		// compared, not a failure.
		{name: "a scenario the baseline lacks is reported, not gated", base: one, checks: 6,
			fresh: func() *results {
				r := fakeResults("proxy-small", even, even)
				r.Scenarios = append(r.Scenarios, fakeResults("jwt-verify", [4]float64{1, 1e6, 1e6, 1e6}, even).Scenarios...)
				return r
			}()},
		{name: "open p99 not gated at band 0", base: one, fresh: fakeResults("proxy-small", [4]float64{50000, 5000, 20, 4000}, even), checks: 5,
			band: &band{RPS: 0.10, P99: 0.25, CPU: 0.15}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bb := b
			if tt.band != nil {
				bb = *tt.band
			}
			checks, err := compareBaseline(tt.base, tt.fresh, bb)
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != tt.checks {
				t.Fatalf("%d checks, want %d: %+v", len(checks), tt.checks, checks)
			}
			var got []string
			for _, c := range checks {
				if c.Regressed {
					got = append(got, c.Metric)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.regressed, ",") {
				t.Fatalf("regressed %v, want %v", got, tt.regressed)
			}
			var out bytes.Buffer
			if writeChecks(&out, checks, bb) != (len(tt.regressed) > 0) {
				t.Fatalf("writeChecks verdict wrong:\n%s", out.String())
			}
		})
	}
}

func TestCompareBaselineNothingComparable(t *testing.T) {
	base := fakeResults("proxy-small", [4]float64{1, 1, 1, 1}, [4]float64{1, 1, 1, 1})
	noNginx := fakeResults("proxy-small", [4]float64{1, 1, 1, 1}, [4]float64{1, 1, 1, 1})
	noNginx.Scenarios[0].Targets = noNginx.Scenarios[0].Targets[:2]
	skipped := fakeResults("proxy-small", [4]float64{1, 1, 1, 1}, [4]float64{1, 1, 1, 1})
	skipped.Scenarios[0].Skipped = "stubs failed"
	tests := []struct {
		name  string
		fresh *results
	}{
		{name: "other scenario", fresh: fakeResults("proxy-large", [4]float64{1, 1, 1, 1}, [4]float64{1, 1, 1, 1})},
		{name: "nginx missing", fresh: noNginx},
		{name: "scenario skipped", fresh: skipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compareBaseline(base, tt.fresh, defaultBand()); !errors.Is(err, errNoComparable) {
				t.Fatalf("err = %v, want errNoComparable", err)
			}
		})
	}
}

// TestCheckFromFiles runs the -from/-check path of the command end to end.
func TestCheckFromFiles(t *testing.T) {
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.json")
	if err := writeJSON(basePath, fakeResults("proxy-small", [4]float64{50000, 5000, 20, 400}, [4]float64{50000, 5000, 20, 400})); err != nil {
		t.Fatal(err)
	}
	even := [4]float64{50000, 5000, 20, 400}
	withNew := fakeResults("proxy-small", even, even)
	withNew.Scenarios = append(withNew.Scenarios, fakeResults("jwt-verify", [4]float64{1, 1, 1, 1}, even).Scenarios...)
	tests := []struct {
		name  string
		fresh *results
		code  int
		want  string // in stdout
	}{
		{name: "ok", fresh: fakeResults("proxy-small", even, even), code: exitOK},
		{name: "regression", fresh: fakeResults("proxy-small", [4]float64{30000, 5000, 20, 400}, even), code: exitRegression},
		{name: "incomparable", fresh: fakeResults("jwt", [4]float64{1, 1, 1, 1}, [4]float64{1, 1, 1, 1}), code: exitError},
		{name: "new scenario", fresh: withNew, code: exitOK,
			want: "| jwt-verify | not in the baseline: not compared | — | — | — | new (not gated) |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			freshPath := filepath.Join(t.TempDir(), "fresh.json")
			if err := writeJSON(freshPath, tt.fresh); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"-from", freshPath, "-check", "-baseline", basePath}, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), "### proxy-small") && tt.code != exitError {
				t.Errorf("no table:\n%s", stdout.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout lacks %q:\n%s", tt.want, stdout.String())
			}
		})
	}
}
