// Package balance owns a service's upstream instances and picks one for each
// request with smooth weighted round-robin (nginx semantics) over the
// instances that are available.
//
// The pick takes no lock, makes no allocation and logs nothing: it reads an
// immutable schedule through an atomic.Pointer and per-instance atomics.
package balance

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/health"
	"github.com/fastgate/fastgate/lazyconn"
	"github.com/valyala/fasthttp"
)

// ErrNoInstance is returned when a service has no instance left to try.
var ErrNoInstance = errors.New("balance: no available instance")

// ErrDeadline is returned by Instance.DoDeadline when the deadline passed
// before the request was sent.
var ErrDeadline = errors.New("balance: deadline passed before sending")

// Instance is one upstream address of a service, with its own connection
// pool and state.
//
// It is safe calling Instance methods from concurrently running goroutines.
// It is forbidden copying Instance values.
type Instance struct {
	id     string
	addr   string
	weight int // configured; 0 = drained
	index  int // position in Service.instances, < 64
	svc    *Service
	client *fasthttp.HostClient

	breaker     *health.Breaker
	maxInFlight int64 // 0 = no limit

	up       atomic.Bool  // set by active health checks; true at start
	inFlight atomic.Int64 // requests sent and not yet answered
	eff      atomic.Int32 // effective weight: climbs back to weight after a recovery
}

// ID is the instance id from the config.
func (in *Instance) ID() string { return in.id }

// Addr is the instance's host:port.
func (in *Instance) Addr() string { return in.addr }

// Index is the instance's position in its service's Instances.
func (in *Instance) Index() int { return in.index }

// Weight is the configured weight.
func (in *Instance) Weight() int { return in.weight }

// Service is the service the instance belongs to.
func (in *Instance) Service() *Service { return in.svc }

// Healthy reports the health flag.
func (in *Instance) Healthy() bool { return in.up.Load() }

// InFlight is the number of requests in flight to the instance.
func (in *Instance) InFlight() int64 { return in.inFlight.Load() }

// Breaker is the instance's circuit breaker.
func (in *Instance) Breaker() *health.Breaker { return in.breaker }

// EffectiveWeight is the weight the schedule uses now: the configured
// weight, or less while the instance recovers.
func (in *Instance) EffectiveWeight() int { return int(in.eff.Load()) }

// Available reports whether a pick may return the instance now: health up,
// under max_in_flight, and its breaker allowing (which admits a probe while
// half-open). It takes no lock and does not allocate.
func (in *Instance) Available() bool {
	return in.up.Load() &&
		(in.maxInFlight == 0 || in.inFlight.Load() < in.maxInFlight) &&
		in.breaker.Allow()
}

// SetHealthy sets the health flag and reports whether it changed. An
// instance marked down leaves the schedule; one marked up re-enters it with
// effective weight 1, which climbs back to its weight over its next
// successful requests. The schedule is rebuilt on every change (never on
// the pick path).
func (in *Instance) SetHealthy(up bool) (changed bool) {
	if in.up.Swap(up) == up {
		return false
	}
	if up {
		in.eff.Store(min(1, int32(in.weight)))
	}
	// Pooled connections to an instance that went down, or that was down,
	// are likely dead: a request must not find out the hard way (a POST
	// on one would fail with nothing to retry).
	in.client.CloseIdleConnections()
	in.svc.rebuild()
	return true
}

// Record counts the outcome of one request sent to the instance: it feeds
// the breaker and, on success, raises a recovering instance's effective
// weight by one (nginx's slow recovery), rebuilding the schedule when the
// weight reaches a power of two or the configured weight.
func (in *Instance) Record(failed bool) {
	in.breaker.Record(failed)
	if failed {
		return
	}
	for {
		e := in.eff.Load()
		if int(e) >= in.weight {
			return
		}
		if in.eff.CompareAndSwap(e, e+1) {
			if n := e + 1; n&(n-1) == 0 || int(n) == in.weight {
				in.svc.rebuild()
			}
			return
		}
	}
}

