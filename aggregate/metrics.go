package aggregate

import (
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// durationBuckets are the upper bounds of fastgate_aggregate_duration_seconds,
// 100µs to 10s, as for the gateway's request durations.
var durationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// endpointMetrics are an aggregate's series, all created by New; the
// request path only increments them.
type endpointMetrics struct {
	requests [numStatuses]*metrics.Counter
	parts    [][numOutcomes]*metrics.Counter // per part, indexed by Outcome (OutcomePending: nil, never counted)
	duration *metrics.PrometheusHistogram
}

// newEndpointMetrics gets or creates the series (get: a reloaded config may
// build the same aggregate again on the same set).
func newEndpointMetrics(set *metrics.Set, name string, parts []part) *endpointMetrics {
	agg := "aggregate=" + quote(name)
	m := &endpointMetrics{parts: make([][numOutcomes]*metrics.Counter, len(parts))}
	for s := range numStatuses {
		m.requests[s] = set.GetOrCreateCounter("fastgate_aggregate_requests_total{" + agg + ",status=" + quote(statusNames[s]) + "}")
	}
	for i := range parts {
		labels := agg + ",part=" + quote(parts[i].key)
		for o := OutcomeOK; o < numOutcomes; o++ {
			m.parts[i][o] = set.GetOrCreateCounter("fastgate_aggregate_part_total{" + labels + ",outcome=" + quote(o.String()) + "}")
		}
	}
	m.duration = set.GetOrCreatePrometheusHistogramExt("fastgate_aggregate_duration_seconds{"+agg+"}", durationBuckets)
	return m
}

// quote makes a Prometheus label value.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
