package proxy

// End-to-end tests of issue 4 (health checks, circuit breakers, slow
// recovery, overload protection): the gateway and its upstreams on real
// loopback sockets. Time that a breaker would have to wait out is driven by
// a fake clock (Options.Clock); active checks run on real timers with short
// intervals. Helpers shared with e2e_test.go are in e2e_helpers_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastgate/fastgate/balance"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/health"
	"github.com/fastgate/fastgate/stub"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// e2eClock is a health.Clock moved by hand; it starts far from the zero
// time and the real time so that a mix-up with either shows.
type e2eClock struct{ ns atomic.Int64 }

func newE2EClock() *e2eClock {
	c := &e2eClock{}
	c.ns.Store(time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano())
	return c
}

func (c *e2eClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *e2eClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// startGatewayWith is startGateway with the gateway's Options (Log and
// Access are filled in).
func startGatewayWith(t *testing.T, toml string, o Options) *e2eGateway {
	t.Helper()
	cfg, err := config.Parse([]byte(toml))
	if err != nil {
		t.Fatalf("config.Parse: %v\nconfig:\n%s", err, toml)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.Log = zerolog.Nop()
	if o.Access == nil {
		o.Access = io.Discard
	}
	gw := &e2eGateway{g: mustNew(t, cfg, o), addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		gw.err = gw.g.Serve(ln)
		close(gw.done)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		if err := gw.g.Shutdown(ctx); err != nil {
			t.Errorf("gateway Shutdown: %v", err)
		}
		select {
		case <-gw.done:
		case <-time.After(e2eTimeout):
			t.Errorf("gateway Serve did not return after Shutdown")
		}
	})
	return gw
}

// killableStub is a stub upstream that a test may stop and start again on
// the same address; whichever server runs when the test ends is closed.
type killableStub struct {
	t    *testing.T
	id   string
	addr string

	mu sync.Mutex // protects s
	s  *stub.Server
}

func startKillableStub(t *testing.T, id string) *killableStub {
	t.Helper()
	k := &killableStub{t: t, id: id}
	k.start("127.0.0.1:0")
	k.addr = k.s.Addr()
	t.Cleanup(k.kill)
	return k
}

func (k *killableStub) start(addr string) {
	k.t.Helper()
	s, err := stub.Start(stub.Options{ID: k.id, Addr: addr})
	if err != nil {
		k.t.Fatalf("starting stub %s on %s: %v", k.id, addr, err)
	}
	k.mu.Lock()
	k.s = s
	k.mu.Unlock()
	// stub.Close right after stub.Start can hang: fasthttp's Shutdown does
	// nothing while Serve has not registered the listener yet, and Close then
	// waits for Serve forever. Return once the stub answers.
	c := &fasthttp.HostClient{Addr: s.Addr()}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(e2eTimeout)
	for {
		status, _, err := c.GetTimeout(nil, "http://"+s.Addr()+"/health", time.Second)
		if err == nil && status == 200 {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("stub %s on %s not answering: status %d, %v", k.id, s.Addr(), status, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// restart starts a new stub on the old address.
func (k *killableStub) restart() { k.start(k.addr) }

// kill closes the running stub, if any.
func (k *killableStub) kill() {
	k.mu.Lock()
	s := k.s
	k.s = nil
	k.mu.Unlock()
	if s != nil {
		if err := s.Close(); err != nil {
			k.t.Errorf("stub %s Close: %v", k.id, err)
		}
	}
}

// requests counts the non-health requests of the running stub (0 when
// killed).
func (k *killableStub) requests() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.s == nil {
		return 0
	}
	return k.s.Requests()
}

// hangUpstream accepts connections, reads requests and never answers. It
// counts accepted connections and the requests read other than health
// probes.
type hangUpstream struct {
	ln       net.Listener
	stop     chan struct{}
	wg       sync.WaitGroup
	accepts  atomic.Int64
	requests atomic.Int64 // non-health requests read

	mu    sync.Mutex // protects conns
	conns map[net.Conn]struct{}
}

func startHangUpstream(t *testing.T) *hangUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &hangUpstream{ln: ln, stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			u.mu.Lock()
			select {
			case <-u.stop:
				u.mu.Unlock()
				_ = c.Close()
				continue
			default:
			}
			u.conns[c] = struct{}{}
			u.mu.Unlock()
			u.wg.Add(1)
			go u.serve(c)
		}
	}()
	t.Cleanup(func() {
		u.mu.Lock()
		close(u.stop)
		for c := range u.conns {
			_ = c.Close()
		}
		u.mu.Unlock()
		_ = ln.Close()
		u.wg.Wait()
	})
	return u
}

func (u *hangUpstream) addr() string { return u.ln.Addr().String() }

// closeConns closes the connections accepted so far: the requests on them
// fail at once instead of at their timeout.
func (u *hangUpstream) closeConns() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.conns {
		_ = c.Close()
	}
}

// serve reads requests until the peer or the test closes the connection;
// since nothing is answered, a client never sends a second one.
func (u *hangUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	br := bufio.NewReader(c)
	for {
		var req fasthttp.Request
		if err := req.Read(br); err != nil {
			return
		}
		if string(req.URI().Path()) != "/health" {
			u.requests.Add(1)
		}
	}
}

// healthDoc is the gateway's /health answer.
type healthDoc struct {
	Status   string `json:"status"`
	Services map[string]struct {
		Healthy   *int             `json:"healthy_instances"`
		Total     *int             `json:"total_instances"`
		Instances []instanceHealth `json:"instances"`
	} `json:"services"`
}

type instanceHealth struct {
	ID                  string  `json:"id"`
	Addr                string  `json:"addr"`
	Up                  *bool   `json:"up"`
	Breaker             string  `json:"breaker"`
	ConsecutiveFailures *int    `json:"consecutive_failures"`
	EffectiveWeight     *int    `json:"effective_weight"`
	InFlight            *int    `json:"in_flight"`
	LastCheck           *string `json:"last_check"`
	LastError           *string `json:"last_error"`
}

// getHealth reads /health through c and returns it decoded, with the
// instances of service svc by id.
func getHealth(t *testing.T, c *fasthttp.HostClient, svc string) (healthDoc, map[string]instanceHealth) {
	t.Helper()
	r := do(t, c, "GET", "/health", nil)
	if r.status != 200 {
		t.Fatalf("GET /health: status %d, want 200 (body %s)", r.status, r.body)
	}
	var h healthDoc
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatalf("/health body %s: %v", r.body, err)
	}
	s, ok := h.Services[svc]
	if !ok {
		t.Fatalf("/health %s: no service %q", r.body, svc)
	}
	byID := map[string]instanceHealth{}
	for _, in := range s.Instances {
		if in.Up == nil || in.ConsecutiveFailures == nil || in.EffectiveWeight == nil || in.Breaker == "" {
			t.Fatalf("/health instance %+v: up, breaker, consecutive_failures or effective_weight missing (body %s)", in, r.body)
		}
		byID[in.ID] = in
	}
	return h, byID
}

