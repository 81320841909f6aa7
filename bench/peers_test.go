package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/fastgate/fastgate/config"
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

func TestProxyConfigs(t *testing.T) {
	tests := []struct {
		name    string
		render  func(peerConfig) string
		access  bool
		want    []string
		notWant []string
	}{
		{name: "nginx access on", render: nginxConfig, access: true, want: []string{
			"worker_processes 2;", "listen 127.0.0.1:18080;", "server 127.0.0.1:19001 weight=1",
			"server 127.0.0.1:19002 weight=3", "keepalive 64;", "proxy_http_version 1.1;",
			`proxy_set_header Connection "";`, "access.log combined buffer=256k flush=100ms;", "keepalive_requests 1000000;",
		}, notWant: []string{"access_log off"}},
		{name: "nginx access off", render: nginxConfig, want: []string{"access_log off;"}},
		{name: "haproxy access on", render: haproxyConfig, access: true, want: []string{
			"nbthread 2", "bind 127.0.0.1:18080", "server b1 127.0.0.1:19001 weight 1",
			"server b2 127.0.0.1:19002 weight 3", "http-reuse always", "option http-keep-alive",
			"log stdout format raw", "option httplog", "balance roundrobin",
		}, notWant: []string{"no log"}},
		{name: "haproxy access off", render: haproxyConfig, want: []string{"no log"}, notWant: []string{"log stdout", "option httplog"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.render(testPeerConfig(t, tt.access))
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
	for _, tt := range tests {
		for _, access := range []bool{true, false} {
			t.Run(tt.name+map[bool]string{true: " access on", false: " access off"}[access], func(t *testing.T) {
				bin := findTool("", tt.name)
				if bin == "" {
					t.Skipf("%s not installed (make bench-deps)", tt.name)
				}
				pc := testPeerConfig(t, access)
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
