package proxy

import (
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/balance"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/health"
)

// upstream is a service with what the gateway keeps beside it: the series
// of its instances (indexed like Service.Instances), its retry counter and
// its active health checker (nil when health.path is empty).
type upstream struct {
	svc       *balance.Service
	name      []byte
	instances []*instanceMetrics
	retried   *metrics.Counter
	checker   *health.Checker
	attempt   time.Duration // per-attempt timeout
	retries   int           // extra attempts
}

func (g *Gateway) newUpstream(sc *config.Service, o Options) *upstream {
	u := &upstream{name: []byte(sc.Name), attempt: sc.Timeout.Duration, retries: *sc.Retries}
	u.svc = balance.New(sc, balance.Options{
		Dial:  o.Dial,
		Clock: o.Clock,
		OnBreaker: func(in *balance.Instance, from, to health.State, openFor time.Duration) {
			e := g.log.Warn()
			if to == health.Closed {
				e = g.log.Info()
			} else {
				u.instances[in.Index()].ejections.Inc()
			}
			e.Str("service", sc.Name).Str("instance", in.ID()).Stringer("from", from).Stringer("to", to).
				Dur("open_for", openFor).Msg("circuit breaker")
		},
	})
	u.retried = g.metrics.NewCounter(`fastgate_retries_total{service=` + quote(sc.Name) + `}`)
	for _, in := range u.svc.Instances() {
		u.instances = append(u.instances, newInstanceMetrics(g.metrics, in))
	}
	if sc.Health.Path != "" {
		u.checker = g.newChecker(sc, u)
	}
	return u
}

func (g *Gateway) newChecker(sc *config.Service, u *upstream) *health.Checker {
	targets := make([]health.Target, len(u.svc.Instances()))
	for i, in := range u.svc.Instances() {
		targets[i] = in
	}
	h := &sc.Health
	return health.NewChecker(health.CheckConfig{
		Path:         h.Path,
		Interval:     h.Interval.Duration,
		Timeout:      h.Timeout.Duration,
		Rise:         h.Rise,
		Fall:         h.Fall,
		ExpectStatus: h.ExpectStatus,
	}, targets, health.CheckerOptions{
		Clock: g.clock,
		OnResult: func(i int, r health.Result) {
			u.instances[i].checks[boolIndex(r.OK)].Inc()
		},
		OnChange: func(i int, up bool, r health.Result) {
			e := g.log.Warn()
			if up {
				e = g.log.Info()
			}
			e.Str("service", sc.Name).Str("instance", u.svc.Instances()[i].ID()).Bool("up", up).
				Int("status", r.Status).Str("error", r.Err).Msg("health check: instance state changed")
		},
	})
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
