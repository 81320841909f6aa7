package proxy

import (
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/valyala/fasthttp"
)

func testCORS(credentials bool, origins ...string) *corsPolicy {
	return newCORSPolicy(&config.CORS{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{"GET", "POST", "PUT", "DELETE"},
		AllowedHeaders:   []string{"Authorization", "Content-Type"},
		ExposedHeaders:   []string{"X-Request-ID"},
		AllowCredentials: credentials,
		MaxAge:           config.Duration{Duration: 10 * time.Minute},
	})
}

func TestCORSAllowOrigin(t *testing.T) {
	p := testCORS(true, "https://app.example.com", "https://*.example.com", "http://localhost:3000")
	for origin, want := range map[string]bool{
		"https://app.example.com":    true,
		"HTTPS://APP.EXAMPLE.COM":    true,
		"https://a.example.com":      true,
		"https://a.b.example.com":    true,
		"http://localhost:3000":      true,
		"https://example.com":        false, // the wildcard needs a subdomain
		"http://a.example.com":       false, // scheme matters
		"https://evilexample.com":    false,
		"https://a.example.com.evil": false,
		"https://x@a.example.com":    false,
		"http://localhost:3001":      false,
		"null":                       false,
		"":                           false,
	} {
		if got := p.allowOrigin([]byte(origin)); got != want {
			t.Errorf("allowOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
	if !testCORS(false, "*").allowOrigin([]byte("https://anything.test")) {
		t.Error(`"*" does not allow every origin`)
	}
}

func TestCORSPreflight(t *testing.T) {
	tests := []struct {
		name        string
		credentials bool
		origins     []string
		headers     map[string]string
		want        map[string]string // "" = must be absent
	}{
		{"allowed", true, []string{"https://app.example.com"},
			map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, content-type"},
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE", "Access-Control-Allow-Headers": "Authorization, Content-Type",
				"Access-Control-Max-Age": "600", "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"origin not allowed", true, []string{"https://app.example.com"},
			map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
			map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "", "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}},
		{"method not allowed", true, []string{"https://app.example.com"},
			map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PATCH"},
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"header not allowed", true, []string{"https://app.example.com"},
			map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X-Secret"},
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"star without credentials", false, []string{"*"},
			map[string]string{"Origin": "https://x.test", "Access-Control-Request-Method": "GET"},
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testCORS(tt.credentials, tt.origins...)
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("OPTIONS")
			for k, v := range tt.headers {
				ctx.Request.Header.Set(k, v)
			}
			if !isPreflight(&ctx.Request) {
				t.Fatal("not recognized as a preflight")
			}
			p.preflight(&ctx)
			if ctx.Response.StatusCode() != fasthttp.StatusNoContent {
				t.Fatalf("status %d, want 204", ctx.Response.StatusCode())
			}
			for k, want := range tt.want {
				if got := string(ctx.Response.Header.Peek(k)); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestCORSPreflightAnyHeaderAndSafelisted: allowed_headers = ["*"] allows
// any asked header and answers the asked list; GET, HEAD and POST are
// allowed whatever allowed_methods lists, as browsers allow them (Fetch).
func TestCORSPreflightAnyHeaderAndSafelisted(t *testing.T) {
	p := newCORSPolicy(&config.CORS{
		AllowedOrigins: []string{"https://app.example.com"},
		AllowedMethods: []string{"PUT"},
		AllowedHeaders: []string{"*"},
		MaxAge:         config.Duration{Duration: time.Minute},
	})
	tests := []struct {
		name, method, asked string
		wantACAO, wantACAH  string
	}{
		{"any header", "PUT", "X-Custom, Authorization", "https://app.example.com", "X-Custom, Authorization"},
		{"no header asked", "PUT", "", "https://app.example.com", "*"},
		{"safelisted GET", "GET", "X-Custom", "https://app.example.com", "X-Custom"},
		{"safelisted POST", "POST", "", "https://app.example.com", "*"},
		{"method not allowed", "PATCH", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod("OPTIONS")
			ctx.Request.Header.Set("Origin", "https://app.example.com")
			ctx.Request.Header.Set("Access-Control-Request-Method", tt.method)
			if tt.asked != "" {
				ctx.Request.Header.Set("Access-Control-Request-Headers", tt.asked)
			}
			p.preflight(&ctx)
			if got := string(ctx.Response.Header.Peek("Access-Control-Allow-Origin")); got != tt.wantACAO {
				t.Errorf("ACAO %q, want %q", got, tt.wantACAO)
			}
			if got := string(ctx.Response.Header.Peek("Access-Control-Allow-Headers")); got != tt.wantACAH {
				t.Errorf("ACAH %q, want %q", got, tt.wantACAH)
			}
		})
	}
}

func TestCORSDecorate(t *testing.T) {
	p := testCORS(true, "https://app.example.com")
	tests := []struct {
		name, origin, vary, wantACAO, wantVary string
	}{
		{"allowed", "https://app.example.com", "", "https://app.example.com", "Origin"},
		{"not allowed", "https://evil.test", "", "", "Origin"},
		{"no origin", "", "", "", "Origin"},
		{"keeps upstream Vary", "https://app.example.com", "Accept-Encoding", "https://app.example.com", "Accept-Encoding, Origin"},
		{"no duplicate Vary", "https://app.example.com", "origin", "https://app.example.com", "origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			if tt.origin != "" {
				ctx.Request.Header.Set("Origin", tt.origin)
			}
			if tt.vary != "" {
				ctx.Response.Header.Set("Vary", tt.vary)
			}
			p.decorate(&ctx)
			if got := string(ctx.Response.Header.Peek("Access-Control-Allow-Origin")); got != tt.wantACAO {
				t.Errorf("ACAO %q, want %q", got, tt.wantACAO)
			}
			if got := string(ctx.Response.Header.Peek("Vary")); got != tt.wantVary {
				t.Errorf("Vary %q, want %q", got, tt.wantVary)
			}
			if tt.wantACAO != "" && string(ctx.Response.Header.Peek("Access-Control-Expose-Headers")) != "X-Request-ID" {
				t.Error("Expose-Headers missing")
			}
		})
	}
}
