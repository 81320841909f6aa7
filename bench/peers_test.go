package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
	"github.com/valyala/fasthttp"
)

func testPeerConfig(t *testing.T, access bool) peerConfig {
	return peerConfig{
		Listen: "127.0.0.1:18080",
		Dir:    t.TempDir(),
		Upstreams: []upstream{
			{ID: "b1", Addr: "127.0.0.1:19001", Weight: 1},
			{ID: "b2", Addr: "127.0.0.1:19002", Weight: 3},
		},
		AccessLog: access,
	}
}

// TestGatewayConfig feeds the generated TOML to the gateway's own parser.
func TestGatewayConfig(t *testing.T) {
	for _, access := range []bool{true, false} {
		t.Run(map[bool]string{true: "access on", false: "access off"}[access], func(t *testing.T) {
			pc := testPeerConfig(t, access)
			c, err := config.Parse([]byte(gatewayConfig(pc)))
			if err != nil {
				t.Fatalf("gateway rejects generated config: %v\n%s", err, gatewayConfig(pc))
			}
			if c.Server.Listen != pc.Listen {
				t.Errorf("listen = %q", c.Server.Listen)
			}
			if c.Log.Access == nil || *c.Log.Access != access {
				t.Errorf("access = %v, want %v", c.Log.Access, access)
			}
			if len(c.Services) != 1 || len(c.Services[0].Instances) != 2 {
				t.Fatalf("services = %+v", c.Services)
			}
			for i, in := range c.Services[0].Instances {
				u := pc.Upstreams[i]
				if in.Addr != u.Addr || in.Weight == nil || *in.Weight != u.Weight {
					t.Errorf("instance %d = %+v, want %+v", i, in, u)
				}
			}
		})
	}
}

// featurePeerConfig is testPeerConfig with a scenario feature switched on;
// for featureJWT it writes real key material into the config's dir.
func featurePeerConfig(t *testing.T, f feature) peerConfig {
	t.Helper()
	pc := testPeerConfig(t, true)
	pc.Feature = f
	if f == featureJWT {
		root, err := moduleRoot(".")
		if err != nil {
			t.Fatal(err)
		}
		keys, _, err := prepareJWT(filepath.Join(root, "keys"), pc.Dir)
		if err != nil {
			t.Fatal(err)
		}
		pc.JWT = keys
	}
	return pc
}

