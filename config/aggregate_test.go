package config_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
)

// aggBase is a valid document with two services; tests append aggregates.
const aggBase = `
[[services]]
name = "users"
  [[services.instances]]
  id = "u1"
  addr = "127.0.0.1:1"
[[services]]
name = "posts"
  [[services.instances]]
  id = "p1"
  addr = "127.0.0.1:2"
`

func aggParse(t *testing.T, doc string) (*config.Config, config.Problems) {
	t.Helper()
	c, err := config.Parse([]byte(aggBase + doc))
	if err == nil {
		return c, nil
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want config.Problems: %v", err, err)
	}
	return nil, ps
}

func TestAggregateDefaults(t *testing.T) {
	c, ps := aggParse(t, `
[[aggregates]]
path = "/api/v1/feed"
timeout = "800ms"
  [[aggregates.parts]]
  key = "profile"
  service = "users"
  path = "/u/{user_id}"
  [[aggregates.parts]]
  key = "posts"
  service = "posts"
  path = "/p/{user_id}?limit={query.limit}"
  timeout = "5s"
  [[aggregates.parts]]
  key = "short"
  service = "posts"
  path = "/s"
  timeout = "100ms"
`)
	if ps != nil {
		t.Fatal(ps)
	}
	a := c.Aggregates[0]
	if len(a.Methods) != 1 || a.Methods[0] != "GET" {
		t.Errorf("methods = %v, want [GET]", a.Methods)
	}
	if *a.StatusOnPartial != 200 || a.MaxPartBytes.N != 1<<20 || a.TrustUserHeader {
		t.Errorf("status_on_partial %d, max_part_bytes %d, trust_user_header %v", *a.StatusOnPartial, a.MaxPartBytes.N, a.TrustUserHeader)
	}
	for i, want := range []time.Duration{800 * time.Millisecond, 800 * time.Millisecond, 100 * time.Millisecond} {
		if got := a.Parts[i].Timeout.Duration; got != want {
			t.Errorf("parts[%d].timeout = %s, want %s (default: the aggregate's; capped by it)", i, got, want)
		}
	}

	c, ps = aggParse(t, "[[aggregates]]\npath = \"/x\"\n[[aggregates.parts]]\nkey = \"a\"\nservice = \"users\"\npath = \"/a\"\n")
	if ps != nil {
		t.Fatal(ps)
	}
	if got := c.Aggregates[0].Timeout.Duration; got != config.DefaultAggregateTimeout || c.Aggregates[0].Parts[0].Timeout.Duration != got {
		t.Errorf("default timeout = %s, part %s", got, c.Aggregates[0].Parts[0].Timeout.Duration)
	}
}

