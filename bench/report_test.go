package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func TestWriteMarkdown(t *testing.T) {
	r := fakeResults("proxy-small", [4]float64{60000, 4000, 15, 300}, [4]float64{50000, 5000, 20, 400})
	r.Scenarios[0].Targets = append(r.Scenarios[0].Targets, targetResult{Name: "haproxy", Skipped: "not installed (make bench-deps)"})
	r.Scenarios = append(r.Scenarios, scenarioResult{Name: "jwt", Description: "GET", Skipped: pendingFeature})
	var b bytes.Buffer
	writeMarkdown(&b, r)
	out := b.String()
	tests := []struct {
		name string
		want string
	}{
		{name: "scenario heading", want: "### proxy-small: GET"},
		{name: "closed gateway row with ratios", want: "| gateway | 60,000 | 1.00 ms | 4.00 ms | 8.00 ms | 0 | 15 µs | 1.20 | 0.80 | 0.75 |"},
		{name: "nginx is 1.00", want: "| nginx | 50,000 | 1.25 ms | 5.00 ms | 10.0 ms | 0 | 20 µs | 1.00 | 1.00 | 1.00 |"},
		{name: "direct has no CPU", want: "| direct | 90,000 | — | 500 µs | — | 0 | — | 1.80 | 0.10 | — |"},
		{name: "open loop rate", want: "Open loop at 1,000 req/s:"},
		{name: "open gateway p99 ratio", want: "| gateway | 1,000 | 75 µs | — | 300 µs | — | — | 0 | — | 0.75 | — |"},
		{name: "skipped peer", want: "| haproxy | skipped: not installed (make bench-deps) |"},
		{name: "pending scenario", want: "### jwt: GET\n\nskipped: feature not built yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, tt.want) {
				t.Fatalf("markdown lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestWriteReference(t *testing.T) {
	r := fakeResults("proxy-small", [4]float64{40000, 5000, 25, 300}, [4]float64{50000, 3000, 20, 400})
	var without bytes.Buffer
	writeMarkdown(&without, r)
	if strings.Contains(without.String(), "reference") {
		t.Errorf("a reference line without the reference target:\n%s", without.String())
	}
	r.Scenarios[0].Targets = append(r.Scenarios[0].Targets, targetResult{Name: referenceTarget,
		Closed: &sample{RPS: 50000, P99US: 4000, CPUPerReqUS: 20}})
	var with bytes.Buffer
	writeMarkdown(&with, r)
	want := "Gateway ÷ fasthttp reference (the gateway's own work over the bare stack), closed loop: req/s 0.80, p99 1.25, CPU/req 1.25."
	if !strings.Contains(with.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, with.String())
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"us", fmtUS(608), "608 µs"},
		{"ms", fmtUS(1234), "1.23 ms"},
		{"tens of ms", fmtUS(58_500), "58.5 ms"},
		{"s", fmtUS(2_500_000), "2.50 s"},
		{"zero", fmtUS(0), "—"},
		{"num", fmtNum(1234567.4), "1,234,567"},
		{"small num", fmtNum(999), "999"},
		{"ratio", fmtRatio(1.234), "1.23"},
		{"nan ratio", fmtRatio(math.NaN()), "—"},
		{"ratio missing", fmtRatio(ratio(0, 5)), "—"},
		{"bytes KiB", fmtBytes(16 << 10), "16 KiB"},
		{"bytes", fmtBytes(256), "256 B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestWriteSVG(t *testing.T) {
	tests := []struct {
		name      string
		r         *results
		polylines int
		want      []string
	}{
		{name: "open loop preferred", r: fakeResults("proxy-small", [4]float64{1, 4000, 1, 300}, [4]float64{1, 5000, 1, 400}),
			polylines: 2, want: []string{"open loop @ 1,000 req/s", ">gateway<", ">nginx<", ">p99.9<"}},
		{name: "no data", r: &results{}, polylines: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeSVG(&b, tt.r); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			dec := xml.NewDecoder(strings.NewReader(out))
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("invalid SVG: %v\n%s", err, out)
				}
			}
			if n := strings.Count(out, "<polyline"); n != tt.polylines {
				t.Errorf("%d polylines, want %d", n, tt.polylines)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("SVG lacks %q", w)
				}
			}
		})
	}
}

func TestPctX(t *testing.T) {
	tests := []struct {
		pct, want float64
	}{{50, math.Log10(2)}, {90, 1}, {99, 2}, {99.9, 3}}
	for _, tt := range tests {
		t.Run(fmtRatio(tt.pct), func(t *testing.T) {
			if got := pctX(tt.pct); math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("pctX(%v) = %v, want %v", tt.pct, got, tt.want)
			}
		})
	}
}

