package main

import (
	"math"
	"slices"
)

// spectrumPcts are the percentiles recorded for plots, p50..p99.9.
var spectrumPcts = [...]float64{50, 75, 90, 95, 99, 99.5, 99.9}

// point is one percentile of a latency distribution.
type point struct {
	Pct float64 `json:"pct"`
	US  float64 `json:"us"`
}

// errorCounts are the failed requests of one run, by kind.
type errorCounts struct {
	Connect int64 `json:"connect"`
	Read    int64 `json:"read"`
	Write   int64 `json:"write"`
	Timeout int64 `json:"timeout"`
	// Status counts responses outside 2xx (wrk: outside 2xx and 3xx).
	Status int64 `json:"status"`
	// Missed counts open-loop requests whose send time came but that were
	// never sent before the run's hard stop.
	Missed int64 `json:"missed,omitempty"`
}

// Total is the number of failed requests of any kind.
func (e errorCounts) Total() int64 {
	return e.Connect + e.Read + e.Write + e.Timeout + e.Status + e.Missed
}

func (e errorCounts) add(o errorCounts) errorCounts {
	return errorCounts{e.Connect + o.Connect, e.Read + o.Read, e.Write + o.Write,
		e.Timeout + o.Timeout, e.Status + o.Status, e.Missed + o.Missed}
}

// sample is the outcome of one load run against one target, or the median
// of several.
type sample struct {
	// Requests counts good answers (2xx; wrk's 3xx too): errors, non-2xx
	// answers included, are in Errors, and in neither RPS nor CPU per
	// request.
	Requests int64   `json:"requests"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	// Rate is the open-loop target rate [0 for closed loop].
	Rate     float64     `json:"rate,omitempty"`
	P50US    float64     `json:"p50_us"`
	P90US    float64     `json:"p90_us"`
	P99US    float64     `json:"p99_us"`
	P999US   float64     `json:"p999_us"`
	MaxUS    float64     `json:"max_us"`
	Spectrum []point     `json:"spectrum,omitempty"`
	Errors   errorCounts `json:"errors"`
	// CPUSeconds is the proxy's process tree CPU time over the run.
	CPUSeconds float64 `json:"cpu_s"`
	// CPUPerReqUS is CPUSeconds per completed request, in microseconds
	// [0 when not measured, as for direct].
	CPUPerReqUS float64 `json:"cpu_us_per_req"`
	// UpstreamCPUPerReqUS is the stub process's CPU per request.
	UpstreamCPUPerReqUS float64 `json:"upstream_cpu_us_per_req"`
	// SyscallsPerReq is the proxy's read- and write-family system calls
	// (/proc/PID/io syscr+syscw) per completed request [0: not measured].
	// The kernel counts read, readv, write and writev (also those that
	// return EAGAIN) but not recv or send, which nginx and HAProxy use for
	// sockets: compare a target only with itself across runs.
	SyscallsPerReq float64 `json:"rw_syscalls_per_req,omitempty"`
	// SwitchesPerReq and UpstreamSwitchesPerReq are the voluntary context
	// switches (a thread blocked, then was woken) of the proxy's and of
	// the stubs' threads per completed request: what sleeping and waking
	// cost beyond the requests' own work. A proxy that delivers requests
	// one by one rather than in bursts makes the stubs' threads idle and
	// wake more often, at a cost in the stubs' CPU per request.
	SwitchesPerReq         float64 `json:"vol_switches_per_req,omitempty"`
	UpstreamSwitchesPerReq float64 `json:"upstream_vol_switches_per_req,omitempty"`
	// UpstreamRequests is how many requests the stubs served during the
	// run, health checks excluded [nil: not counted]. Per client request:
	// 1 through a proxy, the part count through an aggregate, about 0 from
	// a cache.
	UpstreamRequests *int64 `json:"upstream_requests,omitempty"`
}

// setCPU fills the CPU fields from the process trees' CPU seconds.
func (s *sample) setCPU(proxy, upstream float64) {
	s.CPUSeconds = proxy
	if s.Requests > 0 {
		s.CPUPerReqUS = proxy / float64(s.Requests) * 1e6
		s.UpstreamCPUPerReqUS = upstream / float64(s.Requests) * 1e6
	}
}

// setUsage fills the CPU and syscall fields from the proxy's and the stubs'
// usage deltas over the run.
func (s *sample) setUsage(proxy, upstream usage) {
	s.setCPU(proxy.CPU, upstream.CPU)
	if s.Requests > 0 {
		s.SyscallsPerReq = float64(proxy.Syscalls) / float64(s.Requests)
		s.SwitchesPerReq = float64(proxy.Switches) / float64(s.Requests)
		s.UpstreamSwitchesPerReq = float64(upstream.Switches) / float64(s.Requests)
	}
}

// medianSample takes each metric's median over the rounds independently;
// requests, seconds and errors are summed.
func medianSample(rounds []sample) *sample {
	if len(rounds) == 0 {
		return nil
	}
	pick := func(f func(sample) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = f(r)
		}
		return median(v)
	}
	m := &sample{
		RPS:                    pick(func(s sample) float64 { return s.RPS }),
		Rate:                   pick(func(s sample) float64 { return s.Rate }),
		P50US:                  pick(func(s sample) float64 { return s.P50US }),
		P90US:                  pick(func(s sample) float64 { return s.P90US }),
		P99US:                  pick(func(s sample) float64 { return s.P99US }),
		P999US:                 pick(func(s sample) float64 { return s.P999US }),
		MaxUS:                  pick(func(s sample) float64 { return s.MaxUS }),
		CPUSeconds:             pick(func(s sample) float64 { return s.CPUSeconds }),
		CPUPerReqUS:            pick(func(s sample) float64 { return s.CPUPerReqUS }),
		UpstreamCPUPerReqUS:    pick(func(s sample) float64 { return s.UpstreamCPUPerReqUS }),
		SyscallsPerReq:         pick(func(s sample) float64 { return s.SyscallsPerReq }),
		SwitchesPerReq:         pick(func(s sample) float64 { return s.SwitchesPerReq }),
		UpstreamSwitchesPerReq: pick(func(s sample) float64 { return s.UpstreamSwitchesPerReq }),
	}
	for _, r := range rounds {
		m.Requests += r.Requests
		m.Seconds += r.Seconds
		m.Errors = m.Errors.add(r.Errors)
		if r.UpstreamRequests != nil {
			m.UpstreamRequests = new(*r.UpstreamRequests + deref(m.UpstreamRequests))
		}
	}
	for i, p := range rounds[0].Spectrum {
		m.Spectrum = append(m.Spectrum, point{Pct: p.Pct, US: pick(func(s sample) float64 {
			if i < len(s.Spectrum) {
				return s.Spectrum[i].US
			}
			return math.NaN()
		})})
	}
	return m
}

// median of v ignoring NaNs; 0 when nothing is left (JSON has no NaN).
func median(v []float64) float64 {
	w := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) {
			w = append(w, x)
		}
	}
	if len(w) == 0 {
		return 0
	}
	slices.Sort(w)
	n := len(w)
	if n%2 == 1 {
		return w[n/2]
	}
	return (w[n/2-1] + w[n/2]) / 2
}

// percentileOf returns the us value at pct in a spectrum, or 0.
func percentileOf(spec []point, pct float64) float64 {
	for _, p := range spec {
		if p.Pct == pct {
			return p.US
		}
	}
	return 0
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
