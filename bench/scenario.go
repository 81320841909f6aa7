package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/fastgate/fastgate/auth"
)

// scenario is one workload the suite can run. Adding a scenario is adding
// one entry to scenarios; a feature the gateway lacks is marked Pending and
// reported as skipped rather than run.
type scenario struct {
	// Name is what a user passes to -scenario.
	Name string
	// Method is the HTTP method ["GET"].
	Method string
	// Path is the request path sent to every target ["/"].
	Path string
	// ReqBody is the request body size in bytes [0: no body].
	ReqBody int
	// RespBody is the size each stub pads its answers to.
	RespBody int
	// Conns is the number of client connections.
	Conns int
	// Feature is the gateway feature the scenario exercises, which every
	// peer's config then expresses its own way [featureProxy].
	Feature feature
	// StubLatency is the latency the stubs add in this scenario when
	// -stub-latency is 0 [0].
	StubLatency time.Duration
	// Unsupported says, per peer, why it has no equivalent of Feature; the
	// peer is reported skipped with that reason, never faked.
	Unsupported map[string]string
	// Headers are request headers every load run sends (wrk -H); filled at
	// run time (the jwt scenario's bearer token).
	Headers []header
	// Tokens is how many distinct bearer tokens (featureJWT) the load sends
	// in turn, the next one on each request, from a file in the scenario's
	// dir (see tokens.go) [0: one token in Headers on every request].
	Tokens int
	// Bearers are the Tokens as Authorization values, for the open loop;
	// filled at run time.
	Bearers [][]byte
	// Pending, when set, is why the scenario cannot run yet.
	Pending string
}

// header is one request header.
type header struct{ Name, Value string }

// feature is what a scenario's gateway config switches on.
type feature string

const (
	featureProxy     feature = ""          // a plain proxied route
	featureAggregate feature = "aggregate" // an [[aggregates]] endpoint fanning out to the stubs
	featureCache     feature = "cache"     // the response cache on the route
	featureJWT       feature = "jwt"       // auth = "jwt" on the route
)

// Aggregate scenario shape: aggregatePath fans out to aggregateParts, each a
// GET of a distinct path on the stub service; singleTarget is the same
// gateway's single proxied call, measured in the same rounds.
const (
	aggregatePath  = "/agg"
	aggregateParts = 4
	singleTarget   = "gateway-single"
	singlePath     = "/"
)

// aggregatePartPaths are the stub paths the aggregate's parts GET.
func aggregatePartPaths() []string {
	paths := make([]string, aggregateParts)
	for i := range paths {
		paths[i] = fmt.Sprintf("/part/%d", i+1)
	}
	return paths
}

// Why nginx and HAProxy sit out some scenarios.
const (
	noAggregate = "no equivalent: no fan-out aggregation"
	noNginxJWT  = "no JWT verification in Debian's nginx (auth_jwt is NGINX Plus only)"
)

// verifyTokens is how many distinct tokens jwt-verify sends in turn: twice
// auth.SeenMax for each of wrk's two threads (-threads 2), which share
// the tokens out (see tokens.go), so that a token comes round again only
// after its shard of the gateway's seen cache has been filled and emptied:
// every request is a miss.
const (
	gatewaySeenMax = auth.SeenMax
	verifyTokens   = 2 * 2 * gatewaySeenMax
)

// cacheTTL is the cached scenario's lifetime on every peer.
const cacheTTL = 60 * time.Second

const pendingFeature = "feature not built yet"

// scenarios lists every known scenario in the order the suite runs them.
func scenarios() []scenario {
	return []scenario{
		{Name: "proxy-small", Method: "GET", Path: "/", RespBody: 256, Conns: 64},
		{Name: "proxy-conns", Method: "GET", Path: "/", RespBody: 256, Conns: 512},
		{Name: "proxy-large", Method: "GET", Path: "/", RespBody: 16 << 10, Conns: 64},
		{Name: "post-4k", Method: "POST", Path: "/", ReqBody: 4 << 10, RespBody: 256, Conns: 64},
		{Name: "aggregate-4", Method: "GET", Path: aggregatePath, RespBody: 256, Conns: 64, Feature: featureAggregate,
			StubLatency: time.Millisecond, Unsupported: map[string]string{"nginx": noAggregate, "haproxy": noAggregate}},
		{Name: "cached", Method: "GET", Path: "/cached/item", RespBody: 256, Conns: 64, Feature: featureCache},
		{Name: "jwt", Method: "GET", Path: "/", RespBody: 256, Conns: 64, Feature: featureJWT,
			Unsupported: map[string]string{"nginx": noNginxJWT}},
		{Name: "jwt-verify", Method: "GET", Path: "/", RespBody: 256, Conns: 64, Feature: featureJWT, Tokens: verifyTokens,
			Unsupported: map[string]string{"nginx": noNginxJWT}},
	}
}

// Describe is a one-line human description of the workload.
func (s scenario) Describe() string {
	var b strings.Builder
	b.WriteString(s.Method)
	if s.ReqBody > 0 {
		fmt.Fprintf(&b, " with a %s body", fmtBytes(s.ReqBody))
	}
	switch s.Feature {
	case featureAggregate:
		fmt.Fprintf(&b, " %s, an aggregate of %d parts (GETs of distinct paths), %s per part", s.Path, aggregateParts, fmtBytes(s.RespBody))
	case featureCache:
		fmt.Fprintf(&b, " of one URL cached for %ds, %s response", int(cacheTTL.Seconds()), fmtBytes(s.RespBody))
	case featureJWT:
		if s.Tokens > 0 {
			fmt.Fprintf(&b, " with the next of %d ES256 bearer JWTs on each request (%gx the gateway's cache of verified tokens: each verified), %s response",
				s.Tokens, float64(s.Tokens)/gatewaySeenMax, fmtBytes(s.RespBody))
		} else {
			fmt.Fprintf(&b, " with an ES256 bearer JWT verified, %s response", fmtBytes(s.RespBody))
		}
	default:
		fmt.Fprintf(&b, ", %s response", fmtBytes(s.RespBody))
	}
	fmt.Fprintf(&b, ", %d connections", s.Conns)
	if s.StubLatency > 0 {
		fmt.Fprintf(&b, ", stub latency %v", s.StubLatency)
	}
	return b.String()
}

// selectScenarios resolves a comma-separated list of names ("all" or empty
// for every known scenario), keeping the table's order.
func selectScenarios(list string) ([]scenario, error) {
	all := scenarios()
	if list == "" || list == "all" {
		return all, nil
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	var out []scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		var unknown, known []string
		for n := range want {
			unknown = append(unknown, n)
		}
		for _, s := range all {
			known = append(known, s.Name)
		}
		return nil, fmt.Errorf("unknown scenario %s (known: %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