func TestAggregateProblems(t *testing.T) {
	part := func(key, service, path string, extra ...string) string {
		return "  [[aggregates.parts]]\n  key = \"" + key + "\"\n  service = \"" + service + "\"\n  path = \"" + path + "\"\n" + strings.Join(extra, "\n") + "\n"
	}
	agg := func(path string, extra ...string) string {
		return "[[aggregates]]\npath = \"" + path + "\"\n" + strings.Join(extra, "\n") + "\n"
	}
	ok := part("a", "users", "/a")
	tests := []struct {
		name, doc, key, msg string
	}{
		{"path required", agg("") + ok, "aggregates[0].path", "required"},
		{"path relative", agg("api") + ok, "aggregates[0].path", "must start with /"},
		{"path query", agg("/a?b") + ok, "aggregates[0].path", "plain path"},
		{"path trailing slash", agg("/a/") + ok, "aggregates[0].path", "must not end with /"},
		{"path dot segment", agg("/a/../b") + ok, "aggregates[0].path", "dot segment"},
		{"path unbalanced", agg("/a/{id") + ok, "aggregates[0].path", "unbalanced {"},
		{"path bad param", agg("/a/{1x}") + ok, "aggregates[0].path", "bad param name"},
		{"path user_id param", agg("/a/{user_id}") + ok, "aggregates[0].path", "reserved"},
		{"path duplicate param", agg("/a/{id}/{id}") + ok, "aggregates[0].path", "duplicate param"},
		{"duplicate path", agg("/a") + ok + agg("/a") + ok, "aggregates[1].path", "conflicts with aggregates[0].path"},
		{"conflicting params", agg("/a/{id}") + ok + agg("/a/{x:[0-9]{2}}") + ok, "aggregates[1].path", "conflicts"},
		{"health path", agg("/health") + ok, "aggregates[0].path", "health or metrics"},
		{"method", agg("/a", `methods = ["get"]`) + ok, "aggregates[0].methods[0]", "bad method"},
		{"timeout", agg("/a", `timeout = "0s"`) + ok, "aggregates[0].timeout", "must be positive"},
		{"timeout syntax", agg("/a", `timeout = "soon"`) + ok, "aggregates[0].timeout", "bad duration"},
		{"status 404", agg("/a", `status_on_partial = 404`) + ok, "aggregates[0].status_on_partial", "got 404"},
		{"status 204", agg("/a", `status_on_partial = 204`) + ok, "aggregates[0].status_on_partial", "got 204"},
		{"status 500", agg("/a", `status_on_partial = 500`) + ok, "aggregates[0].status_on_partial", "got 500"},
		{"max part bytes", agg("/a", `max_part_bytes = "1XB"`) + ok, "aggregates[0].max_part_bytes", "bad size"},
		{"no parts", agg("/a"), "aggregates[0].parts", "at least one part"},
		{"cache with a trusted user header", agg("/a", "trust_user_header = true", `cache_ttl = "0s"`) + ok, "aggregates[0].cache_ttl", "cannot be cached"},
		{"key required", agg("/a") + part("", "users", "/a"), "aggregates[0].parts[0].key", "required"},
		{"key quote", agg("/a") + part(`a\"b`, "users", "/a"), "aggregates[0].parts[0].key", "bad key"},
		{"key digit", agg("/a") + part("1a", "users", "/a"), "aggregates[0].parts[0].key", "bad key"},
		{"key duplicate", agg("/a") + ok + ok, "aggregates[0].parts[1].key", `duplicate part key "a"`},
		{"service required", agg("/a") + part("a", "", "/a"), "aggregates[0].parts[0].service", "required"},
		{"service unknown", agg("/a") + ok + part("b", "nope", "/b"), "aggregates[0].parts[1].service", `unknown service "nope"`},
		{"part path relative", agg("/a") + part("a", "users", "a"), "aggregates[0].parts[0].path", "must start with /"},
		{"part path unknown param", agg("/a/{id}") + part("a", "users", "/u/{uid}"), "aggregates[0].parts[0].path", "{uid} is not a param"},
		{"part path bad query name", agg("/a") + part("a", "users", "/u?x={query.}"), "aggregates[0].parts[0].path", "bad query param name"},
		{"part path unclosed", agg("/a") + part("a", "users", "/u/{user_id"), "aggregates[0].parts[0].path", "unclosed {"},
		{"part path space", agg("/a") + part("a", "users", "/u /v"), "aggregates[0].parts[0].path", "no #"},
		{"part timeout", agg("/a") + part("a", "users", "/a", `  timeout = "-1s"`), "aggregates[0].parts[0].timeout", "must be positive"},
		{"forward header name", agg("/a") + part("a", "users", "/a", `  forward_headers = ["Bad Header"]`), "aggregates[0].parts[0].forward_headers[0]", "bad header name"},
		{"forward reserved", agg("/a") + part("a", "users", "/a", `  forward_headers = ["Accept-Language", "x-request-id"]`), "aggregates[0].parts[0].forward_headers[1]", "set by the gateway"},
		{"forward user id", agg("/a") + part("a", "users", "/a", `  forward_headers = ["X-User-ID"]`), "aggregates[0].parts[0].forward_headers[0]", "may not be forwarded"},
		{"unknown key", agg("/a", `colour = "blue"`) + ok, "aggregates[0].colour", "unknown key"},
		{"unknown part key", agg("/a") + part("a", "users", "/a", `  colour = "blue"`), "aggregates[0].parts[0].colour", "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := aggParse(t, tc.doc)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ps), ps)
			}
			if p := ps[0]; p.Key != tc.key || !strings.Contains(p.Msg, tc.msg) || p.Line == 0 {
				t.Errorf("problem = %v, want line >0: %s: ...%s...", p, tc.key, tc.msg)
			}
		})
	}
}

func TestAggregateValidPaths(t *testing.T) {
	for _, tc := range []struct{ path, part string }{
		{"/api/v1/dashboard/{id}", "/d/{id}/x?u={user_id}&l={query.limit}"},
		{"/a/{id:[0-9]{1,3}}", "/d/{id}"},
		{"/a/{opt?}", "/d/{opt}"},
		{"/a/{rest:*}", "/d/{rest}"},
		{"/", "/d?q={query.q-x.y}"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			doc := "[[aggregates]]\npath = \"" + tc.path + "\"\n[[aggregates.parts]]\nkey = \"k\"\nservice = \"users\"\npath = \"" + tc.part + "\"\n"
			if _, ps := aggParse(t, doc); ps != nil {
				t.Error(ps)
			}
		})
	}
}

func TestDemoAggregates(t *testing.T) {
	data, err := os.ReadFile("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseDir(data, "..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"/api/v1/feed":      {"profile", "posts", "notifications", "trending"},
		"/api/v1/dashboard": {"profile", "stats", "recent_posts", "notifications", "storage"},
	}
	if len(c.Aggregates) != len(want) {
		t.Fatalf("%d aggregates, want %d", len(c.Aggregates), len(want))
	}
	for _, a := range c.Aggregates {
		var keys []string
		for _, p := range a.Parts {
			keys = append(keys, p.Key)
		}
		if strings.Join(keys, ",") != strings.Join(want[a.Path], ",") {
			t.Errorf("%s parts = %v, want %v", a.Path, keys, want[a.Path])
		}
	}
}
