package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// upstream is one stub instance every proxy balances over.
type upstream struct {
	ID     string
	Addr   string
	Weight int
}

// peerConfig is what every proxy's generated config expresses the same way:
// listen address, upstreams with weights, upstream keep-alive, access log.
type peerConfig struct {
	// Listen is the proxy's loopback listen address.
	Listen string
	// Upstreams are the stub instances, balanced by weight.
	Upstreams []upstream
	// Dir is the proxy's private temp dir for pid, logs and buffers.
	Dir string
	// AccessLog switches access logging on (to a file in Dir) for every peer.
	AccessLog bool
	// Workers is nginx worker_processes and haproxy nbthread [2].
	Workers int
	// KeepAlive is the idle upstream connections nginx keeps per worker
	// [1024, the gateway's max_conns: with fewer than a scenario's
	// connections, nginx closes and reopens upstream connections under
	// load (at 512 client connections, a third of its requests), which
	// neither the gateway nor HAProxy does].
	KeepAlive int
	// MaxConns caps the gateway's connections per upstream [1024].
	MaxConns int
	// Feature is what the scenario switches on; each peer expresses it its
	// own way (an aggregate only the gateway has) [featureProxy].
	Feature feature
	// JWT is the key material of featureJWT.
	JWT *jwtKeys
}

// peer is a proxy the suite puts between the load generator and the stubs.
// Bin is empty when the program is not installed; the peer is then skipped.
type peer struct {
	Name string
	Bin  string
	// ConfigFile is the config's file name inside peerConfig.Dir.
	ConfigFile string
	// Config renders the peer's config.
	Config func(peerConfig) string
	// Args are the command-line arguments given the config's path.
	Args func(pc peerConfig, conf string) []string
	// ReadyPath answers 200 once the peer serves traffic.
	ReadyPath string
	// LogFile receives the process's stdout and stderr (relative to Dir).
	LogFile string
}

func gatewayPeer(bin string, extraArgs ...string) peer {
	return peer{
		Name:       "gateway",
		Bin:        bin,
		ConfigFile: "fastgate.toml",
		Config:     gatewayConfig,
		Args: func(_ peerConfig, conf string) []string {
			return append([]string{"-config", conf}, extraArgs...)
		},
		ReadyPath: "/health",
		LogFile:   "access.log",
	}
}

func nginxPeer(bin string) peer {
	return peer{
		Name:       "nginx",
		Bin:        bin,
		ConfigFile: "nginx.conf",
		Config:     nginxConfig,
		Args: func(pc peerConfig, conf string) []string {
			return []string{"-p", pc.Dir, "-c", conf, "-g", "daemon off;"}
		},
		ReadyPath: "/",
		LogFile:   "stdout.log",
	}
}

func haproxyPeer(bin string) peer {
	return peer{
		Name:       "haproxy",
		Bin:        bin,
		ConfigFile: "haproxy.cfg",
		Config:     haproxyConfig,
		Args: func(_ peerConfig, conf string) []string {
			return []string{"-f", conf, "-db"}
		},
		ReadyPath: "/",
		LogFile:   "access.log",
	}
}

// at returns pc listening on listen, with its files in dir, the access log
// on or off, and one instance of weight 1 per address (b1, b2, ...).
func (pc peerConfig) at(listen, dir string, accessLog bool, addrs []string) peerConfig {
	pc.Listen, pc.Dir, pc.AccessLog, pc.Upstreams = listen, dir, accessLog, nil
	for i, a := range addrs {
		pc.Upstreams = append(pc.Upstreams, upstream{ID: fmt.Sprintf("b%d", i+1), Addr: a, Weight: 1})
	}
	return pc
}

// peerByName returns the peer called name ("gateway", "nginx" or
// "haproxy"), its binary not looked up.
func peerByName(name string) (peer, bool) {
	switch name {
	case "gateway":
		return gatewayPeer(""), true
	case "nginx":
		return nginxPeer(""), true
	case "haproxy":
		return haproxyPeer(""), true
	}
	return peer{}, false
}

// WriteConfig renders the peer's config into pc.Dir and returns its path.
func (p peer) WriteConfig(pc peerConfig) (string, error) {
	path := filepath.Join(pc.Dir, p.ConfigFile)
	return path, os.WriteFile(path, []byte(p.Config(pc.withDefaults())), 0o644)
}