// scrapeWith reads the metrics path through c (a kept-alive connection, so
// that polling opens no socket per scrape).
func scrapeWith(t *testing.T, c *fasthttp.HostClient) string {
	t.Helper()
	r := do(t, c, "GET", "/metrics", nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics: status %d", r.status)
	}
	return string(r.body)
}

// instSeries is a per-instance series name.
func instSeries(name, svc, inst string) string {
	return fmt.Sprintf(`%s{service=%q,instance=%q}`, name, svc, inst)
}

// attempts is the number of attempts the gateway made on instance i of
// service s, whatever their outcome.
func attemptsOn(gw *e2eGateway, s, i int) uint64 {
	var n uint64
	for _, c := range gw.g.upstreams[s].instances[i].outcomes {
		n += c.Get()
	}
	return n
}

// ejected reports whether an instance is out of the picks: health down or
// breaker not closed.
func isEjected(in *balance.Instance) bool {
	return !in.Healthy() || in.Breaker().State() != health.Closed
}

// waitWithin polls cond every millisecond until it holds, failing the test
// after d.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// timedDo is do, also returning how long the answer took.
func timedDo(t *testing.T, c *fasthttp.HostClient, method, uri string, body []byte) (*response, time.Duration) {
	t.Helper()
	start := time.Now()
	r := do(t, c, method, uri, body)
	return r, time.Since(start)
}