// breakerChanged keeps the schedule in step with the breaker: an ejected
// instance leaves it (Pick offers it its half-open probes separately), a
// closed one re-enters at effective weight 1. Its idle connections are
// closed either way, as in SetHealthy.
func (in *Instance) breakerChanged(_, to health.State, _ time.Duration) {
	if to == health.Closed {
		in.eff.Store(min(1, int32(in.weight)))
	}
	in.client.CloseIdleConnections()
	in.svc.rebuild()
}

// DoDeadline sends req to the instance and reads the answer into resp,
// giving up at deadline. It counts the request as in flight meanwhile.
// It returns ErrDeadline, having sent nothing, when deadline has passed;
// other errors are fasthttp's (see proxy's mapping to HTTP status), of
// which fasthttp.ErrNoFreeConns also means nothing was sent. For a request
// that was not sent, call Cancel instead of Record.
func (in *Instance) DoDeadline(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	// fasthttp's DoDeadline makes the same check but answers ErrTimeout,
	// which is also its error for an upstream that did not answer in time.
	d := time.Until(deadline)
	if d <= 0 {
		return ErrDeadline
	}
	in.inFlight.Add(1)
	err := in.client.DoTimeout(req, resp, d)
	in.inFlight.Add(-1)
	return err
}

// Cancel gives back the breaker's admission of a picked request that was
// not sent (DoDeadline's ErrDeadline or fasthttp.ErrNoFreeConns): no
// outcome is recorded for it, and a half-open probe slot is freed.
func (in *Instance) Cancel() { in.breaker.Cancel() }

// Close closes the instance's idle pooled connections.
func (in *Instance) Close() { in.client.CloseIdleConnections() }

// Service is a named set of weighted instances.
//
// It is safe calling Service methods from concurrently running goroutines.
// It is forbidden copying Service values.
type Service struct {
	name      string
	instances []*Instance // fixed at construction
	ejector   *health.Ejector
	failures  [600]bool // upstream statuses that count as failures

	sched atomic.Pointer[schedule] // read on every pick
	next  atomic.Uint64            // position in the schedule

	// Retry budget: retries may add retryRatio of requests, plus
	// minRetries per second, over the window.
	budget     *health.Window // total = requests, failed = retries
	retryRatio float64
	minRetries float64 // per window

	mu sync.Mutex // serializes rebuilds of sched; never taken by Pick
}

// Options are the optional parts of a service.
type Options struct {
	// Dial replaces TCP dialing (for in-memory listeners in benchmarks) [nil].
	Dial fasthttp.DialFunc
	// Clock drives the breakers [health.SystemClock{}]; the retry budget
	// takes its times from the caller.
	Clock health.Clock
	// OnBreaker is called when an instance's breaker trips or closes [nil].
	OnBreaker func(in *Instance, from, to health.State, openFor time.Duration)
}

// schedule is an immutable smooth-WRR sequence of instance indexes over the
// instances that were healthy when it was built. One period holds each
// instance weight/gcd times.
type schedule struct {
	seq []uint8
}

// retryWindow is the span over which the retry budget is counted.
const retryWindow = 10 * time.Second

// New builds a service and one HostClient pool and breaker per instance.
// cfg must be valid (see config.Parse).
func New(cfg *config.Service, o Options) *Service {
	if o.Clock == nil {
		o.Clock = health.SystemClock{}
	}
	s := &Service{
		name:       cfg.Name,
		ejector:    health.NewEjector(len(cfg.Instances), *cfg.Breaker.MaxEjectedPercent),
		budget:     health.NewWindow(retryWindow),
		retryRatio: *cfg.Limits.RetryBudget,
		minRetries: float64(*cfg.Limits.MinRetriesPerSecond) * retryWindow.Seconds(),
	}
	for _, code := range cfg.Breaker.FailureStatus {
		s.failures[code] = true
	}
	bc := &health.BreakerConfig{
		ConsecutiveFailures: cfg.Breaker.ConsecutiveFailures,
		ErrorRatio:          cfg.Breaker.ErrorRatio,
		MinRequests:         cfg.Breaker.MinRequests,
		Window:              cfg.Breaker.Window.Duration,
		OpenFor:             cfg.Breaker.OpenFor.Duration,
		MaxOpenFor:          cfg.Breaker.MaxOpenFor.Duration,
		HalfOpenRequests:    cfg.Breaker.HalfOpenRequests,
	}
	for i := range cfg.Instances {
		ic := &cfg.Instances[i]
		in := &Instance{
			id:          ic.ID,
			addr:        ic.Addr,
			weight:      *ic.Weight,
			index:       i,
			svc:         s,
			client:      newClient(cfg, ic, o.Dial),
			breaker:     health.NewBreaker(bc, o.Clock, s.ejector),
			maxInFlight: int64(cfg.Limits.MaxInFlight),
		}
		in.up.Store(true)
		in.eff.Store(int32(in.weight))
		in.breaker.OnChange = func(from, to health.State, d time.Duration) {
			in.breakerChanged(from, to, d)
			if o.OnBreaker != nil {
				o.OnBreaker(in, from, to, d)
			}
		}
		s.instances = append(s.instances, in)
	}
	s.rebuild()
	return s
}

