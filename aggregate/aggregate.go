// Package aggregate serves fan-out endpoints: one client request calls
// several upstream parts at once and gets one JSON document back,
//
//	{"status":"success|partial|error","data":{"key":<raw part JSON>|null,...},
//	 "errors":{"key":{"status":504,"error":"timeout"},...},
//	 "meta":{"aggregated_at":"RFC3339","services_called":4,"services_succeeded":3,"duration_ms":12.3}}
//
// All parts start together, each in a worker goroutine (reused while busy,
// gone after 2s without work); the answer is written as soon
// as the last part settles or the aggregate's deadline passes. Part bodies
// are validated and copied raw into the answer, never decoded. A part still
// running at the deadline is abandoned: its worker finishes it on its own
// and the last one out returns the request's pooled state.
//
// The package knows nothing of balancers: each part reaches its service
// through a Doer that the caller resolves by service name.
package aggregate

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

// Doer sends one part request. The gateway implements it with its balancer
// and retry path; tests use a *fasthttp.HostClient.
//
// DoDeadline must return by about deadline, and must send the request target
// as set (a fasthttp.HostClient with DisablePathNormalizing, or placeholder
// values such as "a%2F.." could be decoded upstream). It is called from
// concurrently running goroutines.
type Doer interface {
	DoDeadline(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error
}

// MaxParts bounds the parts of one aggregate.
const MaxParts = config.MaxAggregateParts

// UserID is the ctx.UserValue key under which authentication stores the
// user id (a string or []byte) that fills {user_id}.
const UserID = userIDKey(0)

type userIDKey uint8

// Errors returned by New.
var (
	ErrNoParts        = errors.New("aggregate: no parts")
	ErrTooManyParts   = errors.New("aggregate: too many parts")
	ErrBadKey         = errors.New("aggregate: bad part key")
	ErrBadPath        = errors.New("aggregate: bad part path")
	ErrBadPlaceholder = errors.New("aggregate: bad placeholder")
	ErrBadTimeout     = errors.New("aggregate: timeout must be positive")
	ErrBadStatus      = errors.New("aggregate: bad status_on_partial")
	ErrNoDoer         = errors.New("aggregate: no doer for service")
)

// Spec describes an aggregate. The zero values of optional fields take the
// defaults in brackets.
type Spec struct {
	Name            string        // the aggregate's path; labels its metrics
	Timeout         time.Duration // deadline for the whole aggregate, from the start of Handle
	StatusOnPartial int           // status when only optional parts failed [200]
	MaxPartBytes    int           // a larger part body fails the part [1MiB]
	TrustUserHeader bool          // fill {user_id} from the client's X-User-ID when no UserID value is set
	Parts           []PartSpec
}

// PartSpec describes one part.
type PartSpec struct {
	Key            string        // key under "data"; [A-Za-z0-9_.-]+, unique
	Service        string        // resolved to a Doer by New
	Path           string        // request target with {name}, {query.name}, {user_id} placeholders
	Timeout        time.Duration // per part, capped by Spec.Timeout [Spec.Timeout]
	Required       bool          // a failed required part fails the answer
	ForwardHeaders []string      // request headers copied to the part
}

// SpecOf converts a validated config aggregate.
func SpecOf(a *config.Aggregate) Spec {
	s := Spec{
		Name:            a.Path,
		Timeout:         a.Timeout.Duration,
		StatusOnPartial: *a.StatusOnPartial,
		MaxPartBytes:    int(a.MaxPartBytes.N),
		TrustUserHeader: a.TrustUserHeader,
		Parts:           make([]PartSpec, len(a.Parts)),
	}
	for i, p := range a.Parts {
		s.Parts[i] = PartSpec{Key: p.Key, Service: p.Service, Path: p.Path, Timeout: p.Timeout.Duration,
			Required: p.Required, ForwardHeaders: p.ForwardHeaders}
	}
	return s
}

// Endpoint serves one aggregate.
//
// It is safe calling Endpoint methods from concurrently running goroutines.
// It is forbidden copying Endpoint instances: create new ones with New.
type Endpoint struct {
	name            string
	timeout         time.Duration
	statusOnPartial int
	maxPartBytes    int
	trustUserHeader bool
	vary            []byte // the parts' forward_headers, for the answer's Vary; nil when none
	parts           []part
	metrics         *endpointMetrics
	pool            sync.Pool  // *call
	work            chan *slot // parts for idle workers; unbuffered: a send succeeds only when one is waiting
	workerIdle      time.Duration
}

// defaultWorkerIdle is how long a part worker waits for another part
// before it exits.
const defaultWorkerIdle = 2 * time.Second

// varyOf lists, once each and comma-separated, the request headers the
// parts forward: the answer depends on them, and says so in Vary, so that
// the gateway's cache (and any downstream) keys on them.
func varyOf(parts []part) []byte {
	var b []byte
	seen := map[string]bool{}
	for i := range parts {
		for _, h := range parts[i].headers {
			if seen[string(h)] {
				continue
			}
			seen[string(h)] = true
			if len(b) > 0 {
				b = append(b, ", "...)
			}
			b = append(b, h...)
		}
	}
	return b
}

// part is a PartSpec compiled for the request path. Immutable.
type part struct {
	key      string
	keyJSON  []byte // `"key":`
	service  []byte
	tmpl     template
	timeout  time.Duration
	required bool
	headers  [][]byte
	doer     Doer
}

// New compiles spec, resolving each part's service to its Doer with
// resolve, and creates the endpoint's metrics in set (a private set when
// nil). It checks what the request path relies on; config validation checks
// more (for example that each {name} is a param of the aggregate's path).
func New(spec Spec, resolve func(service string) Doer, set *metrics.Set) (*Endpoint, error) {
	if spec.Timeout <= 0 {
		return nil, ErrBadTimeout
	}
	switch n := len(spec.Parts); {
	case n == 0:
		return nil, ErrNoParts
	case n > MaxParts:
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyParts, n, MaxParts)
	}
	e := &Endpoint{
		name:            spec.Name,
		timeout:         spec.Timeout,
		statusOnPartial: spec.StatusOnPartial,
		maxPartBytes:    spec.MaxPartBytes,
		trustUserHeader: spec.TrustUserHeader,
		parts:           make([]part, len(spec.Parts)),
	}
	if e.statusOnPartial == 0 {
		e.statusOnPartial = config.DefaultStatusOnPartial
	}
	if s := e.statusOnPartial; s < 200 || s > 599 {
		return nil, fmt.Errorf("%w: %d", ErrBadStatus, s)
	}
	if e.maxPartBytes <= 0 {
		e.maxPartBytes = config.DefaultMaxPartBytes
	}
	keys := map[string]bool{}
	for i, ps := range spec.Parts {
		if !validName(ps.Key) || keys[ps.Key] {
			return nil, fmt.Errorf("%w: %q (empty, duplicate or not [A-Za-z0-9_.-])", ErrBadKey, ps.Key)
		}
		keys[ps.Key] = true
		p, err := compilePart(ps, spec.Timeout, resolve)
		if err != nil {
			return nil, err
		}
		e.parts[i] = p
	}
	e.vary = varyOf(e.parts)
	if set == nil {
		set = metrics.NewSet()
	}
	e.metrics = newEndpointMetrics(set, e.name, e.parts)
	e.pool.New = func() any { return e.newCall() }
	e.work = make(chan *slot)
	e.workerIdle = defaultWorkerIdle
	return e, nil
}