// TestE2EHealthKillOneOfThree: one of three instances dies under a steady
// stream of GETs. Every GET still gets 200 (the failed attempts are
// retried), the dead instance is ejected after at most consecutive_failures
// failed attempts, /health and /metrics show it, and the two others share
// the rest. Active checks run too, slowly enough (fall 3 x 100ms) that the
// breaker sees the death first.
func TestE2EHealthKillOneOfThree(t *testing.T) {
	a, b := startStub(t, "a", 0), startStub(t, "b", 0)
	c := startKillableStub(t, "c")
	clock := newE2EClock() // frozen: an open breaker stays open
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "trio"
timeout = "1s"
retries = 1
  [services.health]
  path = "/health"
  interval = "100ms"
  timeout = "1s"
  rise = 2
  fall = 3
  [services.breaker]
  consecutive_failures = 2
  open_for = "30s"
  [[services.instances]]
  id = "a"
  addr = %q
  [[services.instances]]
  id = "b"
  addr = %q
  [[services.instances]]
  id = "c"
  addr = %q
[[routes]]
prefix = "/t"
service = "trio"
`, a.Addr(), b.Addr(), c.addr), Options{Clock: clock})
	cl := newClient(t, gw.addr)
	inC := gw.g.Services()[0].Instances()[2]
	cFailures := func() uint64 {
		o := &gw.g.upstreams[0].instances[2].outcomes
		return attemptsOn(gw, 0, 2) - o[outcomeSuccess].Get()
	}

	const n, killAt = 300, 100
	var (
		non200       []string
		killed       = make(chan struct{})
		failedAt     = -1 // request during which an attempt on c first failed
		ejectedAt    = -1 // request after which c was first seen ejected
		cAtEjection  uint64
		aAtEj, bAtEj int64
	)
	for i := range n {
		if i == killAt {
			if isEjected(inC) || c.requests() == 0 {
				t.Fatalf("before the kill: c ejected %v, served %d", isEjected(inC), c.requests())
			}
			go func() { // Close takes its time (fasthttp polls every 100ms): requests go on meanwhile
				defer close(killed)
				c.kill()
			}()
		}
		r := do(t, cl, "GET", fmt.Sprintf("/t/%d", i), nil)
		if r.status != 200 {
			non200 = append(non200, fmt.Sprintf("#%d: %d %s", i, r.status, r.body))
		}
		if failedAt < 0 && cFailures() > 0 {
			failedAt = i
		}
		if i >= killAt && ejectedAt < 0 && isEjected(inC) {
			ejectedAt, cAtEjection = i, attemptsOn(gw, 0, 2)
			aAtEj, bAtEj = a.Requests(), b.Requests()
		}
	}
	<-killed
	if len(non200) > 0 {
		t.Errorf("%d of %d GETs were not answered 200: %v", len(non200), n, non200)
	}
	if ejectedAt < 0 {
		t.Fatalf("c was never ejected (up %v, breaker %v)", inC.Healthy(), inC.Breaker().State())
	}
	t.Logf("c killed at request %d, first failure at %d, ejected after request %d (up %v, breaker %v) with %d failed attempts",
		killAt, failedAt, ejectedAt, inC.Healthy(), inC.Breaker().State(), cFailures())
	if failedAt >= 0 && ejectedAt-failedAt > 6 {
		t.Errorf("c ejected %d requests after its first failure, want within 6 (it gets every third pick; 2 failures trip it)", ejectedAt-failedAt)
	}
	if f := cFailures(); f > 2 {
		t.Errorf("%d failed attempts on the dead c, want at most consecutive_failures = 2", f)
	}
	if got := attemptsOn(gw, 0, 2); got != cAtEjection {
		t.Errorf("%d attempts on c after it was ejected, want 0", got-cAtEjection)
	}
	// Traffic shifted: after the ejection a and b share every request.
	rest := int64(n - 1 - ejectedAt)
	da, db := a.Requests()-aAtEj, b.Requests()-bAtEj
	if rest < 100 || da+db != rest || da < rest*2/5 || db < rest*2/5 {
		t.Errorf("after the ejection a got %d and b got %d of %d requests, want all of them, evenly (weights 1, 1)", da, db, rest)
	}

	// Visible: the active checks mark c down too; /health and the metrics
	// agree on the breaker.
	waitWithin(t, 3*time.Second, "active checks mark c down", func() bool { return !inC.Healthy() })
	_, inst := getHealth(t, cl, "trio")
	text := scrapeWith(t, cl)
	for _, id := range []string{"a", "b", "c"} {
		h := inst[id]
		wantUp := id != "c"
		if *h.Up != wantUp {
			t.Errorf("/health %s up = %v, want %v", id, *h.Up, wantUp)
		}
		up := metricValue(t, text, instSeries("fastgate_instance_up", "trio", id))
		if up != map[bool]float64{true: 1, false: 0}[wantUp] {
			t.Errorf("fastgate_instance_up{%s} = %v, want up %v", id, up, wantUp)
		}
		state := metricValue(t, text, instSeries("fastgate_breaker_state", "trio", id))
		if want := map[string]float64{"closed": 0, "open": 1, "half-open": 2}[h.Breaker]; state != want {
			t.Errorf("fastgate_breaker_state{%s} = %v, /health breaker %q", id, state, h.Breaker)
		}
		ej := metricValue(t, text, instSeries("fastgate_ejections_total", "trio", id))
		if (h.Breaker == "open") != (ej == 1) {
			t.Errorf("%s: breaker %q with fastgate_ejections_total %v", id, h.Breaker, ej)
		}
		if wantUp && h.Breaker != "closed" {
			t.Errorf("live %s: breaker %q, want closed", id, h.Breaker)
		}
	}
}

// TestE2EHealthComeBack: a dead instance, marked down by the active checks,
// comes back on its address. The checks (interval 30ms, rise 2) put it back
// within a fraction of a second; it re-enters at effective weight 1, which
// climbs by one per success to its weight, and it gets less than its
// configured share until then. Its first attempts must not fail on
// connections pooled before its death.
func TestE2EHealthComeBack(t *testing.T) {
	a, b := startStub(t, "a", 0), startStub(t, "b", 0)
	c := startKillableStub(t, "c")
	clock := newE2EClock()
	// Weights 4, 4, 8: whatever the balancer's position when the schedule
	// is rebuilt, a recovering c gets at most 9 of its first 20 picks, below
	// its configured 10 (checked by enumerating the offsets).
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "trio"
timeout = "1s"
retries = 1
  [services.health]
  path = "/health"
  interval = "30ms"
  timeout = "1s"
  rise = 2
  fall = 2
  [services.breaker]
  consecutive_failures = 2
  open_for = "30s"
  [[services.instances]]
  id = "a"
  addr = %q
  weight = 4
  [[services.instances]]
  id = "b"
  addr = %q
  weight = 4
  [[services.instances]]
  id = "c"
  addr = %q
  weight = 8
[[routes]]
prefix = "/t"
service = "trio"
`, a.Addr(), b.Addr(), c.addr), Options{Clock: clock})
	cl := newClient(t, gw.addr)
	inC := gw.g.Services()[0].Instances()[2]
	outC := &gw.g.upstreams[0].instances[2].outcomes
	get := func(i int) string {
		t.Helper()
		r := do(t, cl, "GET", fmt.Sprintf("/t/%d", i), nil)
		if r.status != 200 {
			t.Fatalf("GET %d: status %d (body %s), want 200", i, r.status, r.body)
		}
		return decodeStub(t, r).Instance
	}
	for i := range 16 {
		get(i)
	}
	if c.requests() == 0 {
		t.Fatal("c got no request before it died")
	}

	// Down: the stub closes, which takes fasthttp 100ms: the checks usually
	// mark c down meanwhile, before any request finds it dead (the common
	// case with active checks). GETs go on until c is down.
	c.kill()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; inC.Healthy(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("active checks did not mark c down within 2s")
		}
		get(i)
	}
	if _, inst := getHealth(t, cl, "trio"); *inst["c"].Up {
		t.Fatalf("/health shows c up after the checks marked it down")
	}

	// Back: a new stub on the same address; the breaker's open period, if
	// it tripped, is over too.
	restarted := time.Now()
	c.restart()
	clock.Advance(time.Minute)
	var back instanceHealth
	took := waitWithin(t, time.Second, "c back up in /health", func() bool {
		_, inst := getHealth(t, cl, "trio")
		back = inst["c"]
		return *back.Up
	})
	t.Logf("c up %v after the restart (interval 30ms x rise 2)", took)
	if *back.EffectiveWeight != 1 {
		t.Errorf("c back with effective_weight %d, want 1", *back.EffectiveWeight)
	}

	// Ramp: effective weight = min(8, 1 + successes on c), read from
	// /health after every request.
	triedBefore, failedBefore := attemptsOn(gw, 0, 2), attemptsOn(gw, 0, 2)-outC[outcomeSuccess].Get()
	var seq []string
	weights := []int{1}
	firstPick := -1
	successes := 0
	for i := 0; i < 60; i++ {
		id := get(i)
		seq = append(seq, id)
		if firstPick < 0 && attemptsOn(gw, 0, 2) > triedBefore {
			firstPick = i
			t.Logf("c picked again %v after the restart", time.Since(restarted))
		}
		if id == "c" {
			successes++
		}
		_, inst := getHealth(t, cl, "trio")
		eff := *inst["c"].EffectiveWeight
		weights = append(weights, eff)
		if want := min(8, 1+successes); eff != want {
			t.Fatalf("after %d requests (%d on c): c effective_weight %d, want %d (weights so far %v)", i+1, successes, eff, want, weights)
		}
	}
	if firstPick < 0 || firstPick >= 9 {
		t.Errorf("c first picked at request %d after its return, want within one period of the {4,4,1} schedule (9): %v", firstPick, seq)
	}
	if f := attemptsOn(gw, 0, 2) - outC[outcomeSuccess].Get() - failedBefore; f != 0 {
		t.Errorf("%d attempts on c failed after it came back (outcome error %d, connect_error %d): "+
			"connections pooled before its death were reused", f, outC[outcomeError].Get(), outC[outcomeConnectError].Get())
	}
	first := 0
	for _, id := range seq[:20] {
		if id == "c" {
			first++
		}
	}
	last := 0
	for _, id := range seq[len(seq)-16:] {
		if id == "c" {
			last++
		}
	}
	t.Logf("c's share: %d of the first 20 requests after its return, %d of the last 16; effective weights %v", first, last, weights)
	if first >= 10 {
		t.Errorf("c got %d of the first 20 requests after its return, want fewer than its configured share 10 (a ramp): %v", first, seq[:20])
	}
	if last != 8 {
		t.Errorf("c got %d of the last 16 requests, want its configured share 8 once recovered: %v", last, seq[len(seq)-16:])
	}
	_, inst := getHealth(t, cl, "trio")
	if h := inst["c"]; !*h.Up || h.Breaker != "closed" || *h.EffectiveWeight != 8 {
		t.Errorf("recovered c in /health: up %v, breaker %q, effective_weight %d; want true, closed, 8", *h.Up, h.Breaker, *h.EffectiveWeight)
	}
}