func (pc peerConfig) withDefaults() peerConfig {
	if pc.Workers <= 0 {
		pc.Workers = 2
	}
	if pc.KeepAlive <= 0 {
		pc.KeepAlive = 1024
	}
	if pc.MaxConns <= 0 {
		pc.MaxConns = 1024
	}
	return pc
}

// gatewayConfig renders fastgate's TOML. The access log goes to stdout, which
// the suite redirects to access.log in the peer's dir.
func gatewayConfig(pc peerConfig) string {
	pc = pc.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, `[server]
listen = %q
read_timeout = "15s"
write_timeout = "15s"
idle_timeout = "60s"
max_request_body = "4MiB"

[log]
level = "warn"
format = "json"
access = %t
access_sample = 1

[[services]]
name = "bench"
timeout = "5s"
retries = 1
max_conns = %d
`, pc.Listen, pc.AccessLog, pc.MaxConns)
	for _, u := range pc.Upstreams {
		fmt.Fprintf(&b, `
  [[services.instances]]
  id = %q
  addr = %q
  weight = %d
`, u.ID, u.Addr, u.Weight)
	}
	b.WriteString(`
[[routes]]
prefix = "/"
service = "bench"
timeout = "10s"
`)
	switch pc.Feature {
	case featureCache:
		fmt.Fprintf(&b, `cache_ttl = %q

[cache]
max_bytes = "64MiB"
`, cacheTTL.String())
	case featureJWT:
		if pc.JWT != nil {
			fmt.Fprintf(&b, `auth = "jwt"

[auth.jwt]
algorithms = ["ES256"]
issuer = %q
audience = [%q]
jwks_file = %q
leeway = "30s"
`, pc.JWT.Issuer, pc.JWT.Audience, pc.JWT.JWKSFile)
		}
	case featureAggregate:
		fmt.Fprintf(&b, `
[[aggregates]]
path = %q
timeout = "2s"
`, aggregatePath)
		for i, path := range aggregatePartPaths() {
			fmt.Fprintf(&b, `  [[aggregates.parts]]
  key = "part%d"
  service = "bench"
  path = %q
`, i+1, path)
		}
	}
	return b.String()
}

// nginxConfig renders an nginx config equivalent to gatewayConfig: upstream
// keep-alive on, HTTP/1.1 to upstreams, one retry on the next upstream, a
// buffered access log, and client keep-alive not capped at nginx's default
// 1000 requests (fasthttp has no such cap), so wrk's connections are not
// recycled mid-run. Upstreams get the headers the gateway sends
// (forwardedHeaders), and the request id is answered and logged, as the
// gateway does.
func nginxConfig(pc peerConfig) string {
	pc = pc.withDefaults()
	var b strings.Builder
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody and could not use Dir.
		b.WriteString("user root;\n")
	}
	access := "off"
	if pc.AccessLog {
		// Buffered like the gateway's access log (256 KiB, flushed every
		// 100 ms), rather than one write(2) per request.
		access = filepath.Join(pc.Dir, "access.log") + " gateway buffer=256k flush=100ms"
	}
	fmt.Fprintf(&b, `worker_processes %d;
worker_rlimit_nofile 16384;
pid %s;
error_log %s warn;

events {
    worker_connections 8192;
}

http {
    # The gateway keeps a well-formed client X-Request-ID, else makes one.
    map $http_x_request_id $fastgate_request_id {
        "~^[A-Za-z0-9._-]{1,128}$" $http_x_request_id;
        default $request_id;
    }
    log_format gateway '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                       '$fastgate_request_id $upstream_addr $request_time';
    access_log %s;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;
    client_max_body_size 4m;
    client_body_buffer_size 16k;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
%s
    upstream bench {
`, pc.Workers,
		filepath.Join(pc.Dir, "nginx.pid"), filepath.Join(pc.Dir, "error.log"), access,
		filepath.Join(pc.Dir, "client_body"), filepath.Join(pc.Dir, "proxy"),
		filepath.Join(pc.Dir, "fastcgi"), filepath.Join(pc.Dir, "uwsgi"), filepath.Join(pc.Dir, "scgi"),
		nginxCachePath(pc))
	for _, u := range pc.Upstreams {
		fmt.Fprintf(&b, "        server %s weight=%d max_fails=0;\n", u.Addr, u.Weight)
	}
	fmt.Fprintf(&b, `        keepalive %d;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen %s;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Gateway-Service bench;
            proxy_set_header X-Request-ID $fastgate_request_id;
            add_header X-Request-ID $fastgate_request_id always;
            proxy_connect_timeout 5s;
            proxy_read_timeout 10s;
            proxy_send_timeout 10s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
%s        }
    }
}
`, pc.KeepAlive, pc.Listen, nginxCacheUse(pc))
	return b.String()
}

