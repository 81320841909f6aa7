package proxy

import (
	"time"

	"github.com/fastgate/fastgate/aggregate"
	"github.com/fastgate/fastgate/config"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// aggRoute is one [[aggregates]] endpoint. Immutable.
type aggRoute struct {
	ep      *aggregate.Endpoint
	metrics *routeMetrics
	edge    *edgeRoute
	timeout time.Duration
}

// aggregates matches aggregate paths (with fasthttp/router's {param}
// syntax) on the normalized path. Immutable after buildAggregates.
type aggregates struct {
	byMethod *router.Router // registered methods: the handler names the endpoint
	anyPath  *router.Router // every aggregate path under every method, for 405
}

// aggregateKey is the ctx user value through which a router handler names
// the endpoint that matched.
type aggregateKey struct{}

func (g *Gateway) buildAggregates(cfg *config.Config, byName map[string]*upstream) *aggregates {
	if len(cfg.Aggregates) == 0 {
		return nil
	}
	as := &aggregates{byMethod: router.New(), anyPath: router.New()}
	for i := range cfg.Aggregates {
		ac := &cfg.Aggregates[i]
		ep, err := aggregate.New(aggregate.SpecOf(ac), func(service string) aggregate.Doer {
			if u := byName[service]; u != nil {
				return partDoer{u}
			}
			return nil
		}, g.metrics)
		if err != nil { // config validation rules out every error New returns
			panic("proxy: aggregate " + ac.Path + ": " + err.Error())
		}
		edge := g.edge.route(&ac.Edge)
		edge.aggregate, edge.trustUser = true, ac.TrustUserHeader
		a := &aggRoute{ep: ep, metrics: newRouteMetrics(g.metrics, ac.Path, "_aggregate"), edge: edge, timeout: ac.Timeout.Duration}
		mark := func(ctx *fasthttp.RequestCtx) { ctx.SetUserValue(aggregateKey{}, a) }
		for _, m := range ac.Methods {
			as.byMethod.Handle(m, ac.Path, mark)
		}
		as.anyPath.Handle(router.MethodWild, ac.Path, mark)
	}
	return as
}

// lookup returns the aggregate whose path matches, leaving its path params
// in ctx's user values, with 0; or the aggregate and 405 when its path
// matches under another method (a CORS preflight may still be answered);
// or nil.
func (as *aggregates) lookup(ctx *fasthttp.RequestCtx, path []byte) (*aggRoute, int) {
	if as == nil {
		return nil, 0
	}
	method, p := b2s(ctx.Request.Header.Method()), b2s(path)
	if h, _ := as.byMethod.Lookup(method, p, ctx); h != nil {
		h(ctx)
		a, _ := ctx.UserValue(aggregateKey{}).(*aggRoute)
		return a, 0
	}
	if h, _ := as.anyPath.Lookup(method, p, ctx); h != nil {
		h(ctx)
		a, _ := ctx.UserValue(aggregateKey{}).(*aggRoute)
		return a, fasthttp.StatusMethodNotAllowed
	}
	return nil, 0
}

// serveAggregate fans the request out. The parts get the request ID and the
// X-Forwarded-* headers, set here as on a proxied request.
func (g *Gateway) serveAggregate(ctx *fasthttp.RequestCtx, x *exchange, a *aggRoute) {
	x.agg = a
	g.setForwardedHeaders(ctx, x, nil)
	x.sum = a.ep.Handle(ctx)
	ctx.Response.Header.SetCanonical(headerRequestID, x.id)
}

// partDoer sends aggregate parts through a service's balancer, breakers and
// retry rules: each part is one request with the service's per-attempt
// timeout and retries, within the part's deadline.
type partDoer struct{ u *upstream }

func (d partDoer) DoDeadline(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	var a attemptLog
	return d.u.try(req, resp, &a, d.u.attempt, d.u.retries, time.Now(), deadline)
}