// TestE2EHealthComeBackPOST: POSTs sent to an instance that came back
// after the active checks marked it down all succeed: none is sent on a
// keep-alive connection that the old process closed (which would be a
// 502, as a POST that failed after its send is not retried).
func TestE2EHealthComeBackPOST(t *testing.T) {
	c := startKillableStub(t, "c")
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "solo"
  [services.health]
  path = "/health"
  interval = "20ms"
  timeout = "1s"
  rise = 1
  fall = 1
  [[services.instances]]
  id = "c"
  addr = %q
[[routes]]
prefix = "/s"
service = "solo"
`, c.addr), Options{})
	cl := newClient(t, gw.addr)
	in := gw.g.Services()[0].Instances()[0]
	post := func(what string) {
		t.Helper()
		if r := do(t, cl, "POST", "/s/x", []byte(what)); r.status != 200 {
			t.Errorf("POST %s: status %d (body %s), want 200", what, r.status, r.body)
		}
	}
	post("before") // leaves a kept-alive connection in the gateway's pool
	c.kill()
	waitWithin(t, 2*time.Second, "c marked down", func() bool { return !in.Healthy() })
	c.restart()
	waitWithin(t, 2*time.Second, "c marked up", func() bool { return in.Healthy() })
	for i := range 3 {
		post(fmt.Sprintf("after %d", i))
	}
}

// TestE2EHealthAllDown: when active checks have marked every instance down,
// each request is answered 503 with Retry-After at once, and nothing is
// sent upstream. The hanging variant would cost the 2s attempt timeout on
// any attempt.
func TestE2EHealthAllDown(t *testing.T) {
	conf := func(addrs ...string) string {
		var sb strings.Builder
		sb.WriteString(`
[[services]]
name = "gone"
timeout = "2s"
retries = 2
  [services.health]
  path = "/health"
  interval = "20ms"
  timeout = "50ms"
  rise = 2
  fall = 2
`)
		for i, addr := range addrs {
			fmt.Fprintf(&sb, "  [[services.instances]]\n  id = \"g%d\"\n  addr = %q\n", i, addr)
		}
		sb.WriteString("[[routes]]\nprefix = \"/g\"\nservice = \"gone\"\n")
		return sb.String()
	}
	tests := []struct {
		name  string
		start func(t *testing.T) (addrs []string, kill func(), sent func() int64)
	}{
		{"closed", func(t *testing.T) ([]string, func(), func() int64) {
			ks := []*killableStub{startKillableStub(t, "g0"), startKillableStub(t, "g1"), startKillableStub(t, "g2")}
			return []string{ks[0].addr, ks[1].addr, ks[2].addr},
				func() {
					for _, k := range ks {
						k.kill()
					}
				},
				func() int64 { return ks[0].requests() + ks[1].requests() + ks[2].requests() }
		}},
		{"hanging", func(t *testing.T) ([]string, func(), func() int64) {
			us := []*hangUpstream{startHangUpstream(t), startHangUpstream(t), startHangUpstream(t)}
			return []string{us[0].addr(), us[1].addr(), us[2].addr()},
				func() {},
				func() int64 { return us[0].requests.Load() + us[1].requests.Load() + us[2].requests.Load() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs, kill, sent := tt.start(t)
			gw := startGatewayWith(t, conf(addrs...), Options{})
			cl := newClient(t, gw.addr)
			kill()
			svc := gw.g.Services()[0]
			waitWithin(t, 2*time.Second, "active checks mark every instance down", func() bool {
				up, _ := svc.Counts()
				return up == 0
			})
			h, _ := getHealth(t, cl, "gone")
			if h.Status != "degraded" || *h.Services["gone"].Healthy != 0 {
				t.Errorf("/health status %q, healthy_instances %d; want degraded, 0", h.Status, *h.Services["gone"].Healthy)
			}
			before := sent()
			var took []time.Duration
			for i := range 20 {
				method, body := "GET", []byte(nil)
				if i%2 == 1 {
					method, body = "POST", []byte("payload")
				}
				r, d := timedDo(t, cl, method, fmt.Sprintf("/g/%d", i), body)
				took = append(took, d)
				checkErrorAnswer(t, r, 503)
				if ra := r.get("Retry-After"); ra != "1" {
					t.Errorf("%s %d: Retry-After %q, want \"1\"", method, i, ra)
				}
				var e struct{ Error string }
				_ = json.Unmarshal(r.body, &e)
				if e.Error != msgNoInstance {
					t.Errorf("%s %d: error %q, want %q", method, i, e.Error, msgNoInstance)
				}
				if d > 100*time.Millisecond {
					t.Errorf("%s %d: 503 after %v, want at once (under 100ms; an attempt would take seconds)", method, i, d)
				}
			}
			slices.Sort(took)
			t.Logf("503 latencies: median %v, max %v", took[len(took)/2], took[len(took)-1])
			if med := took[len(took)/2]; med > 50*time.Millisecond {
				t.Errorf("median 503 latency %v, want under 50ms", med)
			}
			if d := sent() - before; d != 0 {
				t.Errorf("upstreams read %d requests while all were down, want 0", d)
			}
			if got := metricValue(t, scrapeWith(t, cl), `fastgate_retries_total{service="gone"}`); got != 0 {
				t.Errorf("fastgate_retries_total = %v, want 0", got)
			}
		})
	}
}

// TestE2EHealthHangingInstance: an instance that accepts and never answers
// costs the attempt timeout: a POST there gets 504 (no retry), a GET is
// retried on the live instance. Two such timeouts trip its breaker; after
// that no request, and no connection, reaches it.
func TestE2EHealthHangingInstance(t *testing.T) {
	hang := startHangUpstream(t)
	live := startStub(t, "live", 0)
	clock := newE2EClock()
	const attempt = 200 * time.Millisecond
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "h"
timeout = "200ms"
retries = 1
  [services.breaker]
  consecutive_failures = 2
  open_for = "30s"
  [[services.instances]]
  id = "hang"
  addr = %q
  [[services.instances]]
  id = "live"
  addr = %q
[[routes]]
prefix = "/h"
service = "h"
`, hang.addr(), live.Addr()), Options{Clock: clock})
	cl := newClient(t, gw.addr)
	inHang := gw.g.Services()[0].Instances()[0]
	slowEnough := func(d time.Duration) bool { return d >= attempt-10*time.Millisecond }

	t.Run("POST gets 504 at the attempt timeout", func(t *testing.T) {
		for i := range 3 {
			nl, nh := live.Requests(), hang.requests.Load()
			r, d := timedDo(t, cl, "POST", "/h/p", []byte(fmt.Sprintf("post %d", i)))
			if r.status == 200 {
				if d >= attempt {
					t.Errorf("POST %d: 200 after %v, want at once", i, d)
				}
				continue
			}
			checkErrorAnswer(t, r, 504)
			if !slowEnough(d) || d > attempt+400*time.Millisecond {
				t.Errorf("POST %d: 504 after %v, want at the %v attempt timeout", i, d, attempt)
			}
			if dl, dh := live.Requests()-nl, hang.requests.Load()-nh; dl != 0 || dh != 1 {
				t.Errorf("POST %d: hang read %d and live %d requests, want 1 and 0 (no retry)", i, dh, dl)
			}
			return
		}
		t.Fatal("no POST went to the hanging instance in 3 tries")
	})
	if st := inHang.Breaker().State(); st != health.Closed {
		t.Fatalf("breaker %v after one timeout, want closed (consecutive_failures 2)", st)
	}

	t.Run("GET is retried on the live instance", func(t *testing.T) {
		for i := range 3 {
			nl, nh := live.Requests(), hang.requests.Load()
			r, d := timedDo(t, cl, "GET", "/h/g", nil)
			if r.status != 200 || decodeStub(t, r).Instance != "live" {
				t.Fatalf("GET %d: status %d body %s after %v, want 200 from live", i, r.status, r.body, d)
			}
			if hang.requests.Load() == nh {
				continue // went to live first
			}
			if !slowEnough(d) || d > 2*attempt+400*time.Millisecond {
				t.Errorf("GET %d: retried answer after %v, want the %v timeout plus a fast retry", i, d, attempt)
			}
			if dl := live.Requests() - nl; dl != 1 {
				t.Errorf("GET %d: live read %d requests, want 1", i, dl)
			}
			return
		}
		t.Fatal("no GET went to the hanging instance in 3 tries")
	})

	// Two timeouts in a row: the breaker is open, and says so.
	if st := inHang.Breaker().State(); st != health.Open {
		t.Fatalf("breaker %v after two timeouts, want open", st)
	}
	text := scrapeWith(t, cl)
	for series, want := range map[string]float64{
		instSeries("fastgate_breaker_state", "h", "hang"):                                 1,
		instSeries("fastgate_ejections_total", "h", "hang"):                               1,
		instSeries("fastgate_breaker_state", "h", "live"):                                 0,
		instSeries("fastgate_ejections_total", "h", "live"):                               0,
		`fastgate_upstream_requests_total{service="h",instance="hang",outcome="timeout"}`: 2,
		`fastgate_retries_total{service="h"}`:                                             1,
	} {
		if got := metricValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	_, inst := getHealth(t, cl, "h")
	if inst["hang"].Breaker != "open" {
		t.Errorf("/health hang breaker %q, want open", inst["hang"].Breaker)
	}

	// Skipped from now on: fast 200s, no new connection to the hanging one.
	accepts, reqs := hang.accepts.Load(), hang.requests.Load()
	for i := range 40 {
		method, body := "GET", []byte(nil)
		if i%2 == 1 {
			method, body = "POST", []byte("after")
		}
		r, d := timedDo(t, cl, method, "/h/x", body)
		if r.status != 200 || decodeStub(t, r).Instance != "live" {
			t.Fatalf("%s %d after the trip: status %d body %s, want 200 from live", method, i, r.status, r.body)
		}
		if d >= attempt-50*time.Millisecond {
			t.Errorf("%s %d after the trip took %v, want well under the %v timeout", method, i, d, attempt)
		}
	}
	if da, dr := hang.accepts.Load()-accepts, hang.requests.Load()-reqs; da != 0 || dr != 0 {
		t.Errorf("hanging instance accepted %d connections and read %d requests after its breaker opened, want 0", da, dr)
	}
}

