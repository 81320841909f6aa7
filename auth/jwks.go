package auth

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
)

func newFetchClient(timeout time.Duration) *fasthttp.Client {
	return &fasthttp.Client{
		Name:                "fastgate-jwks",
		ReadTimeout:         timeout,
		WriteTimeout:        timeout,
		MaxResponseBodySize: maxKeyFile,
		MaxConnsPerHost:     2,
	}
}

// fetchJWKS GETs the JWK Set at url. Redirects are not followed and
// anything but 200 is an error.
func (v *Verifier) fetchJWKS() ([]*key, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(v.jwksURL)
	req.Header.Set(fasthttp.HeaderAccept, "application/jwk-set+json, application/json")
	if err := v.client.DoTimeout(req, resp, v.fetchTTL); err != nil {
		return nil, fmt.Errorf("auth: jwks_url %s: %w", v.jwksURL, err)
	}
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		return nil, fmt.Errorf("auth: jwks_url %s: status %d", v.jwksURL, code)
	}
	keys, err := parseJWKS(resp.Body())
	if err != nil {
		return nil, fmt.Errorf("%w (jwks_url %s)", err, v.jwksURL)
	}
	return keys, nil
}

// refresh fetches the JWK Set and swaps in static keys + fetched keys. On
// error the current set stays.
func (v *Verifier) refresh() error {
	fetched, err := v.fetchJWKS()
	if err != nil {
		return err
	}
	all := append(append(make([]*key, 0, len(v.static)+len(fetched)), v.static...), fetched...)
	ks, err := newKeySet(all, v.algs)
	if err != nil {
		return err
	}
	v.keys.Store(ks)
	return nil
}

// refreshLoop refreshes every interval until Close. A failed refresh is
// reported and retried at the next tick; the last good set keeps serving.
func (v *Verifier) refreshLoop(every time.Duration) {
	defer close(v.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
		if err := v.refresh(); err != nil && v.onError != nil {
			v.onError(err)
		}
	}
}