func compilePart(ps PartSpec, timeout time.Duration, resolve func(string) Doer) (part, error) {
	p := part{
		key:      ps.Key,
		keyJSON:  []byte(`"` + ps.Key + `":`),
		service:  []byte(ps.Service),
		timeout:  ps.Timeout,
		required: ps.Required,
	}
	if p.timeout <= 0 || p.timeout > timeout {
		p.timeout = timeout
	}
	var err error
	if p.tmpl, err = parseTemplate(ps.Path); err != nil {
		return p, err
	}
	for _, h := range ps.ForwardHeaders {
		p.headers = append(p.headers, fasthttp.AppendNormalizedHeaderKey(nil, h))
	}
	if p.doer = resolve(ps.Service); p.doer == nil {
		return p, fmt.Errorf("%w %q", ErrNoDoer, ps.Service)
	}
	return p, nil
}

// Name is the aggregate's name (its path), as given in the Spec.
func (e *Endpoint) Name() string { return e.name }

// Summary is what an aggregate request did, for the access log. It is a
// plain value; Outcomes[i] is the outcome of part i in Spec order.
type Summary struct {
	Status    int // the HTTP status answered
	Called    uint8
	Succeeded uint8
	Failed    uint8 // Called - Succeeded
	TimedOut  uint8 // failed by a timeout or the aggregate's deadline (also counted in Failed)
	Outcomes  [MaxParts]Outcome
}

// AppendParts appends the part outcomes of s as "key=outcome" pairs
// separated by spaces ("profile=ok posts=timeout"), for a log line. s must
// come from e.Handle.
func (e *Endpoint) AppendParts(dst []byte, s *Summary) []byte {
	for i := 0; i < int(s.Called) && i < len(e.parts); i++ {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, e.parts[i].key...)
		dst = append(dst, '=')
		dst = append(dst, s.Outcomes[i].String()...)
	}
	return dst
}