func TestLogTicks(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi float64
		want   string
	}{
		{name: "sub-ms to tens of ms", lo: 0.09, hi: 13.4, want: "0.05 0.1 0.2 0.5 1 2 5 10 20"},
		{name: "exact ends", lo: 0.1, hi: 5, want: "0.1 0.2 0.5 1 2 5"},
		{name: "single value", lo: 1, hi: 1, want: "1 2"},
		{name: "no data", lo: math.Inf(1), hi: 0, want: "0.01 0.02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range logTicks(tt.lo, tt.hi) {
				got = append(got, trimFloat(v))
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("logTicks(%v, %v) = %v, want %s", tt.lo, tt.hi, got, tt.want)
			}
		})
	}
}

// TestRatiosToHAProxy: with nginx skipped (the jwt scenario), the ratios
// are to haproxy, and the header says so.
func TestRatiosToHAProxy(t *testing.T) {
	r := fakeResults("jwt", [4]float64{9000, 20000, 180, 2000}, [4]float64{8000, 10000, 200, 4000})
	r.Scenarios[0].Targets[2].Name = "haproxy"
	r.Scenarios[0].Targets = append(r.Scenarios[0].Targets, targetResult{Name: "nginx", Skipped: noNginxJWT})
	var b bytes.Buffer
	writeMarkdown(&b, r)
	for _, w := range []string{
		"| req/s ÷ haproxy | p99 ÷ haproxy | CPU ÷ haproxy |",
		"| gateway | 9,000 | 5.00 ms | 20.0 ms | 40.0 ms | 0 | 180 µs | 1.12 | 2.00 | 0.90 |",
		"| p99 ÷ haproxy | CPU ÷ haproxy |",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("markdown lacks %q:\n%s", w, b.String())
		}
	}
}

// TestIssue5Checks renders the aggregate scenario's two issue-5 checks from
// one run: the p99 difference to the single proxied call against L + 1 ms,
// and the req/s ratio against 25%.
func TestIssue5Checks(t *testing.T) {
	up := func(n int64) *int64 { return &n }
	agg := func(aggP99, aggRPS float64) *results {
		r := fakeResults("proxy-small", [4]float64{30000, 4000, 15, 300}, [4]float64{50000, 5000, 20, 400})
		r.Scenarios = append(r.Scenarios, scenarioResult{
			Name: "aggregate-4", Description: "GET /agg", OpenRate: 4000, StubLatencyUS: 1000,
			Targets: []targetResult{
				{Name: "gateway", Closed: &sample{RPS: aggRPS, Requests: 1000, UpstreamRequests: up(4000)}, Open: &sample{RPS: 4000, P99US: aggP99}},
				{Name: singleTarget, Closed: &sample{RPS: 20000, Requests: 1000, UpstreamRequests: up(1000)}, Open: &sample{RPS: 4000, P99US: 1500}},
				{Name: "nginx", Skipped: noAggregate},
			},
		})
		return r
	}
	tests := []struct {
		name string
		r    *results
		want []string
	}{
		{name: "both pass", r: agg(3000, 6000), want: []string{
			"stub latency L = 1.00 ms",
			"| (a) p99, open loop at 4,000 req/s: aggregate − single proxied call | 3.00 ms − 1.50 ms = +1.50 ms | ≤ L + 1 ms = 2.00 ms | pass |",
			"| (b) req/s, closed loop: aggregate ÷ single proxied call | 6,000 ÷ 20,000 = 0.30 | ≥ 0.25 | pass |",
			"| (b) also: aggregate ÷ proxy-small's gateway req/s in this run (its own stub latency) | 6,000 ÷ 30,000 = 0.20 | ≥ 0.25 | FAIL |",
			"per client request, closed loop, all rounds: gateway 4.00 (4,000 / 1,000), gateway-single 1.00 (1,000 / 1,000).",
			"| nginx | skipped: no equivalent: no fan-out aggregation |",
		}},
		{name: "both fail", r: agg(4000, 4000), want: []string{
			"= +2.50 ms | ≤ L + 1 ms = 2.00 ms | FAIL |",
			"4,000 ÷ 20,000 = 0.20 | ≥ 0.25 | FAIL |",
		}},
		{name: "aggregate faster", r: agg(1200, 6000), want: []string{"1.20 ms − 1.50 ms = −300 µs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeMarkdown(&b, tt.r)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("markdown lacks %q:\n%s", w, b.String())
				}
			}
			if strings.Count(b.String(), "Issue 5 checks") != 1 {
				t.Errorf("issue-5 checks not exactly once:\n%s", b.String())
			}
		})
	}
}
