package main

import (
	"math"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{name: "odd", in: []float64{3, 1, 2}, want: 2},
		{name: "even", in: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "one", in: []float64{7}, want: 7},
		{name: "nan ignored", in: []float64{math.NaN(), 5, 1}, want: 3},
		{name: "empty", in: nil, want: 0},
		{name: "all nan", in: []float64{math.NaN()}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Fatalf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMedianSample(t *testing.T) {
	rounds := []sample{
		{Requests: 100, Seconds: 1, RPS: 100, P99US: 900, CPUPerReqUS: 30, Errors: errorCounts{Read: 1},
			Spectrum: []point{{50, 10}, {99, 900}}},
		{Requests: 300, Seconds: 1, RPS: 300, P99US: 100, CPUPerReqUS: 10, Errors: errorCounts{Status: 2},
			Spectrum: []point{{50, 30}, {99, 100}}},
		{Requests: 200, Seconds: 1, RPS: 200, P99US: 500, CPUPerReqUS: 20,
			Spectrum: []point{{50, 20}, {99, 500}}},
	}
	m := medianSample(rounds)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"rps", m.RPS, 200},
		{"p99", m.P99US, 500},
		{"cpu", m.CPUPerReqUS, 20},
		{"requests summed", float64(m.Requests), 600},
		{"seconds summed", m.Seconds, 3},
		{"errors summed", float64(m.Errors.Total()), 3},
		{"spectrum p50", m.Spectrum[0].US, 20},
		{"spectrum p99", m.Spectrum[1].US, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if medianSample(nil) != nil {
		t.Error("median of no rounds is not nil")
	}
}

// TestFillLatency checks the percentiles read from an HDR histogram against
// a distribution whose percentiles are known exactly.
func TestFillLatency(t *testing.T) {
	tests := []struct {
		name   string
		record func(record func(us int64))
		p50    float64
		p99    float64
		p999   float64
		max    float64
	}{
		{name: "uniform 1..10000 us", record: func(r func(int64)) {
			for v := int64(1); v <= 10000; v++ {
				r(v)
			}
		}, p50: 5000, p99: 9900, p999: 9990, max: 10000},
		{name: "one outlier in 1000", record: func(r func(int64)) {
			for range 999 {
				r(100)
			}
			r(2_000_000)
		}, p50: 100, p99: 100, p999: 100, max: 2_000_000},
		{name: "two modes", record: func(r func(int64)) {
			for range 980 {
				r(200)
			}
			for range 20 {
				r(50_000)
			}
		}, p50: 200, p99: 50_000, p999: 50_000, max: 50_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHist()
			tt.record(func(v int64) {
				if err := h.RecordValue(v); err != nil {
					t.Fatal(err)
				}
			})
			var s sample
			fillLatency(&s, h)
			// HDR at 3 significant digits is exact to 0.1%.
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"p50", s.P50US, tt.p50}, {"p99", s.P99US, tt.p99}, {"p99.9", s.P999US, tt.p999}, {"max", s.MaxUS, tt.max}} {
				if !near(c.got, c.want, 0.002) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if len(s.Spectrum) != len(spectrumPcts) {
				t.Fatalf("spectrum %v", s.Spectrum)
			}
			for i := 1; i < len(s.Spectrum); i++ {
				if s.Spectrum[i].US < s.Spectrum[i-1].US {
					t.Errorf("spectrum not monotonic: %v", s.Spectrum)
				}
			}
		})
	}
}

func TestSetCPU(t *testing.T) {
	tests := []struct {
		name          string
		requests      int64
		proxy, up     float64
		wantPerReqUS  float64
		wantUpPerReqU float64
	}{
		{name: "normal", requests: 100_000, proxy: 2, up: 1, wantPerReqUS: 20, wantUpPerReqU: 10},
		{name: "no requests", requests: 0, proxy: 2, up: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sample{Requests: tt.requests}
			s.setCPU(tt.proxy, tt.up)
			if s.CPUPerReqUS != tt.wantPerReqUS || s.UpstreamCPUPerReqUS != tt.wantUpPerReqU || s.CPUSeconds != tt.proxy {
				t.Fatalf("got %+v", s)
			}
		})
	}
}
