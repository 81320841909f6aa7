package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/config"
	"github.com/fastgate/fastgate/stub"
	"github.com/valyala/fasthttp"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(`[server]
listen = "nope"
read_timeout = "soon"
trusted_proxies = ["10.0.0.0/40"]

[[services]]
name = "a"
  [[services.instances]]
  id = "x"
  addr = "127.0.0.1:1"
  weight = -2
  [[services.instances]]
  id = "x"
  addr = "127.0.0.1:2"

[[routes]]
prefix = "/api"
service = "nope"
colour = "blue"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// Configs that parse but whose key material the gateway would refuse
	// at start: -check reads the keys too.
	keyCfg := func(name, jwt string) string {
		p := filepath.Join(dir, name+".toml")
		doc := "[auth.jwt]\n" + jwt + "\n[[services]]\nname = \"a\"\n  [[services.instances]]\n  id = \"x\"\n  addr = \"127.0.0.1:1\"\n[[routes]]\nprefix = \"/\"\nservice = \"a\"\nauth = \"jwt\"\n"
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notKey := filepath.Join(dir, "notkey.pem")
	if err := os.WriteFile(notKey, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FASTGATE_TEST_SHORT_SECRET", "short")
	shortSecret := keyCfg("short", "algorithms = [\"HS256\"]\nhmac_secret_env = \"FASTGATE_TEST_SHORT_SECRET\"")
	badPEM := keyCfg("badpem", "algorithms = [\"RS256\"]\npublic_key_files = ["+strconv.Quote(notKey)+"]")
	tests := []struct {
		name string
		args []string
		code int
		want []string // substrings of the output, in order
	}{
		{"HMAC secret too short", []string{"-check", "-config", shortSecret}, 1, []string{"auth.jwt:", "32 bytes"}},
		{"public key file without a key", []string{"-check", "-config", badPEM}, 1, []string{"auth.jwt:", "notkey.pem"}},
		{"demo config", []string{"-check", "-config", "config.toml"}, 0, []string{"config.toml: ok (5 services, 5 routes)"}},
		{"every problem with key and line", []string{"-check", "-config", bad}, 1, []string{
			"line 2: server.listen: bad address",
			"line 3: server.read_timeout: bad duration",
			"line 4: server.trusted_proxies[0]: bad CIDR",
			"line 11: services[0].instances[0].weight: must not be negative",
			"line 13: services[0].instances[1].id: duplicate instance id",
			"line 18: routes[0].service: unknown service",
			"line 19: routes[0].colour: unknown key",
		}},
		{"missing file", []string{"-check", "-config", filepath.Join(dir, "none.toml")}, 1, []string{"no such file"}},
		{"bad flag", []string{"-nope"}, 2, []string{"flag provided but not defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tt.args, &out, &out); code != tt.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tt.code, out.String())
			}
			rest := out.String()
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order); output:\n%s", w, out.String())
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// TestSignals runs the built binary: SIGTERM drains in-flight requests
// and exits 0; a second signal during the drain ends the process at once.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "fastgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Run("second signal during start-up", func(t *testing.T) {
		// A jwks_url that never answers holds start-up for its fetch timeout.
		hang, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hang.Close()
		cfgPath := filepath.Join(t.TempDir(), "c.toml")
		cfg := fmt.Sprintf(`[server]
listen = %q
[auth.jwt]
algorithms = ["ES256"]
jwks_url = "http://%s/jwks.json"
[[services]]
name = "s"
  [[services.instances]]
  id = "a"
  addr = "127.0.0.1:1"
[[routes]]
prefix = "/"
service = "s"
auth = "jwt"
`, freeAddr(t), hang.Addr())
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-config", cfgPath)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		time.Sleep(500 * time.Millisecond) // in the jwks fetch
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		sent := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if took := time.Since(sent); took > time.Second {
			t.Errorf("exited %v after the second signal, want at once", took.Round(time.Millisecond))
		}
		if err == nil {
			t.Error("exit 0, want the signal's")
		}
	})
	for _, tt := range []struct {
		name    string
		latency time.Duration // the upstream's
		second  bool          // send a second SIGTERM during the drain
	}{
		{"drain", 500 * time.Millisecond, false},
		{"second signal", 3 * time.Second, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, err := stub.Start(stub.Options{ID: "slow", Latency: tt.latency})
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			addr := freeAddr(t)
			cfgPath := filepath.Join(t.TempDir(), "c.toml")
			cfg := fmt.Sprintf(`[server]
listen = %q
shutdown_timeout = "8s"
[log]
level = "warn"
[[services]]
name = "s"
timeout = "7s"
  [[services.instances]]
  id = "slow"
  addr = %q
[[routes]]
prefix = "/"
service = "s"
`, addr, up.Addr())
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command(bin, "-config", cfgPath)
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			waitListening(t, addr)

			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI("http://" + addr + "/slow")
				err := fasthttp.DoTimeout(req, resp, 10*time.Second)
				done <- result{resp.StatusCode(), err}
			}()
			deadline := time.Now().Add(3 * time.Second)
			for up.Requests() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if up.Requests() == 0 {
				t.Fatal("request never reached the upstream")
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if tt.second {
				time.Sleep(300 * time.Millisecond) // the drain has begun
				sent := time.Now()
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				err := cmd.Wait()
				if took := time.Since(sent); took > time.Second {
					t.Errorf("exited %v after the second signal, want at once", took.Round(time.Millisecond))
				}
				if err == nil {
					t.Errorf("exit 0 after a second signal, want the signal's")
				}
				return
			}
			r := <-done
			if r.err != nil || r.code != 200 {
				t.Fatalf("in-flight request: status %d, err %v; want 200", r.code, r.err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Fatal("still accepting after shutdown")
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gateway never listened on %s", addr)
}

// TestToken: `fastgate token` mints a token the demo config's verifier
// accepts, with the requested subject.
func TestToken(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"token", "-sub", "42", "-ttl", "5m", "-config", "config.toml"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	cfg, err := config.Load("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(cfg.Auth.JWT, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c, err := v.Verify([]byte("Bearer " + tok))
	if err != nil || c.Subject != "42" {
		t.Fatalf("Verify = %+v, %v; want subject 42", c, err)
	}
	if d := time.Until(c.ExpiresAt); d <= 4*time.Minute || d > 5*time.Minute {
		t.Fatalf("expires in %v, want about 5m", d)
	}
	if code := run([]string{"token"}, &out, &errb); code != 2 {
		t.Fatalf("token without -sub: exit %d, want 2", code)
	}
}