// FailureStatus reports whether an upstream answer with this status counts
// as a failure of the instance (failure_status, 502/503/504 by default).
func (s *Service) FailureStatus(code int) bool {
	return code >= 0 && code < len(s.failures) && s.failures[code]
}

// CountRequest counts a request to the service, made at now, for the retry
// budget. The caller passes the time it already has (a clock read costs
// about 80 ns on a VM); the budget's one-second buckets need no more
// precision than that.
func (s *Service) CountRequest(now time.Time) { s.budget.Add(now, false) }

// RetryBudgetLeft reports whether the retry budget has room for one more
// retry at now: retries in the last 10 s may not exceed retry_budget x
// requests + min_retries_per_second x 10. CountRetry counts the retry once
// made.
func (s *Service) RetryBudgetLeft(now time.Time) bool {
	total, retries := s.budget.Counts(now)
	return float64(retries) < s.retryRatio*float64(total-retries)+s.minRetries
}

// CountRetry counts a retry, made at now, for the retry budget.
func (s *Service) CountRetry(now time.Time) { s.budget.Add(now, true) }

// newClient returns a HostClient tuned for proxying: the gateway does its
// own retries, so the client never repeats a request by itself. Every call
// is DoDeadline with the attempt's deadline, which also bounds the dial, so
// the client needs no ReadTimeout or WriteTimeout of its own (each would
// cost a clock read per call). Connections have lazily armed deadlines
// (package lazyconn): a call's deadline is almost always later than the
// last one's.
func newClient(svc *config.Service, in *config.Instance, dial fasthttp.DialFunc) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      in.Addr,
		DialTimeout:               lazyDial(dial),
		Name:                      "fastgate",
		NoDefaultUserAgentHeader:  true,
		MaxConns:                  svc.MaxConns,
		MaxIdleConnDuration:       svc.IdleConnTimeout.Duration,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisablePathNormalizing:    true,
		ReadBufferSize:            8 << 10,
		WriteBufferSize:           8 << 10,
	}
}

// lazyDial dials with dial, or over TCP within the timeout when dial is
// nil, and wraps the connection with lazyconn.Wrap.
func lazyDial(dial fasthttp.DialFunc) fasthttp.DialFuncWithTimeout {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		var c net.Conn
		var err error
		switch {
		case dial != nil:
			c, err = dial(addr)
		case timeout > 0:
			c, err = fasthttp.DialTimeout(fasthttp.AddMissingPort(addr, false), timeout)
		default:
			c, err = fasthttp.Dial(fasthttp.AddMissingPort(addr, false))
		}
		if err != nil {
			return nil, err
		}
		return lazyconn.Wrap(c), nil
	}
}

// Name is the service name.
func (s *Service) Name() string { return s.name }

// Instances returns the service's instances. The slice must not be modified.
func (s *Service) Instances() []*Instance { return s.instances }

// Counts returns how many instances are healthy, and how many there are.
func (s *Service) Counts() (healthy, total int) {
	for _, in := range s.instances {
		if in.Healthy() {
			healthy++
		}
	}
	return healthy, len(s.instances)
}

// Close closes every instance's idle connections.
func (s *Service) Close() {
	for _, in := range s.instances {
		in.Close()
	}
}

