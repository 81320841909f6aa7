package health

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// CheckConfig is the active-check part of a service's config; see
// config.Health for the defaults.
type CheckConfig struct {
	Path         string        // GET this path
	Interval     time.Duration // between probes of one target
	Timeout      time.Duration // per probe
	Rise         int           // consecutive passes to mark up
	Fall         int           // consecutive failures to mark down
	ExpectStatus []int         // passing statuses; empty = 200..399
}

// Result is one probe's outcome.
type Result struct {
	Time   time.Time
	OK     bool
	Status int    // 0 when no answer
	Err    string // why it failed; "" when OK
}

// CheckerOptions are the optional parts of a Checker.
type CheckerOptions struct {
	// Clock [SystemClock{}].
	Clock Clock
	// OnResult is called after every probe of target i [nil].
	OnResult func(i int, r Result)
	// OnChange is called once per up/down change of target i, from the
	// probing goroutine [nil].
	OnChange func(i int, up bool, r Result)
	// Dial replaces TCP dialing for the probes [nil].
	Dial fasthttp.DialFunc
}

// Checker probes each target on its own schedule, with jitter, through
// clients of its own (never the request pools), and marks targets up after
// Rise passes in a row and down after Fall failures in a row. It holds no
// lock across I/O.
//
// It is safe calling Checker methods from concurrently running goroutines,
// except Check for one target, which Start's goroutine also calls.
type Checker struct {
	cfg     CheckConfig
	o       CheckerOptions
	targets []*probe

	mu      sync.Mutex // protects stop and started
	stop    chan struct{}
	started bool
	wg      sync.WaitGroup
}

type probe struct {
	t      Target
	client *fasthttp.HostClient
	up     bool // as last set by this checker; targets start up
	passes int  // in a row
	fails  int  // in a row
	last   atomic.Pointer[Result]
}

// NewChecker prepares a checker; Start begins probing.
func NewChecker(cfg CheckConfig, targets []Target, o CheckerOptions) *Checker {
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	c := &Checker{cfg: cfg, o: o, stop: make(chan struct{})}
	for _, t := range targets {
		c.targets = append(c.targets, &probe{
			t:  t,
			up: true,
			client: &fasthttp.HostClient{
				Addr:                      t.Addr(),
				Name:                      "fastgate-health",
				Dial:                      o.Dial,
				MaxConns:                  1,
				MaxIdemponentCallAttempts: 1,
				ReadTimeout:               cfg.Timeout,
				WriteTimeout:              cfg.Timeout,
				MaxIdleConnDuration:       cfg.Interval + cfg.Timeout,
			},
		})
	}
	return c
}

// Start runs one probing goroutine per target; the first probe of each
// comes after a random delay within one interval, so that probes of many
// instances spread out.
func (c *Checker) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	for i := range c.targets {
		c.wg.Add(1)
		go c.loop(i)
	}
}

// Stop ends probing and waits for the goroutines to return.
func (c *Checker) Stop() {
	c.mu.Lock()
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.mu.Unlock()
	c.wg.Wait()
	for _, p := range c.targets {
		p.client.CloseIdleConnections()
	}
}

func (c *Checker) loop(i int) {
	defer c.wg.Done()
	t := time.NewTimer(rand.N(c.cfg.Interval) + 1)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.Check(i)
		// ±10% jitter keeps probes of many instances from lining up.
		t.Reset(c.cfg.Interval - c.cfg.Interval/10 + rand.N(c.cfg.Interval/5+1))
	}
}

// Last returns target i's last probe result, or nil before the first.
func (c *Checker) Last(i int) *Result { return c.targets[i].last.Load() }

// Check probes target i once, now, and applies rise/fall.
func (c *Checker) Check(i int) Result {
	p := c.targets[i]
	r := c.probe(p)
	p.last.Store(&r)
	if c.o.OnResult != nil {
		c.o.OnResult(i, r)
	}
	if r.OK {
		p.passes, p.fails = p.passes+1, 0
	} else {
		p.passes, p.fails = 0, p.fails+1
	}
	switch {
	case !p.up && p.passes >= c.cfg.Rise:
		c.set(i, p, true, r)
	case p.up && p.fails >= c.cfg.Fall:
		c.set(i, p, false, r)
	}
	return r
}

func (c *Checker) set(i int, p *probe, up bool, r Result) {
	p.up = up
	if p.t.SetHealthy(up) && c.o.OnChange != nil {
		c.o.OnChange(i, up, r)
	}
}

func (c *Checker) probe(p *probe) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.cfg.Path)
	req.SetHost(p.t.Addr())
	req.Header.SetConnectionClose()
	r := Result{Time: c.o.Clock.Now()}
	if err := p.client.DoTimeout(req, resp, c.cfg.Timeout); err != nil {
		r.Err = err.Error()
		return r
	}
	r.Status = resp.StatusCode()
	if r.OK = c.passing(r.Status); !r.OK {
		r.Err = "unexpected status " + fasthttp.StatusMessage(r.Status)
	}
	return r
}

func (c *Checker) passing(status int) bool {
	if len(c.cfg.ExpectStatus) == 0 {
		return status >= 200 && status < 400
	}
	for _, s := range c.cfg.ExpectStatus {
		if s == status {
			return true
		}
	}
	return false
}
