package cache

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestStorePolicy(t *testing.T) {
	const maxAge = "max-age=60"
	tests := []struct {
		name     string
		method   string
		reqHdrs  []string
		status   int
		respHdrs []string
		routeTTL time.Duration
		want     error
	}{
		{"max-age", "GET", nil, 200, []string{"Cache-Control", maxAge}, 0, nil},
		{"route TTL only", "GET", nil, 200, nil, time.Minute, nil},
		{"no lifetime", "GET", nil, 200, nil, 0, errNoTTL},
		{"404 cached", "GET", nil, 404, []string{"Cache-Control", maxAge}, 0, nil},
		{"500 not", "GET", nil, 500, []string{"Cache-Control", maxAge}, time.Minute, errStatus},
		{"206 not", "GET", nil, 206, []string{"Cache-Control", maxAge}, time.Minute, errStatus},
		{"302 not", "GET", nil, 302, []string{"Cache-Control", maxAge}, time.Minute, errStatus},
		{"HEAD", "HEAD", nil, 200, []string{"Cache-Control", maxAge}, time.Minute, errMethod},
		{"POST", "POST", nil, 200, []string{"Cache-Control", maxAge}, time.Minute, errMethod},
		{"no-store", "GET", nil, 200, []string{"Cache-Control", "no-store"}, time.Minute, errNoStore},
		{"No-Store any case, second field", "GET", nil, 200, []string{"Cache-Control", maxAge, "Cache-Control", "No-Store"}, 0, errNoStore},
		{"private", "GET", nil, 200, []string{"Cache-Control", "private, max-age=60"}, time.Minute, errPrivate},
		{"private qualified", "GET", nil, 200, []string{"Cache-Control", `private="X-User", max-age=60`}, 0, errPrivate},
		{"no-cache", "GET", nil, 200, []string{"Cache-Control", "no-cache"}, time.Minute, errNoCache},
		{"max-age=0 beats route TTL", "GET", nil, 200, []string{"Cache-Control", "max-age=0"}, time.Minute, errStale},
		{"bad max-age is stale", "GET", nil, 200, []string{"Cache-Control", "max-age=soon"}, 0, errStale},
		{"past Expires", "GET", nil, 200, []string{"Expires", "Thu, 01 Jan 1970 00:00:00 GMT"}, time.Minute, errStale},
		{"bad Expires", "GET", nil, 200, []string{"Expires", "0"}, time.Minute, errStale},
		{"Expires - Date", "GET", nil, 200, []string{"Date", "Mon, 02 Jan 2006 15:04:05 GMT", "Expires", "Mon, 02 Jan 2006 15:05:05 GMT"}, 0, nil},
		{"Age beyond max-age", "GET", nil, 200, []string{"Cache-Control", maxAge, "Age", "61"}, 0, errNoTTL},
		// Age * 1s past int64 nanoseconds must not wrap into a negative age.
		{"Age overflowing", "GET", nil, 200, []string{"Cache-Control", maxAge, "Age", "18415244073"}, 0, errNoTTL},
		{"Age past an integer", "GET", nil, 200, []string{"Cache-Control", maxAge, "Age", "99999999999999999999"}, 0, errNoTTL},
		{"Set-Cookie", "GET", nil, 200, []string{"Cache-Control", "public, max-age=60", "Set-Cookie", "sid=1"}, time.Minute, errSetCookie},
		{"Authorization", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", maxAge}, time.Minute, errAuthorization},
		{"Authorization, public", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "public, max-age=60"}, 0, nil},
		{"Authorization, s-maxage", "GET", []string{"Authorization", "Bearer x"}, 200, []string{"Cache-Control", "s-maxage=60"}, 0, nil},
		{"partial aggregate", "GET", nil, 200, []string{"Cache-Control", maxAge, "X-Aggregate-Complete", "false"}, time.Minute, errPartial},
		{"complete aggregate", "GET", nil, 200, []string{"Cache-Control", maxAge, "X-Aggregate-Complete", "true"}, 0, nil},
		{"request no-store", "GET", []string{"Cache-Control", "no-store"}, 200, []string{"Cache-Control", maxAge}, 0, errRequestNoStore},
		{"request no-cache still stores", "GET", []string{"Cache-Control", "no-cache"}, 200, []string{"Cache-Control", maxAge}, 0, nil},
		{"Vary star", "GET", nil, 200, []string{"Cache-Control", maxAge, "Vary", "*"}, 0, errVaryStar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(1<<20, Options{})
			req := newReq(tt.method, "h", tt.reqHdrs...)
			resp := newResp(tt.status, "body", tt.respHdrs...)
			if err := c.store(req, []byte("/p"), nil, resp, tt.routeTTL); err != tt.want {
				t.Fatalf("store: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	tests := []struct {
		name       string
		hdrs       []string
		routeTTL   time.Duration
		defaultTTL time.Duration
		ttl        time.Duration
		shared     bool
	}{
		{"max-age", []string{"Cache-Control", "max-age=60"}, 0, 0, time.Minute, false},
		{"quoted", []string{"Cache-Control", `max-age="60"`}, 0, 0, time.Minute, false},
		{"s-maxage wins", []string{"Cache-Control", "max-age=600, s-maxage=60"}, 0, 0, time.Minute, true},
		{"s-maxage over Expires", []string{"Cache-Control", "s-maxage=60", "Expires", "Thu, 01 Jan 1970 00:00:00 GMT"}, 0, 0, time.Minute, true},
		{"public", []string{"Cache-Control", "PUBLIC, max-age=60"}, 0, 0, time.Minute, true},
		{"Age subtracted", []string{"Cache-Control", "max-age=60", "Age", "20"}, 0, 0, 40 * time.Second, false},
		{"route overrides longer", []string{"Cache-Control", "max-age=3600"}, 30 * time.Second, 0, 30 * time.Second, false},
		{"route overrides shorter", []string{"Cache-Control", "max-age=10"}, 30 * time.Second, 0, 30 * time.Second, false},
		{"default fills in", nil, 0, 5 * time.Second, 5 * time.Second, false},
		{"default loses to max-age", []string{"Cache-Control", "max-age=60"}, 0, 5 * time.Second, time.Minute, false},
		{"Expires - Date", []string{"Date", "Mon, 02 Jan 2006 15:04:05 GMT", "Expires", "Mon, 02 Jan 2006 15:05:05 GMT"}, 0, 0, time.Minute, false},
		{"Expires without Date", []string{"Expires", "Mon, 02 Jan 2006 15:05:05 GMT"}, 0, 0, time.Minute, false},
		{"huge max-age capped", []string{"Cache-Control", "max-age=99999999999999999999"}, 0, 0, maxDeltaSeconds * time.Second, false},
	}
	now := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC) // Expires is measured from the clock without a Date
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := judge(newReq("GET", "h"), newResp(200, "", tt.hdrs...), tt.routeTTL, tt.defaultTTL, now)
			if err != nil {
				t.Fatal(err)
			}
			if v.ttl != tt.ttl || v.shared != tt.shared {
				t.Fatalf("ttl %v shared %v, want %v %v", v.ttl, v.shared, tt.ttl, tt.shared)
			}
		})
	}
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		in   string
		want directives
	}{
		{"", directives{maxAge: -1, sMaxAge: -1}},
		{"max-age=5", directives{maxAge: 5, sMaxAge: -1}},
		{" public ,  s-maxage = 7 ,no-transform", directives{public: true, maxAge: -1, sMaxAge: 7}},
		{`no-cache="Set-Cookie", private`, directives{noCache: true, private: true, maxAge: -1, sMaxAge: -1}},
		{"NO-STORE,,", directives{noStore: true, maxAge: -1, sMaxAge: -1}},
		{"max-age=-1", directives{maxAge: 0, sMaxAge: -1}},
		{"max-agex=5, xmax-age=5", directives{maxAge: -1, sMaxAge: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d := directives{maxAge: -1, sMaxAge: -1}
			parseCacheControl(&d, []byte(tt.in))
			if d != tt.want {
				t.Fatalf("%+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"accept-encoding": "Accept-Encoding",
		"ACCEPT":          "Accept",
		"x-api-KEY":       "X-Api-Key",
	} {
		if got := string(canonicalName([]byte(in))); got != want {
			t.Errorf("canonicalName(%q) = %q, want %q", in, got, want)
		}
	}
	// fasthttp agrees, so PeekBytes finds what Vary names.
	var h fasthttp.RequestHeader
	h.Set("x-api-KEY", "1")
	if string(h.PeekBytes(canonicalName([]byte("X-API-key")))) != "1" {
		t.Error("fasthttp does not find the canonical name")
	}
}
