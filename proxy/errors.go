package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/fastgate/fastgate/balance"
	"github.com/valyala/fasthttp"
)

// errRouteTimeout ends a request whose route deadline passed between
// attempts.
var errRouteTimeout = errors.New("proxy: route timeout")

// outcome classifies one upstream attempt, for metrics and retries.
type outcome uint8

const (
	outcomeSuccess      outcome = iota // a response was read
	outcomeConnectError                // nothing reached the upstream: dial failed, pool full
	outcomeTimeout                     // no answer in time
	outcomeError                       // reset, closed, malformed response
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "connect_error", "timeout", "error"}

// classify maps an attempt's error to its outcome. This and statusFor are
// the one place where upstream errors become HTTP semantics.
func classify(err error) outcome {
	switch {
	case err == nil:
		return outcomeSuccess
	case errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, fasthttp.ErrDialTimeout):
		return outcomeConnectError
	case isDialError(err):
		return outcomeConnectError
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, errRouteTimeout):
		return outcomeTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return outcomeTimeout
	}
	return outcomeError
}

// isDialError reports an error from establishing the connection, before
// any byte of the request was written.
func isDialError(err error) bool {
	var dial *fasthttp.ErrDialWithUpstream
	if errors.As(err, &dial) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// Error answers, as sent to clients.
const (
	msgNoInstance  = "no available instance"
	msgBadGateway  = "bad gateway: upstream failed"
	msgTimeout     = "gateway timeout: upstream did not answer in time"
	msgPoolFull    = "upstream connection limit reached"
	msgNotFound    = "no route for path"
	msgMethod      = "method not allowed"
	msgBadRequest  = "bad request"
	msgURITooLong  = "request target too long"
	msgHeaderLarge = "request header fields too large"
	msgBodyLarge   = "request body too large"
	msgTimeoutRead = "request not received in time"
	msgUnsupported = "unsupported transfer coding"
	msgVersion     = "HTTP version not supported"
)

// statusFor maps the final error of a proxied request to the client's
// status: 503 when there was nothing to try, 504 on timeouts, 502 for every
// other upstream fault. Never 500 or 408 for an upstream fault.
func statusFor(err error) (int, string) {
	switch {
	case errors.Is(err, balance.ErrNoInstance):
		return fasthttp.StatusServiceUnavailable, msgNoInstance
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fasthttp.StatusServiceUnavailable, msgPoolFull
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return fasthttp.StatusGatewayTimeout, msgTimeout
	}
	if classify(err) == outcomeTimeout {
		return fasthttp.StatusGatewayTimeout, msgTimeout
	}
	return fasthttp.StatusBadGateway, msgBadGateway
}

// writeError answers ctx with status and a JSON body
// {"error":msg,"request_id":id}. msg and id need no JSON escaping: msg is one
// of the constants above and id is checked by validRequestID.
func writeError(ctx *fasthttp.RequestCtx, status int, msg string, id []byte) {
	r := &ctx.Response
	r.ResetBody()
	r.SetStatusCode(status)
	r.Header.SetContentTypeBytes(contentTypeJSON)
	if status == fasthttp.StatusServiceUnavailable {
		r.Header.SetCanonical(headerRetryAfter, retryAfterValue)
	}
	r.Header.SetCanonical(headerRequestID, id)
	r.AppendBodyString(`{"error":"`)
	r.AppendBodyString(msg)
	r.AppendBodyString(`","request_id":"`)
	r.AppendBody(id)
	r.AppendBodyString(`"}`)
}

var (
	contentTypeJSON = []byte("application/json")
	retryAfterValue = []byte("1")
)
