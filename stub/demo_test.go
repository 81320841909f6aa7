package stub

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestDemo(t *testing.T) {
	s, err := Start(Options{ID: "post-1", Handler: Demo("post-1")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &fasthttp.HostClient{Addr: s.Addr(), DisablePathNormalizing: true}
	get := func(uri string) (int, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(uri)
		req.Header.SetHost("stub")
		if err := c.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), string(resp.Body())
	}
	for _, tc := range []struct{ uri, want string }{
		{"/api/internal/users/42/profile", `"handle":"@user42"`},
		{"/api/internal/users/a%22b/profile", `"user_id":"a%22b"`},
		{"/api/internal/users/42/posts?limit=2", `"next_cursor"`},
		{"/api/internal/feed/42?limit=20", `"posts":[{"id":"p`},
		{"/api/internal/notifications/42/count", `"unread":`},
		{"/api/internal/notifications/42/summary", `"latest":[`},
		{"/api/internal/trending?limit=3", `"topics":[`},
		{"/api/internal/analytics/users/42/summary", `"views":`},
		{"/api/internal/media/users/42/usage", `"quota_bytes":1073741824`},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			code, body := get(tc.uri)
			if code != 200 || !json.Valid([]byte(body)) || !strings.Contains(body, tc.want) || !strings.Contains(body, `"instance":"post-1"`) {
				t.Errorf("%d %s, want valid JSON with %s", code, body, tc.want)
			}
			if _, again := get(tc.uri); again != body && !strings.Contains(tc.uri, "feed") && !strings.Contains(tc.uri, "posts") && !strings.Contains(tc.uri, "trending") {
				t.Errorf("answers differ: %s then %s", body, again)
			}
		})
	}
	// Paths the demo does not know get the default answer.
	for _, uri := range []string{"/api/internal/users/42", "/api/internal/users//profile", "/api/internal/trending/x", "/api/v1/users/1"} {
		if code, body := get(uri); code != 200 || !strings.HasPrefix(body, `{"instance":"post-1","path":`) {
			t.Errorf("%s: %d %s, want the default answer", uri, code, body)
		}
	}
	// A forced status still applies.
	s.SetStatus(503)
	if code, body := get("/api/internal/users/42/profile"); code != 503 || !strings.Contains(body, "@user42") {
		t.Errorf("forced status: %d %s", code, body)
	}
}