// TestGatewayFeatureConfigs feeds each scenario feature's generated TOML
// to the gateway's own parser and checks the feature is switched on.
func TestGatewayFeatureConfigs(t *testing.T) {
	tests := []struct {
		name  string
		f     feature
		check func(t *testing.T, c *config.Config)
	}{
		{name: "aggregate", f: featureAggregate, check: func(t *testing.T, c *config.Config) {
			if len(c.Aggregates) != 1 || c.Aggregates[0].Path != aggregatePath || len(c.Aggregates[0].Parts) != aggregateParts {
				t.Fatalf("aggregates = %+v", c.Aggregates)
			}
			seen := map[string]bool{}
			for _, p := range c.Aggregates[0].Parts {
				if p.Service != "bench" || seen[p.Path] {
					t.Fatalf("part %+v (paths must be distinct)", p)
				}
				seen[p.Path] = true
			}
			if len(c.Routes) != 1 || c.Routes[0].Prefix != "/" {
				t.Fatalf("the single proxied call needs route /: %+v", c.Routes)
			}
		}},
		{name: "cache", f: featureCache, check: func(t *testing.T, c *config.Config) {
			if c.Cache == nil || c.Routes[0].CacheTTL.Duration != cacheTTL {
				t.Fatalf("cache = %+v, route = %+v", c.Cache, c.Routes[0])
			}
		}},
		{name: "jwt", f: featureJWT, check: func(t *testing.T, c *config.Config) {
			if c.Routes[0].Auth != "jwt" || c.Auth.JWT == nil || !filepath.IsAbs(c.Auth.JWT.JWKSFile) ||
				strings.Join(c.Auth.JWT.Algorithms, ",") != "ES256" {
				t.Fatalf("route = %+v, jwt = %+v", c.Routes[0], c.Auth.JWT)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := featurePeerConfig(t, tt.f)
			c, err := config.Parse([]byte(gatewayConfig(pc)))
			if err != nil {
				t.Fatalf("gateway rejects generated config: %v\n%s", err, gatewayConfig(pc))
			}
			tt.check(t, c)
		})
	}
}

// TestPrepareJWT checks the minted token passes the gateway's own verifier
// built from the generated config, and that the public key written for
// HAProxy is a PEM public key.
func TestPrepareJWT(t *testing.T) {
	pc := featurePeerConfig(t, featureJWT)
	c, err := config.Parse([]byte(gatewayConfig(pc)))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := moduleRoot(".")
	_, tok, err := prepareJWT(filepath.Join(root, "keys"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(c.Auth.JWT, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify([]byte("Bearer " + tok))
	if err != nil || claims.Subject != jwtSubject {
		t.Fatalf("claims %+v, err %v", claims, err)
	}
	b, err := os.ReadFile(pc.JWT.PublicKeyFile)
	if err != nil || !strings.HasPrefix(string(b), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public key file: %v\n%s", err, b)
	}
	if _, _, err := prepareJWT("", t.TempDir()); err == nil {
		t.Fatal("no keys dir: no error")
	}
}

func TestProxyConfigs(t *testing.T) {
	tests := []struct {
		name    string
		render  func(peerConfig) string
		access  bool
		f       feature
		want    []string
		notWant []string
	}{
		{name: "nginx access on", render: nginxConfig, access: true, want: []string{
			"worker_processes 2;", "listen 127.0.0.1:18080;", "server 127.0.0.1:19001 weight=1",
			"server 127.0.0.1:19002 weight=3", "keepalive 1024;", "proxy_http_version 1.1;",
			`proxy_set_header Connection "";`, "access.log gateway buffer=256k flush=100ms;", "keepalive_requests 1000000;",
			"proxy_set_header X-Forwarded-For $remote_addr;", "proxy_set_header X-Request-ID $fastgate_request_id;",
			"add_header X-Request-ID $fastgate_request_id always;", "log_format gateway",
		}, notWant: []string{"access_log off"}},
		{name: "nginx access off", render: nginxConfig, want: []string{"access_log off;"}},
		{name: "haproxy access on", render: haproxyConfig, access: true, want: []string{
			"nbthread 2", "bind 127.0.0.1:18080", "server b1 127.0.0.1:19001 weight 1",
			"server b2 127.0.0.1:19002 weight 3", "http-reuse always", "option http-keep-alive",
			"log stdout format raw", "option httplog", "balance roundrobin",
			"http-request set-header X-Forwarded-For %[src]", "http-request set-header X-Request-ID %[var(txn.rid)]",
			"http-response set-header X-Request-ID %[var(txn.rid)]", "http-request capture var(txn.rid) len 128",
		}, notWant: []string{"no log"}},
		{name: "haproxy access off", render: haproxyConfig, want: []string{"no log"}, notWant: []string{"log stdout", "option httplog"}},
		{name: "nginx plain has no cache", render: nginxConfig, notWant: []string{"proxy_cache"}},
		{name: "haproxy plain has no cache or jwt", render: haproxyConfig, notWant: []string{"cache", "jwt"}},
		{name: "nginx cache", render: nginxConfig, f: featureCache, want: []string{
			"proxy_cache_path ", "keys_zone=bench:", "proxy_cache bench;", "proxy_cache_valid 200 60s;", "proxy_cache_lock on;",
		}},
		{name: "haproxy cache", render: haproxyConfig, f: featureCache, want: []string{
			"cache bench\n    total-max-size 64\n    max-age 60\n", "http-request cache-use bench",
			"http-response set-header Cache-Control \"max-age=60\" unless { res.hdr(cache-control) -m found }\n    http-response cache-store bench",
		}},
		{name: "haproxy jwt", render: haproxyConfig, f: featureJWT, want: []string{
			"http_auth_bearer", "-m str ES256", "jwt_verify(txn.jwt_alg,", ".pub.pem\") -m int 1",
			"jwt_payload_query('$.iss') -m str https://auth.fastgate.local", "jwt_payload_query('$.aud[0]') -m str api",
			"jwt_payload_query('$.exp','int'),sub(txn.now) -m int lt 0", "set-header X-User-ID",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := testPeerConfig(t, tt.access)
			if tt.f != featureProxy {
				pc = featurePeerConfig(t, tt.f)
			}
			got := tt.render(pc)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("config lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("config has %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestProxyConfigsValidate asks nginx and haproxy themselves to check the
// generated configs, when they are installed.
func TestProxyConfigsValidate(t *testing.T) {
	tests := []struct {
		name string
		peer func(string) peer
		args func(conf string, pc peerConfig) []string
	}{
		{name: "nginx", peer: nginxPeer, args: func(conf string, pc peerConfig) []string {
			return []string{"-t", "-p", pc.Dir, "-c", conf, "-g", "daemon off;"}
		}},
		{name: "haproxy", peer: haproxyPeer, args: func(conf string, _ peerConfig) []string {
			return []string{"-c", "-f", conf}
		}},
	}
	type variant struct {
		name   string
		access bool
		f      feature
	}
	variants := []variant{{"access on", true, featureProxy}, {"access off", false, featureProxy},
		{"cache", true, featureCache}, {"jwt", true, featureJWT}}
	for _, tt := range tests {
		for _, vt := range variants {
			if tt.name == "nginx" && vt.f == featureJWT {
				continue // skipped in the suite: no JWT verification in nginx
			}
			t.Run(tt.name+" "+vt.name, func(t *testing.T) {
				bin := findTool("", tt.name)
				if bin == "" {
					t.Skipf("%s not installed (make bench-deps)", tt.name)
				}
				pc := testPeerConfig(t, vt.access)
				if vt.f != featureProxy {
					pc = featurePeerConfig(t, vt.f)
				}
				conf, err := tt.peer(bin).WriteConfig(pc)
				if err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(bin, tt.args(conf, pc)...).CombinedOutput(); err != nil {
					t.Fatalf("%s rejects the generated config: %v\n%s", tt.name, err, out)
				}
			})
		}
	}
}

func TestPeerArgs(t *testing.T) {
	pc := peerConfig{Dir: "/tmp/x"}
	tests := []struct {
		name string
		p    peer
		want string
	}{
		{name: "gateway", p: gatewayPeer("fg"), want: "-config c"},
		{name: "gateway pprof", p: gatewayPeer("fg", "-pprof", "127.0.0.1:1"), want: "-config c -pprof 127.0.0.1:1"},
		{name: "nginx", p: nginxPeer("ng"), want: "-p /tmp/x -c c -g daemon off;"},
		{name: "haproxy", p: haproxyPeer("hp"), want: "-f c -db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.p.Args(pc, "c"), " "); got != tt.want {
				t.Fatalf("args = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPeerFeaturesLive starts nginx and haproxy (when installed) with the
// cache and jwt configs in front of an in-process stub, and checks they do
// what the scenarios claim: repeated GETs of one URL reach the stub once,
// and the minted token is let in while a missing or altered one gets 401.
func TestPeerFeaturesLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx and haproxy")
	}
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer func(string) peer
		f    feature
	}{
		{nginxPeer, featureCache},
		{haproxyPeer, featureCache},
		{haproxyPeer, featureJWT},
	}
	for _, tt := range tests {
		p := tt.peer("")
		t.Run(p.Name+" "+string(tt.f), func(t *testing.T) {
			p.Bin = findTool("", p.Name)
			if p.Bin == "" {
				t.Skipf("%s not installed (make bench-deps)", p.Name)
			}
			st, err := stub.Start(stub.Options{BodySize: 256})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			s := &suite{peers: map[string]peer{p.Name: p}, missing: map[string]string{}, keysDir: filepath.Join(root, "keys")}
			dir := t.TempDir()
			base := peerConfig{Feature: tt.f}
			var hdrs []header
			if tt.f == featureJWT {
				keys, tok, err := prepareJWT(s.keysDir, dir)
				if err != nil {
					t.Fatal(err)
				}
				base.JWT, hdrs = keys, []header{{"Authorization", "Bearer " + tok}}
			}
			lv, reason := s.start(t.Context(), p.Name, dir, &upstreams{Addrs: []string{st.Addr()}}, base, hdrs...)
			if reason != "" {
				t.Fatal(reason)
			}
			defer lv.proc.Stop(5 * time.Second)
			get := func(path string, hdrs []header) int {
				code, err := getStatus("http://"+lv.addr+path, hdrs)
				if err != nil {
					t.Fatal(err)
				}
				return code
			}
			switch tt.f {
			case featureCache:
				n0 := st.Requests()
				for range 20 {
					if code := get("/cached/item", nil); code != 200 {
						t.Fatalf("status %d", code)
					}
				}
				if n := st.Requests() - n0; n != 1 {
					t.Fatalf("20 GETs of one URL reached the stub %d times, want 1", n)
				}
			case featureJWT:
				bad := []header{{"Authorization", hdrs[0].Value[:len(hdrs[0].Value)-4] + "AAAA"}}
				if ok, none, altered := get("/", hdrs), get("/", nil), get("/", bad); ok != 200 || none != 401 || altered != 401 {
					t.Fatalf("token %d, none %d, altered signature %d; want 200, 401, 401", ok, none, altered)
				}
			}
		})
	}
}

// TestPeersForwardLikeTheGateway starts the gateway, nginx and haproxy
// with their generated configs in front of a recording stub and checks
// that each sends the upstream the same forwarded headers and answers
// with the request id it forwarded: a well-formed client id is kept, a
// malformed one replaced.
func TestPeersForwardLikeTheGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway, nginx and haproxy")
	}
	root, err := moduleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "fastgate")
	if err := buildGateway(t.Context(), root, bin); err != nil {
		t.Fatal(err)
	}
	for _, p := range []peer{gatewayPeer(bin), nginxPeer(""), haproxyPeer("")} {
		t.Run(p.Name, func(t *testing.T) {
			if p.Bin == "" {
				if p.Bin = findTool("", p.Name); p.Bin == "" {
					t.Skipf("%s not installed (make bench-deps)", p.Name)
				}
			}
			st, err := stub.Start(stub.Options{BodySize: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			st.Record(true)
			s := &suite{peers: map[string]peer{p.Name: p}, missing: map[string]string{}}
			lv, reason := s.start(t.Context(), p.Name, t.TempDir(), &upstreams{Addrs: []string{st.Addr()}}, peerConfig{AccessLog: true})
			if reason != "" {
				t.Fatal(reason)
			}
			defer lv.proc.Stop(5 * time.Second)
			for _, tc := range []struct {
				clientID string
				keep     bool
			}{{"client-id_1.2", true}, {"bad id", false}, {"", false}} {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI("http://" + lv.addr + "/x")
				req.Header.Set("X-Forwarded-For", "203.0.113.9") // from an untrusted client: replaced
				if tc.clientID != "" {
					req.Header.Set("X-Request-ID", tc.clientID)
				}
				if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
					t.Fatalf("GET: %v, status %d", err, resp.StatusCode())
				}
				answered := string(resp.Header.Peek("X-Request-ID"))
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
				rs := st.Received()
				h := rs[len(rs)-1].Header
				want := map[string]string{
					"X-Forwarded-For":   "127.0.0.1",
					"X-Forwarded-Proto": "http",
					"X-Forwarded-Host":  lv.addr,
					"X-Gateway-Service": "bench",
				}
				for k, v := range want {
					if got := h[k]; len(got) != 1 || got[0] != v {
						t.Errorf("client id %q: upstream %s = %q, want [%q]", tc.clientID, k, got, v)
					}
				}
				ids := h["X-Request-Id"]
				switch {
				case len(ids) != 1 || ids[0] == "":
					t.Errorf("client id %q: upstream X-Request-ID %q, want one", tc.clientID, ids)
				case tc.keep && ids[0] != tc.clientID, !tc.keep && ids[0] == tc.clientID:
					t.Errorf("client id %q: upstream got %q (keep: %v)", tc.clientID, ids[0], tc.keep)
				case answered != ids[0]:
					t.Errorf("client id %q: answered X-Request-ID %q, forwarded %q", tc.clientID, answered, ids[0])
				}
			}
		})
	}
}

// TestWriteConfigFlag: -write-config writes the suite's config of a peer
// for the given listen address and upstreams, and refuses incomplete use.
func TestWriteConfigFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"nginx one worker", []string{"-write-config", "nginx", "-workers", "1", "-listen", "127.0.0.1:18199", "-upstream-addrs", "127.0.0.1:1,127.0.0.1:2"}, exitOK,
			[]string{"worker_processes 1;", "listen 127.0.0.1:18199;", "server 127.0.0.1:1 weight=1", "server 127.0.0.1:2 weight=1", "X-Request-ID"}},
		{"gateway", []string{"-write-config", "gateway", "-upstream-addrs", "127.0.0.1:1"}, exitOK,
			[]string{`listen = "127.0.0.1:18199"`, `addr = "127.0.0.1:1"`, "access = true"}},
		{"unknown peer", []string{"-write-config", "caddy", "-upstream-addrs", "127.0.0.1:1"}, exitError, nil},
		{"no upstreams", []string{"-write-config", "nginx"}, exitError, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var stdout, stderr strings.Builder
			code := run(append(tt.args, "-config-dir", dir), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %s)", code, tt.code, stderr.String())
			}
			if tt.code != exitOK {
				return
			}
			path := strings.TrimSpace(stdout.String())
			if filepath.Dir(path) != dir {
				t.Fatalf("printed %q, want a file in %s", path, dir)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("config lacks %q:\n%s", w, b)
				}
			}
		})
	}
}
