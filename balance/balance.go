// Package balance owns a service's upstream instances and picks one for each
// request with smooth weighted round-robin (nginx semantics) over the
// instances that are available.
//
// The pick takes no lock, makes no allocation and logs nothing: it reads an
// immutable schedule through an atomic.Pointer and per-instance atomics.
package balance

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

// ErrNoInstance is returned when a service has no instance left to try.
var ErrNoInstance = errors.New("balance: no available instance")

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

	up       atomic.Bool  // set by active health checks; true at start
	inFlight atomic.Int64 // requests sent and not yet answered
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

// Available reports whether a pick may return the instance now.
func (in *Instance) Available() bool { return in.up.Load() }

// SetHealthy sets the health flag and reports whether it changed. An
// instance marked down is no longer picked; the service's schedule is
// rebuilt on every change (never on the pick path).
func (in *Instance) SetHealthy(up bool) (changed bool) {
	if in.up.Swap(up) == up {
		return false
	}
	in.svc.rebuild()
	return true
}

// DoDeadline sends req to the instance and reads the answer into resp,
// giving up at deadline. It counts the request as in flight meanwhile.
// Errors are fasthttp's (see proxy's mapping to HTTP status).
func (in *Instance) DoDeadline(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	in.inFlight.Add(1)
	err := in.client.DoDeadline(req, resp, deadline)
	in.inFlight.Add(-1)
	return err
}

// Close closes the instance's idle pooled connections.
func (in *Instance) Close() { in.client.CloseIdleConnections() }

// Service is a named set of weighted instances.
//
// It is safe calling Service methods from concurrently running goroutines.
// It is forbidden copying Service values.
type Service struct {
	name      string
	instances []*Instance // fixed at construction

	sched atomic.Pointer[schedule] // read on every pick
	next  atomic.Uint64            // position in the schedule

	mu sync.Mutex // serializes rebuilds of sched; never taken by Pick
}

// schedule is an immutable smooth-WRR sequence of instance indexes over the
// instances that were healthy when it was built. One period holds each
// instance weight/gcd times.
type schedule struct {
	seq []uint8
}

// New builds a service and one HostClient pool per instance. cfg must be
// valid (see config.Parse). dial, when not nil, replaces TCP dialing (for
// in-memory listeners in benchmarks).
func New(cfg *config.Service, dial fasthttp.DialFunc) *Service {
	s := &Service{name: cfg.Name}
	for i := range cfg.Instances {
		ic := &cfg.Instances[i]
		in := &Instance{
			id:     ic.ID,
			addr:   ic.Addr,
			weight: *ic.Weight,
			index:  i,
			svc:    s,
			client: newClient(cfg, ic, dial),
		}
		in.up.Store(true)
		s.instances = append(s.instances, in)
	}
	s.rebuild()
	return s
}

// newClient returns a HostClient tuned for proxying: the gateway does its
// own retries, so the client never repeats a request by itself.
func newClient(svc *config.Service, in *config.Instance, dial fasthttp.DialFunc) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      in.Addr,
		Dial:                      dial,
		Name:                      "fastgate",
		NoDefaultUserAgentHeader:  true,
		MaxConns:                  svc.MaxConns,
		MaxIdleConnDuration:       svc.IdleConnTimeout.Duration,
		ReadTimeout:               svc.Timeout.Duration,
		WriteTimeout:              svc.Timeout.Duration,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisablePathNormalizing:    true,
		ReadBufferSize:            8 << 10,
		WriteBufferSize:           8 << 10,
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
// instance at index i; see Tried), or nil when there is none.
//
// Pick takes no lock and does not allocate.
func (s *Service) Pick(tried uint64) *Instance {
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

// Tried adds in to the set of tried instances for Pick.
func Tried(set uint64, in *Instance) uint64 { return set | 1<<in.index }

// rebuild recomputes the schedule over the healthy instances.
func (s *Service) rebuild() {
	s.mu.Lock()
	defer s.mu.Unlock()
	weights := make([]int, len(s.instances))
	for i, in := range s.instances {
		if in.up.Load() {
			weights[i] = in.weight
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