// Pick returns the next instance in smooth weighted round-robin order that
// is available and not in tried (a set of Instance indexes, bit i for the
// instance at index i; see Tried), or nil when there is none. While some
// breaker is open, an ejected instance whose open period has passed is
// offered first, for its half-open probe.
//
// Pick takes no lock and does not allocate.
func (s *Service) Pick(tried uint64) *Instance {
	if s.ejector.Ejected() > 0 {
		if in := s.probe(tried); in != nil {
			return in
		}
	}
	if tried != 0 {
		if in := s.pickRetry(tried); in != nil {
			return in
		}
	}
	seq := s.sched.Load().seq
	n := uint64(len(seq))
	if n == 0 {
		return nil
	}
	start := s.next.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		in := s.instances[seq[(start+i)%n]]
		if tried&(1<<in.index) == 0 && in.Available() {
			return in
		}
	}
	return nil
}

// pickRetry chooses among the untried instances in proportion to their
// effective weights (weighted random), so that a retry's load spreads as
// the weights say. Walking the schedule from the failed slot instead would
// hand it to whichever instance follows: with {5,1,1} and the first tried,
// the second would get 5 retries in 7. Instances whose breaker is not
// closed are left to the schedule walk, which admits probes.
func (s *Service) pickRetry(tried uint64) *Instance {
	total := 0
	for _, in := range s.instances {
		total += in.retryWeight(tried)
	}
	if total == 0 {
		return nil
	}
	r := rand.IntN(total)
	for _, in := range s.instances {
		if r -= in.retryWeight(tried); r < 0 {
			return in
		}
	}
	return nil
}

// retryWeight is the instance's effective weight when a retry may go to
// it, else 0. It has no side effect (unlike Available for a half-open
// breaker).
func (in *Instance) retryWeight(tried uint64) int {
	if tried&(1<<in.index) != 0 || !in.up.Load() || in.weight == 0 ||
		in.breaker.State() != health.Closed ||
		in.maxInFlight != 0 && in.inFlight.Load() >= in.maxInFlight {
		return 0
	}
	return max(1, int(in.eff.Load()))
}

// probe returns an ejected instance due for a half-open probe (admitting
// it), or nil. Ejected instances are out of the schedule, so their share
// spreads over the others by weight instead of falling on a neighbour.
func (s *Service) probe(tried uint64) *Instance {
	for _, in := range s.instances {
		if tried&(1<<in.index) == 0 && in.up.Load() && in.breaker.State() != health.Closed && in.breaker.Allow() {
			return in
		}
	}
	return nil
}

// Tried adds in to the set of tried instances for Pick.
func Tried(set uint64, in *Instance) uint64 { return set | 1<<in.index }

// rebuild recomputes the schedule: healthy instances at their effective
// weight; instances down, or ejected (breaker not closed), left out.
func (s *Service) rebuild() {
	s.mu.Lock()
	defer s.mu.Unlock()
	weights := make([]int, len(s.instances))
	for i, in := range s.instances {
		switch {
		case !in.up.Load() || in.weight == 0 || in.breaker.State() != health.Closed:
		default:
			weights[i] = max(1, int(in.eff.Load()))
		}
	}
	s.sched.Store(&schedule{seq: Sequence(weights)})
}

// Sequence returns one period of nginx's smooth weighted round-robin over
// weights (indexes of weights, each appearing weights[i]/gcd times): every
// step adds each weight to its current weight, picks the largest current
// weight (the first on ties) and subtracts the total from it. Weights
// {5,1,1} give 0 0 1 0 2 0 0.
func Sequence(weights []int) []uint8 {
	g := 0
	for _, w := range weights {
		if w > 0 {
			g = gcd(g, w)
		}
	}
	if g == 0 {
		return nil
	}
	total := 0
	w := make([]int, len(weights))
	for i, x := range weights {
		if x > 0 {
			w[i] = x / g
			total += w[i]
		}
	}
	cur := make([]int, len(w))
	seq := make([]uint8, 0, total)
	for range total {
		best := -1
		for i := range w {
			if w[i] == 0 {
				continue
			}
			cur[i] += w[i]
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, uint8(best))
	}
	return seq
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