// TestE2EHealthPOSTNeverTwice: POSTs to an instance that reads the request
// and resets are not retried: each of N concurrent POSTs reaches exactly
// one upstream once, and those that reached the resetting one get 502.
func TestE2EHealthPOSTNeverTwice(t *testing.T) {
	reset := startRawUpstream(t, resetAfterRead)
	live := startStub(t, "live", 0)
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "p"
retries = 2
  [services.breaker]  # keep the resetting instance in the picks
  consecutive_failures = 1000
  [services.limits]
  retry_budget = 1.0
  min_retries_per_second = 1000
  [[services.instances]]
  id = "reset"
  addr = %q
  [[services.instances]]
  id = "live"
  addr = %q
[[routes]]
prefix = "/p"
service = "p"
`, reset.addr(), live.Addr()), Options{})
	cl := newClient(t, gw.addr)

	const workers, each = 4, 10
	const n = workers * each
	var (
		mu       sync.Mutex
		statusOf = map[string]int{}
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf("post-%d-%d", w, i)
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.Header.SetMethod("POST")
				req.SetRequestURI("/p/x")
				req.Header.SetHost("gw.test")
				req.SetBodyString(body)
				err := cl.DoTimeout(req, resp, e2eTimeout)
				st := resp.StatusCode()
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
				if err != nil {
					t.Errorf("POST %s: %v", body, err)
					return
				}
				mu.Lock()
				statusOf[body] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	seen := map[string][]string{} // body -> upstreams that read it
	for _, r := range live.Received() {
		seen[string(r.Body)] = append(seen[string(r.Body)], "live")
	}
	reset.mu.Lock()
	for _, b := range reset.bodies {
		seen[string(b)] = append(seen[string(b)], "reset")
	}
	reset.mu.Unlock()

	if got := live.Requests() + reset.requests.Load(); got != n {
		t.Errorf("upstreams read %d POSTs (live %d, reset %d), want exactly %d", got, live.Requests(), reset.requests.Load(), n)
	}
	failed := 0
	for body, st := range statusOf {
		got := seen[body]
		switch {
		case len(got) != 1:
			t.Errorf("POST %s (status %d) read by %v, want exactly one upstream once", body, st, got)
		case st == 200 && got[0] != "live", st == 502 && got[0] != "reset", st != 200 && st != 502:
			t.Errorf("POST %s: status %d after %s read it, want 200 from live or 502 from reset", body, st, got[0])
		}
		if st == 502 {
			failed++
		}
	}
	if len(statusOf) != n {
		t.Errorf("%d answers, want %d", len(statusOf), n)
	}
	if failed == 0 || failed == n {
		t.Errorf("%d of %d POSTs got 502: want both instances used, or the test proves nothing", failed, n)
	}
	if got := metricValue(t, scrapeWith(t, cl), `fastgate_retries_total{service="p"}`); got != 0 {
		t.Errorf("fastgate_retries_total = %v, want 0 (no POST retried after a send)", got)
	}
}

// TestE2EHealthPanicMode: all three instances answer 503. With
// max_ejected_percent 50 only one breaker of three may open; the two others
// keep receiving requests, whose 503s pass through to the client (the
// gateway never answers its own "no available instance").
func TestE2EHealthPanicMode(t *testing.T) {
	stubs := []*stub.Server{startStub(t, "x", 0), startStub(t, "y", 0), startStub(t, "z", 0)}
	for _, s := range stubs {
		s.SetStatus(503)
	}
	clock := newE2EClock()
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "sick"
retries = 1
  [services.breaker]
  consecutive_failures = 2
  open_for = "30s"
  max_ejected_percent = 50
  [[services.instances]]
  id = "x"
  addr = %q
  [[services.instances]]
  id = "y"
  addr = %q
  [[services.instances]]
  id = "z"
  addr = %q
[[routes]]
prefix = "/s"
service = "sick"
`, stubs[0].Addr(), stubs[1].Addr(), stubs[2].Addr()), Options{Clock: clock})
	cl := newClient(t, gw.addr)
	ins := gw.g.Services()[0].Instances()
	notClosed := func() (n int) {
		for _, in := range ins {
			if in.Breaker().State() != health.Closed {
				n++
			}
		}
		return n
	}

	// Concurrent clients race to trip the breakers; a sampler watches.
	stop := make(chan struct{})
	var maxOpen atomic.Int32
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if n := int32(notClosed()); n > maxOpen.Load() {
				maxOpen.Store(n)
			}
			select {
			case <-stop:
				return
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		bad []string
	)
	check := func(r *fasthttp.Response) {
		var a stubAnswer
		if r.StatusCode() != 503 || json.Unmarshal(r.Body(), &a) != nil || a.Instance == "" {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("%d %s", r.StatusCode(), r.Body()))
			mu.Unlock()
		}
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for range 15 {
				req.SetRequestURI("/s/x")
				req.Header.SetHost("gw.test")
				if err := cl.DoTimeout(req, resp, e2eTimeout); err != nil {
					t.Errorf("GET: %v", err)
					return
				}
				check(resp)
			}
		}()
	}
	wg.Wait()

	// Sequential: the two closed ones keep getting every request.
	before := []int64{stubs[0].Requests(), stubs[1].Requests(), stubs[2].Requests()}
	for range 30 {
		r := do(t, cl, "GET", "/s/y", nil)
		if r.status != 503 || r.get("Retry-After") != "" {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("%d Retry-After %q %s", r.status, r.get("Retry-After"), r.body))
			mu.Unlock()
			continue
		}
		if n := notClosed(); int32(n) > maxOpen.Load() {
			maxOpen.Store(int32(n))
		}
		decodeStub(t, r)
	}
	close(stop)
	sampler.Wait()

	if len(bad) > 0 {
		t.Errorf("%d answers were not the upstream's 503 passed through: %v", len(bad), bad)
	}
	if m := maxOpen.Load(); m != 1 {
		t.Errorf("at most %d breakers were open at once, want exactly 1 (max_ejected_percent 50 of 3)", m)
	}
	text := scrapeWith(t, cl)
	open, ejections := 0, 0.0
	for i, in := range ins {
		state := metricValue(t, text, instSeries("fastgate_breaker_state", "sick", in.ID()))
		ejections += metricValue(t, text, instSeries("fastgate_ejections_total", "sick", in.ID()))
		if state == 1 {
			open++
			if d := stubs[i].Requests() - before[i]; d != 0 {
				t.Errorf("open %s got %d requests, want 0", in.ID(), d)
			}
			continue
		}
		if state != 0 {
			t.Errorf("%s breaker state %v, want 0 or 1", in.ID(), state)
		}
		if d := stubs[i].Requests() - before[i]; d < 10 {
			t.Errorf("closed %s got %d of the last 30 requests, want about half", in.ID(), d)
		}
	}
	if open != 1 || ejections != 1 {
		t.Errorf("%d breakers open and %v ejections, want 1 and 1", open, ejections)
	}
}

