package aggregate

import (
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
)

// TestDemoConfig serves the demo config's aggregates against stubs with the
// demo handler: every part path must be one the demo answers.
func TestDemoConfig(t *testing.T) {
	cfg, err := config.Load("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Aggregates) == 0 {
		t.Fatal("the demo config has no aggregates")
	}
	u := upstreams{}
	t.Cleanup(u.close)
	for _, svc := range cfg.Services {
		s, err := stub.Start(stub.Options{ID: svc.Instances[0].ID, Handler: stub.Demo(svc.Instances[0].ID)})
		if err != nil {
			t.Fatal(err)
		}
		u[svc.Name] = s
	}
	resolve := u.resolver(t)
	for i := range cfg.Aggregates {
		spec := SpecOf(&cfg.Aggregates[i])
		t.Run(spec.Name, func(t *testing.T) {
			// The feed takes the user from the JWT (auth = "jwt"), the
			// dashboard from a trusted X-User-ID header.
			jwt := cfg.Aggregates[i].Auth == "jwt"
			if spec.Timeout != 2*time.Second || spec.TrustUserHeader == jwt || spec.MaxPartBytes != 1<<20 || spec.StatusOnPartial != 200 {
				t.Errorf("spec %+v", spec)
			}
			e := mustNew(t, spec, resolve, nil)
			ctx := newCtx(spec.Name, "X-User-ID", "42")
			if jwt {
				ctx.Request.Header.Del("X-User-ID")
				ctx.SetUserValue(UserID, "42")
			}
			sum := e.Handle(ctx)
			doc := decode(t, &ctx.Response)
			if sum.Status != 200 || doc.Status != "success" || doc.Meta.ServicesSucceeded != len(spec.Parts) {
				t.Fatalf("summary %+v answer %s", sum, ctx.Response.Body())
			}
			for _, p := range spec.Parts {
				if raw := doc.Data[p.Key]; len(raw) < 20 || raw[0] != '{' {
					t.Errorf("data.%s = %s", p.Key, raw)
				}
			}
		})
	}
}