// nginxCachePath is the http-level cache zone of featureCache: on disk in
// Dir (served from the page cache), 64 MiB like the gateway's max_bytes.
func nginxCachePath(pc peerConfig) string {
	if pc.Feature != featureCache {
		return ""
	}
	return fmt.Sprintf("    proxy_cache_path %s levels=1:2 keys_zone=bench:10m max_size=64m inactive=10m use_temp_path=off;\n",
		filepath.Join(pc.Dir, "cache"))
}

// nginxCacheUse switches the cache on in the location: 200s kept for
// cacheTTL whatever the upstream says (like the gateway's cache_ttl), and
// concurrent misses for one key make one upstream call (proxy_cache_lock,
// like the gateway's coalescing).
func nginxCacheUse(pc peerConfig) string {
	if pc.Feature != featureCache {
		return ""
	}
	return fmt.Sprintf(`            proxy_cache bench;
            proxy_cache_valid 200 %ds;
            proxy_cache_lock on;
            add_header X-Cache $upstream_cache_status;
`, int(cacheTTL.Seconds()))
}

// haproxyConfig renders an HAProxy config equivalent to gatewayConfig:
// nbthread workers, keep-alive on both sides, connection reuse always,
// weighted round robin, one retry, and the gateway's forwarded headers and
// request id (kept when well-formed, else a UUID; answered and logged). HAProxy only logs to syslog or
// stdout; with the access log on it logs to stdout, which the suite
// redirects to access.log in the peer's dir. Unlike the gateway and nginx,
// it cannot buffer those lines: each is one write(2).
func haproxyConfig(pc peerConfig) string {
	pc = pc.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, `global
    nbthread %d
    maxconn 8000
`, pc.Workers)
	if pc.AccessLog {
		b.WriteString("    log stdout format raw local0 info\n")
	}
	b.WriteString(`
defaults
    mode http
`)
	if pc.AccessLog {
		b.WriteString("    log global\n    option httplog\n")
	} else {
		b.WriteString("    no log\n")
	}
	b.WriteString(`    option http-keep-alive
    http-reuse always
    retries 1
    option redispatch
    timeout connect 5s
    timeout client 60s
    timeout server 10s
    timeout http-keep-alive 60s
    timeout http-request 15s
`)
	if pc.Feature == featureCache {
		// 64 MB like the gateway's max_bytes; max-age caps every object's
		// lifetime at cacheTTL (the stubs send no Cache-Control).
		fmt.Fprintf(&b, `
cache bench
    total-max-size 64
    max-age %d
`, int(cacheTTL.Seconds()))
	}
	fmt.Fprintf(&b, `
frontend fe
    bind %s
    maxconn 8000
`, pc.Listen)
	if pc.Feature == featureJWT && pc.JWT != nil {
		b.WriteString(haproxyJWT(pc.JWT))
	}
	b.WriteString(`    http-request set-var(txn.rid) req.hdr(x-request-id) if { req.hdr(x-request-id) -m reg ^[A-Za-z0-9._-]{1,128}$ }
    http-request set-var(txn.rid) uuid() unless { var(txn.rid) -m found }
    http-request set-header X-Request-ID %[var(txn.rid)]
    http-request set-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Gateway-Service bench
    http-request capture var(txn.rid) len 128
    http-response set-header X-Request-ID %[var(txn.rid)]
    default_backend bench

backend bench
    balance roundrobin
`)
	if pc.Feature == featureCache {
		// HAProxy stores only answers with an explicit lifetime or a
		// validator, and the stubs send neither; giving the answer
		// cacheTTL when the upstream said nothing is what the gateway's
		// cache_ttl and nginx's proxy_cache_valid do.
		fmt.Fprintf(&b, `    http-request cache-use bench
    http-response set-header Cache-Control "max-age=%d" unless { res.hdr(cache-control) -m found }
    http-response cache-store bench
`, int(cacheTTL.Seconds()))
	}
	for _, u := range pc.Upstreams {
		fmt.Fprintf(&b, "    server %s %s weight %d maxconn %d\n", u.ID, u.Addr, u.Weight, pc.MaxConns)
	}
	return b.String()
}