// TestE2EHealthRetryBudget: retries may add at most retry_budget of the
// requests. One of two instances refuses connections; with retry_budget 0.2
// and no floor, 100 GETs give at most 20 retries, and the requests whose
// retry was refused get 502.
func TestE2EHealthRetryBudget(t *testing.T) {
	live := startStub(t, "live", 0)
	dead := closedAddr(t)
	clock := newE2EClock() // the budget's window never slides
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "rb"
retries = 1
  [services.breaker]  # keep the dead instance in the picks
  consecutive_failures = 1000
  [services.limits]
  retry_budget = 0.2
  min_retries_per_second = 0
  [[services.instances]]
  id = "dead"
  addr = %q
  [[services.instances]]
  id = "live"
  addr = %q
[[routes]]
prefix = "/r"
service = "rb"
`, dead, live.Addr()), Options{Clock: clock})
	cl := newClient(t, gw.addr)

	const n = 100
	ok, failed := 0, 0
	for i := range n {
		r := do(t, cl, "GET", fmt.Sprintf("/r/%d", i), nil)
		switch r.status {
		case 200:
			ok++
		case 502:
			failed++
			checkErrorAnswer(t, r, 502)
		default:
			t.Fatalf("GET %d: status %d (body %s), want 200 or 502", i, r.status, r.body)
		}
	}
	text := scrapeWith(t, cl)
	retries := metricValue(t, text, `fastgate_retries_total{service="rb"}`)
	deadTries := metricValue(t, text, `fastgate_upstream_requests_total{service="rb",instance="dead",outcome="connect_error"}`)
	t.Logf("%d GETs: %d answered 200, %d 502; %v attempts on dead, %v retries", n, ok, failed, deadTries, retries)
	// AllowRetry admits a retry while retries < 0.2 x requests: after 100
	// requests, at most 20. No tolerance is needed: the fake clock keeps
	// every request in the window.
	if retries > 20 {
		t.Errorf("fastgate_retries_total = %v over %d requests, want at most 20 (retry_budget 0.2)", retries, n)
	}
	if retries < 15 {
		t.Errorf("fastgate_retries_total = %v, want close to the budget of 20: the budget refuses too much", retries)
	}
	if deadTries < 30 {
		t.Fatalf("dead was tried first on only %v requests: the test proves nothing", deadTries)
	}
	// Every request that started on dead was either retried (200 from
	// live) or refused a retry (502); live never fails.
	if float64(failed) != deadTries-retries {
		t.Errorf("%d answers 502, want attempts on dead - retries = %v", failed, deadTries-retries)
	}
	if live.Requests() != int64(ok) {
		t.Errorf("live served %d, want %d (one per 200)", live.Requests(), ok)
	}
}

// TestE2EHealthJSON: with active checks on, /health shows for each
// instance whether it is up, its breaker state, its consecutive failures,
// the time of its last check and the last check's error.
func TestE2EHealthJSON(t *testing.T) {
	ok := startStub(t, "ok", 0)
	sick := startStub(t, "sick", 0)
	sick.SetHealthy(false)
	failing := startStub(t, "failing", 0)
	failing.SetStatus(502) // requests fail; its health path passes
	refused := closedAddr(t)
	testStart := time.Now()
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "js"
retries = 1
  [services.health]
  path = "/health"
  interval = "30ms"
  timeout = "1s"
  rise = 2
  fall = 2
  [services.breaker]
  consecutive_failures = 3
  open_for = "30s"
  [[services.instances]]
  id = "ok"
  addr = %q
  [[services.instances]]
  id = "sick"
  addr = %q
  [[services.instances]]
  id = "failing"
  addr = %q
  [[services.instances]]
  id = "refused"
  addr = %q
[[routes]]
prefix = "/j"
service = "js"
`, ok.Addr(), sick.Addr(), failing.Addr(), refused), Options{})
	cl := newClient(t, gw.addr)
	svc := gw.g.Services()[0]
	waitWithin(t, 2*time.Second, "sick and refused marked down", func() bool {
		up, _ := svc.Counts()
		return up == 2
	})

	// Requests now alternate between ok and failing, whose 502s pass
	// through and count as failures: 1, 2, then the breaker trips.
	fails := 0
	for i := 0; fails < 3; i++ {
		if i > 20 {
			t.Fatalf("only %d requests went to failing in 20", fails)
		}
		r := do(t, cl, "GET", "/j/x", nil)
		if decodeStub(t, r).Instance != "failing" {
			continue
		}
		fails++
		_, inst := getHealth(t, cl, "js")
		h := inst["failing"]
		switch fails {
		case 1, 2:
			if *h.ConsecutiveFailures != fails || h.Breaker != "closed" {
				t.Errorf("after %d failures: failing has consecutive_failures %d, breaker %q; want %d, closed", fails, *h.ConsecutiveFailures, h.Breaker, fails)
			}
		case 3:
			if h.Breaker != "open" {
				t.Errorf("after 3 failures: failing breaker %q, want open", h.Breaker)
			}
		}
	}

	// Last check times advance while the checks run.
	_, first := getHealth(t, cl, "js")
	var inst map[string]instanceHealth
	waitWithin(t, time.Second, "a newer last_check on every instance", func() bool {
		_, inst = getHealth(t, cl, "js")
		for id, h := range inst {
			if h.LastCheck == nil || first[id].LastCheck == nil || *h.LastCheck == *first[id].LastCheck {
				return false
			}
		}
		return true
	})
	want := map[string]struct {
		up      bool
		breaker string
		err     string // substring of last_error; "" = empty
	}{
		"ok":      {true, "closed", ""},
		"sick":    {false, "closed", "Service Unavailable"},
		"failing": {true, "open", ""},
		"refused": {false, "closed", "refused"},
	}
	for id, w := range want {
		h, found := inst[id]
		if !found {
			t.Errorf("/health lacks instance %s", id)
			continue
		}
		if *h.Up != w.up || h.Breaker != w.breaker {
			t.Errorf("%s: up %v, breaker %q; want %v, %q", id, *h.Up, h.Breaker, w.up, w.breaker)
		}
		if h.Addr == "" || h.InFlight == nil || *h.InFlight != 0 {
			t.Errorf("%s: addr %q, in_flight %v; want an address and 0", id, h.Addr, h.InFlight)
		}
		if h.LastCheck == nil || h.LastError == nil {
			t.Errorf("%s: last_check or last_error missing with active checks on", id)
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, *h.LastCheck)
		if err != nil {
			t.Errorf("%s: last_check %q: %v", id, *h.LastCheck, err)
		} else if at.Before(testStart.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: last_check %v, want within the test (%v..now)", id, at, testStart)
		}
		switch {
		case w.err == "" && *h.LastError != "":
			t.Errorf("%s: last_error %q, want empty", id, *h.LastError)
		case w.err != "" && !strings.Contains(*h.LastError, w.err):
			t.Errorf("%s: last_error %q, want it to mention %q", id, *h.LastError, w.err)
		}
	}
	text := scrapeWith(t, cl)
	for _, c := range []struct {
		id, result string
	}{{"ok", "pass"}, {"failing", "pass"}, {"sick", "fail"}, {"refused", "fail"}} {
		series := fmt.Sprintf(`fastgate_health_checks_total{service="js",instance=%q,result=%q}`, c.id, c.result)
		if got := metricValue(t, text, series); got < 2 {
			t.Errorf("%s = %v, want at least 2", series, got)
		}
	}
	ids := make([]string, 0, len(inst))
	for id := range inst {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if !slices.Equal(ids, []string{"failing", "ok", "refused", "sick"}) {
		t.Errorf("/health instances %v", ids)
	}
}

