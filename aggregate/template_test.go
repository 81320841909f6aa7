package aggregate

import (
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestParseTemplateErrors(t *testing.T) {
	for _, tc := range []struct {
		path string
		want error
	}{
		{"", ErrBadPath},
		{"relative/{id}", ErrBadPath},
		{"/a/{id", ErrBadPath},
		{"/a/id}", ErrBadPath},
		{"/a/{}", ErrBadPlaceholder},
		{"/a/{query.}", ErrBadPlaceholder},
		{"/a/{a b}", ErrBadPlaceholder},
		{"/a/{x{y}", ErrBadPlaceholder},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if _, err := parseTemplate(tc.path); !errors.Is(err, tc.want) {
				t.Errorf("parseTemplate(%q) = %v, want %v", tc.path, err, tc.want)
			}
		})
	}
}

func TestFillTemplate(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		uri     string         // the client's request target
		params  map[string]any // router params
		user    string
		want    string
		missing string // the placeholder that cannot be filled
	}{
		{name: "literal", path: "/api/internal/trending?limit=10", uri: "/", want: "/api/internal/trending?limit=10"},
		{name: "param", path: "/u/{id}/profile", uri: "/", params: map[string]any{"id": "42"}, want: "/u/42/profile"},
		{name: "param bytes", path: "/u/{id}", uri: "/", params: map[string]any{"id": []byte("7")}, want: "/u/7"},
		{name: "user", path: "/feed/{user_id}?limit=20", uri: "/", user: "u-1", want: "/feed/u-1?limit=20"},
		{name: "query", path: "/p?limit={query.limit}&q={query.q}", uri: "/?q=go+lang&limit=5", want: "/p?limit=5&q=go%20lang"},
		{name: "escaping", path: "/u/{id}", uri: "/", params: map[string]any{"id": "a b/c?d#e%f&g=h"}, want: "/u/a%20b%2Fc%3Fd%23e%25f%26g%3Dh"},
		{name: "unreserved kept", path: "/u/{id}", uri: "/", params: map[string]any{"id": "A-z_0.9~"}, want: "/u/A-z_0.9~"},
		{name: "utf8 and controls", path: "/u/{id}", uri: "/", params: map[string]any{"id": "é\n\x00"}, want: "/u/%C3%A9%0A%00"},
		{name: "dot segment inside value", path: "/u/{id}", uri: "/", params: map[string]any{"id": "../admin"}, want: "/u/..%2Fadmin"},
		{name: "query decoded then escaped", path: "/s?q={query.q}", uri: "/?q=%2F%2e%2e", want: "/s?q=%2F.."},
		// Router params are percent-encoded as in the normalized path:
		// decoded, then escaped once.
		{name: "escaped param", path: "/u/{id}", uri: "/", params: map[string]any{"id": "john%20doe"}, want: "/u/john%20doe"},
		{name: "escaped param bytes", path: "/u/{id}", uri: "/", params: map[string]any{"id": []byte("john%20doe")}, want: "/u/john%20doe"},
		{name: "escaped utf8 param", path: "/u/{id}", uri: "/", params: map[string]any{"id": "caf%C3%A9"}, want: "/u/caf%C3%A9"},
		{name: "escaped percent param", path: "/u/{id}", uri: "/", params: map[string]any{"id": "a%2520b"}, want: "/u/a%2520b"},
		{name: "escaped reserved param", path: "/u/{id}", uri: "/", params: map[string]any{"id": "a%2Fb%3F%23%26"}, want: "/u/a%2Fb%3F%23%26"},
		{name: "raw reserved param", path: "/u/{id}", uri: "/", params: map[string]any{"id": "a+b=c;d@e"}, want: "/u/a%2Bb%3Dc%3Bd%40e"},
		{name: "lower-case escapes", path: "/u/{id}", uri: "/", params: map[string]any{"id": "%c3%a9%7e"}, want: "/u/%C3%A9~"},
		{name: "escaped unreserved", path: "/u/{id}", uri: "/", params: map[string]any{"id": "%41%2D%2e"}, want: "/u/A-."},
		{name: "malformed escapes", path: "/u/{id}", uri: "/", params: map[string]any{"id": "%zz%4%"}, want: "/u/%25zz%254%25"},
		{name: "escaped dots inside value", path: "/u/{id}", uri: "/", params: map[string]any{"id": "%2E%2E%2Fadmin"}, want: "/u/..%2Fadmin"},
		{name: "several", path: "/{a}/{b}/{user_id}?x={query.x}", uri: "/?x=1", params: map[string]any{"a": "1", "b": "2"}, user: "3", want: "/1/2/3?x=1"},

		{name: "missing param", path: "/u/{id}", uri: "/", missing: "{id}"},
		{name: "empty param", path: "/u/{id}", uri: "/", params: map[string]any{"id": ""}, missing: "{id}"},
		{name: "param of another type", path: "/u/{id}", uri: "/", params: map[string]any{"id": 7}, missing: "{id}"},
		{name: "dot", path: "/u/{id}", uri: "/", params: map[string]any{"id": "."}, missing: "{id}"},
		{name: "dot dot", path: "/u/{id}", uri: "/", params: map[string]any{"id": ".."}, missing: "{id}"},
		{name: "escaped dot", path: "/u/{id}", uri: "/", params: map[string]any{"id": "%2E"}, missing: "{id}"},
		{name: "escaped dot dot", path: "/u/{id}", uri: "/", params: map[string]any{"id": "%2e%2E"}, missing: "{id}"},
		{name: "half-escaped dot dot", path: "/u/{id}", uri: "/", params: map[string]any{"id": []byte(".%2E")}, missing: "{id}"},
		{name: "missing query", path: "/p?limit={query.limit}", uri: "/?other=1", missing: "{query.limit}"},
		{name: "empty query", path: "/p?limit={query.limit}", uri: "/?limit=", missing: "{query.limit}"},
		{name: "missing user", path: "/feed/{user_id}", uri: "/", missing: "{user_id}"},
		{name: "first missing wins", path: "/{a}/{b}", uri: "/", params: map[string]any{"b": "2"}, missing: "{a}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := parseTemplate(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(tc.uri)
			for k, v := range tc.params {
				ctx.SetUserValue(k, v)
			}
			var user []byte
			if tc.user != "" {
				user = []byte(tc.user)
			}
			got, bad := tmpl.appendURI(nil, &ctx, user)
			switch {
			case tc.missing != "":
				if bad == nil || bad.text != tc.missing {
					t.Errorf("unfillable = %v, want %s", bad, tc.missing)
				}
			case bad != nil:
				t.Errorf("unfillable %s, want %q", bad.text, tc.want)
			case string(got) != tc.want:
				t.Errorf("uri = %q, want %q", got, tc.want)
			}
		})
	}
}
