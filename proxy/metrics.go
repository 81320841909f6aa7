package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/balance"
)

// durationBuckets are the upper bounds of fastgate_request_duration_seconds,
// from 100µs to 10s, Prometheus style.
var durationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// commonCodes get their requests_total series at config load, so that they
// read 0 before the first request; other codes get theirs on first use.
var commonCodes = []int{200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 413, 414, 429, 431, 500, 501, 502, 503, 504}

// routeMetrics are the series of one route (or pseudo-route such as
// "_unmatched"). Every series is created before the first request that
// updates it; the request path only loads pointers.
type routeMetrics struct {
	set      *metrics.Set
	labels   string // `route="...",service="..."`
	codes    [600]atomic.Pointer[metrics.Counter]
	duration *metrics.PrometheusHistogram
}

func newRouteMetrics(set *metrics.Set, route, service string) *routeMetrics {
	m := &routeMetrics{set: set, labels: "route=" + quote(route) + ",service=" + quote(service)}
	m.duration = set.NewPrometheusHistogramExt("fastgate_request_duration_seconds{"+m.labels+"}", durationBuckets)
	for _, c := range commonCodes {
		m.code(c)
	}
	return m
}

// code returns the requests_total counter for status c, creating it on the
// first request with that status (once per route and code).
func (m *routeMetrics) code(c int) *metrics.Counter {
	if c < 100 || c >= len(m.codes) {
		c = 599
	}
	if p := m.codes[c].Load(); p != nil {
		return p
	}
	ctr := m.set.GetOrCreateCounter(fmt.Sprintf(`fastgate_requests_total{%s,code="%d"}`, m.labels, c))
	m.codes[c].CompareAndSwap(nil, ctr)
	return m.codes[c].Load()
}

// quote makes a Prometheus label value: backslash, double quote and
// newline escaped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// instanceMetrics are the series of one upstream instance.
type instanceMetrics struct {
	logField  []byte // the access log's "instance" field, escaped once
	outcomes  [numOutcomes]*metrics.Counter
	checks    [2]*metrics.Counter // health check results: fail, pass
	ejections *metrics.Counter    // breaker trips
}

func newInstanceMetrics(set *metrics.Set, in *balance.Instance) *instanceMetrics {
	labels := "service=" + quote(in.Service().Name()) + ",instance=" + quote(in.ID())
	m := &instanceMetrics{logField: append([]byte(`,"instance":`), appendJSONString(nil, in.ID())...)}
	for o := range numOutcomes {
		m.outcomes[o] = set.NewCounter(fmt.Sprintf(`fastgate_upstream_requests_total{%s,outcome=%q}`, labels, outcomeNames[o]))
	}
	set.NewGauge("fastgate_upstream_in_flight{"+labels+"}", func() float64 { return float64(in.InFlight()) })
	set.NewGauge("fastgate_instance_up{"+labels+"}", func() float64 {
		if in.Healthy() {
			return 1
		}
		return 0
	})
	set.NewGauge("fastgate_breaker_state{"+labels+"}", func() float64 { return float64(in.Breaker().State()) })
	set.NewGauge("fastgate_instance_effective_weight{"+labels+"}", func() float64 { return float64(in.EffectiveWeight()) })
	m.ejections = set.NewCounter("fastgate_ejections_total{" + labels + "}")
	m.checks[0] = set.NewCounter(`fastgate_health_checks_total{` + labels + `,result="fail"}`)
	m.checks[1] = set.NewCounter(`fastgate_health_checks_total{` + labels + `,result="pass"}`)
	return m
}