// TestE2EHealthProbeNotLost: a half-open breaker admits one probe; a pick
// that admits it must lead to a request on the instance (whose outcome then
// closes or reopens the breaker). Here the route deadline passes during the
// first attempt, on a hanging instance, and the open period of the other
// instance's breaker ends meanwhile: the retry's pick must not take the
// probe and then give up, or the instance stays half-open with no probe
// left, out of the picks for good.
func TestE2EHealthProbeNotLost(t *testing.T) {
	hang := startHangUpstream(t)
	probe := startStub(t, "probe", 0)
	clock := newE2EClock()
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "pl"
timeout = "100ms"
retries = 1
  [services.breaker]
  consecutive_failures = 2
  open_for = "10s"
  [[services.instances]]
  id = "hang"
  addr = %q
  [[services.instances]]
  id = "probe"
  addr = %q
[[routes]]
prefix = "/l"
service = "pl"
timeout = "100ms"
`, hang.addr(), probe.Addr()), Options{Clock: clock})
	cl := newClient(t, gw.addr)
	inProbe := gw.g.Services()[0].Instances()[1]
	inProbe.Record(true)
	inProbe.Record(true) // as two failed requests would: open for 10s
	if st := inProbe.Breaker().State(); st != health.Open {
		t.Fatalf("probe breaker %v after 2 failures, want open", st)
	}

	// The first attempt can only go to hang (probe is open); while it hangs,
	// probe's open period ends.
	done := make(chan *response, 1)
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("/l/x")
		req.Header.SetHost("gw.test")
		if err := cl.DoTimeout(req, resp, e2eTimeout); err != nil {
			t.Errorf("GET: %v", err)
			done <- nil
			return
		}
		done <- newResponse(resp)
	}()
	waitWithin(t, time.Second, "the first attempt reaches hang", func() bool { return hang.requests.Load() == 1 })
	clock.Advance(11 * time.Second)
	r := <-done
	if r == nil {
		return
	}
	checkErrorAnswer(t, r, 504)
	_, inst := getHealth(t, cl, "pl")
	t.Logf("after the timed-out GET: probe breaker %q, %d requests on probe", inst["probe"].Breaker, probe.Requests())

	// The probe must still be there for the next requests.
	served := false
	for i := 0; i < 4 && !served; i++ {
		r := do(t, cl, "GET", "/l/y", nil)
		served = r.status == 200 && decodeStub(t, r).Instance == "probe"
	}
	if !served {
		_, inst := getHealth(t, cl, "pl")
		t.Errorf("probe (healthy, open period over) served none of the next 4 GETs; its breaker is %q with %d requests on it: "+
			"the half-open probe was taken by a pick that sent nothing", inst["probe"].Breaker, probe.Requests())
	} else if st := inProbe.Breaker().State(); st != health.Closed {
		t.Errorf("probe breaker %v after a good probe, want closed", st)
	}
}

// TestE2EHealthPoolFullIsNoFailure: a full connection pool (max_conns) is a
// local limit, not a failure of the instance. Its 503s must not count
// toward tripping the breaker, and a half-open probe that met a full pool
// must give its slot back (else the breaker waits forever for its result).
func TestE2EHealthPoolFullIsNoFailure(t *testing.T) {
	hang := startHangUpstream(t)
	clock := newE2EClock()
	gw := startGatewayWith(t, fmt.Sprintf(`
[[services]]
name = "pf"
timeout = "10s"
retries = 0
max_conns = 1
  [services.breaker]
  consecutive_failures = 2
  open_for = "10s"
  half_open_requests = 1
  max_ejected_percent = 100
  [[services.instances]]
  id = "hang"
  addr = %q
[[routes]]
prefix = "/pf"
service = "pf"
timeout = "10s"
`, hang.addr()), Options{Clock: clock})
	in := gw.g.Services()[0].Instances()[0]
	defer hang.closeConns() // before the gateway's shutdown waits for the holder

	// One request holds the only connection (the upstream never answers).
	holder, err := net.Dial("tcp", gw.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Write([]byte(rawGet("/pf/hold"))); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 5*time.Second, "the holding request reaches the upstream", func() bool { return hang.requests.Load() == 1 })

	for i := range 3 {
		r := dialRaw(t, gw.addr).roundTrip(rawGet("/pf/x"))
		checkErrorAnswer(t, r, 503)
		if st, n := in.Breaker().State(), in.Breaker().ConsecutiveFailures(); st != health.Closed || n != 0 {
			t.Fatalf("after %d answers from a full pool: breaker %v with %d failures, want closed with 0", i+1, st, n)
		}
	}

	in.Record(true)
	in.Record(true) // as two failed requests would: open for 10s
	if st := in.Breaker().State(); st != health.Open {
		t.Fatalf("breaker %v after 2 failures, want open", st)
	}
	clock.Advance(11 * time.Second)
	r := dialRaw(t, gw.addr).roundTrip(rawGet("/pf/probe")) // admitted as the probe, meets the full pool
	checkErrorAnswer(t, r, 503)
	if !in.Breaker().Allow() {
		t.Errorf("breaker %v refuses the next probe: the probe that met a full pool kept its slot", in.Breaker().State())
	}
	if n := hang.requests.Load(); n != 1 {
		t.Errorf("upstream read %d requests, want 1 (the holder's)", n)
	}
}
