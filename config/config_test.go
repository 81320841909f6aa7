package config_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fastgate/fastgate/config"
)

// mustParse parses doc and fails the test on any problem.
func mustParse(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// problems parses doc, which must be invalid, and returns its problems.
func problems(t *testing.T, doc string) config.Problems {
	t.Helper()
	c, err := config.Parse([]byte(doc))
	if err == nil {
		t.Fatalf("Parse succeeded, want problems; config: %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a config with an error")
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want config.Problems: %v", err, err)
	}
	if len(ps) == 0 {
		t.Fatalf("error is an empty Problems")
	}
	return ps
}

// lineOf returns the 1-based line of the only occurrence of marker in doc.
func lineOf(t *testing.T, doc, marker string) int {
	t.Helper()
	if n := strings.Count(doc, marker); n != 1 {
		t.Fatalf("marker %q occurs %d times in the document, want 1", marker, n)
	}
	return strings.Count(doc[:strings.Index(doc, marker)], "\n") + 1
}

// fixedBug asserts that a bug found by review stays fixed; note describes
// the bug as it was.
func fixedBug(t *testing.T, ok bool, note string) {
	t.Helper()
	if !ok {
		t.Fatalf("regression: %s", note)
	}
}

func TestDemoConfig(t *testing.T) {
	data, err := os.ReadFile("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseDir(data, "..")
	if err != nil {
		t.Fatal(err)
	}

	s := c.Server
	if s.Listen != "127.0.0.1:8080" || s.HealthPath != "/health" || s.MetricsPath != "/metrics" {
		t.Errorf("server listen/health/metrics = %q %q %q", s.Listen, s.HealthPath, s.MetricsPath)
	}
	for _, d := range []struct {
		name      string
		got, want time.Duration
	}{
		{"read_timeout", s.ReadTimeout.Duration, 15 * time.Second},
		{"write_timeout", s.WriteTimeout.Duration, 15 * time.Second},
		{"idle_timeout", s.IdleTimeout.Duration, 60 * time.Second},
		{"shutdown_timeout", s.ShutdownTimeout.Duration, 10 * time.Second},
	} {
		if d.got != d.want {
			t.Errorf("server.%s = %v, want %v", d.name, d.got, d.want)
		}
	}
	if s.MaxRequestBody.N != 4<<20 || s.MaxHeaderBytes.N != 8<<10 || s.MaxURIBytes.N != 4096 {
		t.Errorf("server sizes = %d %d %d, want %d %d %d",
			s.MaxRequestBody.N, s.MaxHeaderBytes.N, s.MaxURIBytes.N, 4<<20, 8<<10, 4096)
	}
	if len(s.Trusted) != 0 {
		t.Errorf("server.Trusted = %v, want none", s.Trusted)
	}
	if c.Log.Level != "info" || c.Log.Format != "json" || !*c.Log.Access || *c.Log.AccessSample != 1 {
		t.Errorf("log = %q %q %v %d", c.Log.Level, c.Log.Format, *c.Log.Access, *c.Log.AccessSample)
	}

	type svc struct {
		name     string
		timeout  time.Duration
		retries  int
		maxConns int
		idle     time.Duration
		weights  map[string]int
	}
	wantSvcs := []svc{
		{"user-service", time.Second, 1, 1024, 4 * time.Second, map[string]int{"user-1": 3, "user-2": 1}},
		{"post-service", time.Second, 1, 1024, 4 * time.Second, map[string]int{"post-1": 2, "post-2": 1}},
		{"media-service", 5 * time.Second, 1, 1024, 4 * time.Second, map[string]int{"media-1": 1, "media-2": 2}},
		{"notification-service", time.Second, 1, 1024, 4 * time.Second, map[string]int{"notification-1": 3, "notification-2": 2}},
		{"analytics-service", 2 * time.Second, 0, 1024, 4 * time.Second, map[string]int{"analytics-1": 4, "analytics-2": 1}},
	}
	if len(c.Services) != len(wantSvcs) {
		t.Fatalf("%d services, want %d", len(c.Services), len(wantSvcs))
	}
	for i, w := range wantSvcs {
		got := c.Services[i]
		weights := map[string]int{}
		for _, in := range got.Instances {
			weights[in.ID] = *in.Weight
		}
		if got.Name != w.name || got.Timeout.Duration != w.timeout || *got.Retries != w.retries ||
			got.MaxConns != w.maxConns || got.IdleConnTimeout.Duration != w.idle || !reflect.DeepEqual(weights, w.weights) {
			t.Errorf("services[%d] = %s timeout=%v retries=%d max_conns=%d idle=%v weights=%v, want %+v",
				i, got.Name, got.Timeout.Duration, *got.Retries, got.MaxConns, got.IdleConnTimeout.Duration, weights, w)
		}
	}

	wantRoutes := []struct {
		prefix, service string
		methods         []string
		timeout         time.Duration
	}{
		{"/api/v1/users", "user-service", []string{}, 3 * time.Second},
		{"/api/v1/posts", "post-service", nil, 3 * time.Second},
		{"/api/v1/media", "media-service", nil, 15 * time.Second},
		{"/api/v1/notifications", "notification-service", nil, 3 * time.Second},
		{"/api/v1/analytics", "analytics-service", []string{"GET", "POST"}, 3 * time.Second},
	}
	if len(c.Routes) != len(wantRoutes) {
		t.Fatalf("%d routes, want %d", len(c.Routes), len(wantRoutes))
	}
	for i, w := range wantRoutes {
		r := c.Routes[i]
		if r.Prefix != w.prefix || r.Service != w.service || len(r.Methods) != len(w.methods) ||
			strings.Join(r.Methods, ",") != strings.Join(w.methods, ",") || r.StripPrefix != "" || r.Timeout.Duration != w.timeout {
			t.Errorf("routes[%d] = %+v, want %+v", i, r, w)
		}
		if c.Service(r.Service) == nil {
			t.Errorf("routes[%d] service %q not found", i, r.Service)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, `
[[services]]
name = "slow"
timeout = "2s"
retries = 2
  [[services.instances]]
  id = "slow-1"
  addr = "127.0.0.1:1"

[[services]]
name = "plain"
  [[services.instances]]
  id = "plain-1"
  addr = "127.0.0.1:2"
  [[services.instances]]
  id = "plain-2"
  addr = "127.0.0.1:3"
  weight = 0

[[services]]
name = "once"
retries = 0
timeout = "300ms"
  [[services.instances]]
  id = "once-1"
  addr = "127.0.0.1:4"

[[routes]]
prefix = "/slow"
service = "slow"

[[routes]]
prefix = "/plain"
service = "plain"

[[routes]]
prefix = "/once"
service = "once"

[[routes]]
prefix = "/own"
service = "slow"
timeout = "500ms"
`)
	s := c.Server
	if s.Listen != config.DefaultListen || s.ReadTimeout.Duration != config.DefaultReadTimeout ||
		s.WriteTimeout.Duration != config.DefaultWriteTimeout || s.IdleTimeout.Duration != config.DefaultIdleTimeout ||
		s.ShutdownTimeout.Duration != config.DefaultShutdownTimeout {
		t.Errorf("server defaults: %+v", s)
	}
	if s.Listen != "127.0.0.1:8080" || s.ReadTimeout.Duration != 15*time.Second || s.IdleTimeout.Duration != time.Minute {
		t.Errorf("server defaults differ from the documented ones: %+v", s)
	}
	if s.MaxRequestBody.N != 4194304 || s.MaxHeaderBytes.N != 8192 || s.MaxURIBytes.N != 4096 {
		t.Errorf("size defaults = %d %d %d, want 4194304 8192 4096", s.MaxRequestBody.N, s.MaxHeaderBytes.N, s.MaxURIBytes.N)
	}
	if s.HealthPath != "/health" || s.MetricsPath != "/metrics" {
		t.Errorf("paths = %q %q", s.HealthPath, s.MetricsPath)
	}
	if c.Log.Level != "info" || c.Log.Format != "json" || c.Log.Access == nil || !*c.Log.Access ||
		c.Log.AccessSample == nil || *c.Log.AccessSample != 1 {
		t.Errorf("log defaults: %+v", c.Log)
	}

	plain := c.Service("plain")
	if plain == nil {
		t.Fatal(`service "plain" missing`)
	}
	if plain.Timeout.Duration != time.Second || *plain.Retries != 1 || plain.MaxConns != 1024 || plain.IdleConnTimeout.Duration != 4*time.Second {
		t.Errorf("service defaults: timeout=%v retries=%d max_conns=%d idle=%v",
			plain.Timeout.Duration, *plain.Retries, plain.MaxConns, plain.IdleConnTimeout.Duration)
	}
	if w := *plain.Instances[0].Weight; w != 1 {
		t.Errorf("instance without weight has weight %d, want 1", w)
	}
	if w := *plain.Instances[1].Weight; w != 0 {
		t.Errorf("instance with weight = 0 has weight %d, want 0 (drained, not defaulted)", w)
	}

	for _, tc := range []struct {
		prefix string
		want   time.Duration
	}{
		{"/slow", 6 * time.Second},        // 2s * (2+1)
		{"/plain", 2 * time.Second},       // default 1s * (1+1)
		{"/once", 300 * time.Millisecond}, // 300ms * (0+1)
		{"/own", 500 * time.Millisecond},  // given
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			for _, r := range c.Routes {
				if r.Prefix == tc.prefix {
					if r.Timeout.Duration != tc.want {
						t.Errorf("timeout = %v, want %v", r.Timeout.Duration, tc.want)
					}
					return
				}
			}
			t.Fatalf("route %s missing", tc.prefix)
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "4MiB", want: 4194304},
		{in: "8KiB", want: 8192},
		{in: "1GiB", want: 1 << 30},
		{in: "1MB", want: 1000000},
		{in: "3KB", want: 3000},
		{in: "2GB", want: 2000000000},
		{in: "512", want: 512},
		{in: "512B", want: 512},
		{in: "1_024", want: 1024},
		{in: " 16 KiB ", want: 16384},
		{in: "0", want: 0},
		{in: "4611686018427387904", want: 1 << 62},
		{in: "4XB", bad: true},
		{in: "-1", bad: true},
		{in: "-1KiB", bad: true},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "1.5MiB", bad: true},
		{in: "4mib", bad: true},
		{in: "0x10", bad: true},
		{in: "4611686018427387905", bad: true},  // over the 1<<62 cap
		{in: "9223372036854775808", bad: true},  // over int64
		{in: "4294967296GiB", want: 1 << 62},    // exactly the cap
		{in: "4294967297GiB", bad: true},        // over the cap through the multiplier
		{in: "99999999999999999999", bad: true}, // over int64
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := config.ParseSize(tc.in)
			switch {
			case tc.bad && err == nil:
				t.Errorf("ParseSize(%q) = %d, want an error", tc.in, got)
			case tc.bad && !strings.Contains(err.Error(), "bad size"):
				t.Errorf("ParseSize(%q) error = %v, want it to say bad size", tc.in, err)
			case !tc.bad && err != nil:
				t.Errorf("ParseSize(%q) error: %v", tc.in, err)
			case !tc.bad && got != tc.want:
				t.Errorf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// TestSizeValues checks sizes given in a file, as TOML integers and strings.
func TestSizeValues(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int64
		msg   string // wanted problem, "" for none
	}{
		{value: `1024`, want: 1024},
		{value: `1_024`, want: 1024},
		{value: `"1024"`, want: 1024},
		{value: `"2MiB"`, want: 2 << 20},
		{value: `'2MiB'`, want: 2 << 20},
		{value: `"1MB"`, want: 1000000},
		{value: `0`, msg: "must be positive"},
		{value: `"0B"`, msg: "must be positive"},
		{value: `-5`, msg: `bad size "-5"`},
		{value: `0x10`, msg: `bad size "0x10"`},
		{value: `1.5`, msg: `bad size "1.5"`},
		{value: `true`, msg: `bad size "true"`},
		{value: `[1]`, msg: `bad size`},
		{value: `"4XB"`, msg: `bad size "4XB"`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			doc := "# sizes\n[server]\nmax_request_body = " + tc.value + "\n"
			if tc.msg == "" {
				c := mustParse(t, doc)
				if c.Server.MaxRequestBody.N != tc.want {
					t.Errorf("max_request_body = %d, want %d", c.Server.MaxRequestBody.N, tc.want)
				}
				return
			}
			ps := problems(t, doc)
			if len(ps) != 1 || ps[0].Key != "server.max_request_body" || ps[0].Line != 3 || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Errorf("problems = %v, want one on server.max_request_body line 3 saying %q", ps, tc.msg)
			}
		})
	}
	t.Run("max_header_bytes below 1KiB", func(t *testing.T) {
		ps := problems(t, "[server]\nmax_header_bytes = 1023\n")
		if len(ps) != 1 || ps[0].Key != "server.max_header_bytes" || ps[0].Line != 2 || !strings.Contains(ps[0].Msg, "at least 1KiB") {
			t.Errorf("problems = %v", ps)
		}
	})
}

func TestDurationValues(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		msg   string // wanted problem, "" for none
	}{
		{value: `"2s"`, want: 2 * time.Second},
		{value: `"150ms"`, want: 150 * time.Millisecond},
		{value: `"1m30s"`, want: 90 * time.Second},
		{value: `'2s'`, want: 2 * time.Second},
		{value: `"2 seconds"`, msg: `bad duration "2 seconds"`},
		{value: `"2"`, msg: `bad duration "2"`},
		{value: `""`, msg: `bad duration ""`},
		{value: `"2S"`, msg: `bad duration "2S"`},
		{value: `5`, msg: `want a duration string such as "2s", got 5`},
		{value: `1.5`, msg: `want a duration string`},
		{value: `true`, msg: `want a duration string`},
		{value: `["2s"]`, msg: `want a duration string`},
		{value: `"0s"`, msg: "must be positive, got 0s"},
		{value: `"0"`, msg: "must be positive, got 0s"},
		{value: `"-1s"`, msg: "must be positive, got -1s"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			doc := "[server]\nlisten = \"127.0.0.1:1\"\nidle_timeout = " + tc.value + "\n"
			if tc.msg == "" {
				c := mustParse(t, doc)
				if c.Server.IdleTimeout.Duration != tc.want {
					t.Errorf("idle_timeout = %v, want %v", c.Server.IdleTimeout.Duration, tc.want)
				}
				return
			}
			ps := problems(t, doc)
			if len(ps) != 1 || ps[0].Key != "server.idle_timeout" || ps[0].Line != 3 || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Errorf("problems = %v, want one on server.idle_timeout line 3 saying %q", ps, tc.msg)
			}
		})
	}
	t.Run("route timeout zero", func(t *testing.T) {
		doc := "[[services]]\nname = \"s\"\n[[services.instances]]\nid = \"i\"\naddr = \"127.0.0.1:1\"\n" +
			"[[routes]]\nprefix = \"/s\"\nservice = \"s\"\ntimeout = \"0s\"\n"
		ps := problems(t, doc)
		if len(ps) != 1 || ps[0].Key != "routes[0].timeout" || ps[0].Line != 9 || !strings.Contains(ps[0].Msg, "must be positive") {
			t.Errorf("problems = %v", ps)
		}
	})
	t.Run("multi-line string", func(t *testing.T) {
		// """2s""" is the TOML string 2s, as valid as "2s".
		_, err := config.Parse([]byte("[server]\nidle_timeout = \"\"\"2s\"\"\"\n"))
		fixedBug(t, err == nil, `multi-line and escaped TOML strings are not unquoted: idle_timeout = """2s""" -> `+
			`bad duration "\"\"2s\"\""; see unquote in load.go`)
	})
}

// manyProblems has one problem on each line marked with #@name (and only
// there); the markers locate the lines, so the document can be edited.
const manyProblems = `bogus = 1                          #@top-unknown

[server]
listen = "127.0.0.1:8080"
read_timeout = "15 seconds"        #@bad-duration
max_request_body = "4XB"           #@bad-size
trusted_proxies = ["10.0.0.0/8", "10.0.0.300/8"]  #@bad-cidr
health_path = "/same"
metrics_path = "/same"             #@same-path

[log]
level = "verbose"                  #@bad-level
format = "console"
access_sample = 0                  #@sample

[[services]]
name = "a"
  [[services.instances]]
  id = "a-1"
  addr = "127.0.0.1:9001"
  [[services.instances]]
  id = "a-1"                       #@dup-id
  addr = "127.0.0.1:9002"
  colour = "blue"                  #@nested-unknown
  weight = -1                      #@weight-neg
  [[services.instances]]
  id = "a-3"
  addr = "127.0.0.1:9003"
  weight = 1001                    #@weight-big

[[services]]                       #@all-zero
name = "b"
idle_conn_timeout = 5              #@dur-int
  [[services.instances]]
  id = "b-1"
  addr = "127.0.0.1:9011"
  weight = 0
  [[services.instances]]
  id = "b-2"
  addr = "127.0.0.1:9012"
  weight = 0

[[routes]]
prefix = "/x"
service = "nope"                   #@unknown-service

[[routes]]
prefix = "/x"                      #@dup-prefix
service = "a"
strip_prefix = "/y"                #@strip
methods = ["GET", "get"]           #@method

[[routes]]
prefix = "/a/./b"                  #@dot
service = "a"

[[routes]]
prefix = "/a/"                     #@trailing
service = "a"

[[routes]]
prefix = "/a//b"                   #@double
service = "a"
`

func TestManyProblems(t *testing.T) {
	want := []struct{ marker, key, msg string }{
		{"#@top-unknown", "bogus", "unknown key"},
		{"#@bad-duration", "server.read_timeout", `bad duration "15 seconds"`},
		{"#@bad-size", "server.max_request_body", `bad size "4XB"`},
		{"#@bad-cidr", "server.trusted_proxies[1]", `bad CIDR "10.0.0.300/8"`},
		{"#@same-path", "server.metrics_path", `same as health_path "/same"`},
		{"#@bad-level", "log.level", `unknown level "verbose"`},
		{"#@sample", "log.access_sample", "must be at least 1, got 0"},
		{"#@dup-id", "services[0].instances[1].id", `duplicate instance id "a-1" (also services[0].instances[0])`},
		{"#@nested-unknown", "services[0].instances[1].colour", "unknown key"},
		{"#@weight-neg", "services[0].instances[1].weight", "must not be negative, got -1"},
		{"#@weight-big", "services[0].instances[2].weight", "at most 1000, got 1001"},
		{"#@all-zero", "services[1].instances", "every instance has weight 0"},
		{"#@dur-int", "services[1].idle_conn_timeout", "want a duration string"},
		{"#@unknown-service", "routes[0].service", `unknown service "nope"`},
		{"#@dup-prefix", "routes[1].prefix", `duplicate route prefix "/x"`},
		{"#@strip", "routes[1].strip_prefix", `"/y" is not a prefix of the route prefix "/x"`},
		{"#@method", "routes[1].methods[1]", `bad method "get"`},
		{"#@dot", "routes[2].prefix", "dot segment"},
		{"#@trailing", "routes[3].prefix", "must not end with /"},
		{"#@double", "routes[4].prefix", "contains //"},
	}
	ps := problems(t, manyProblems)

	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line {
			t.Errorf("problems not sorted by line: %v before %v", ps[i-1], ps[i])
		}
	}
	for i, w := range want {
		line := lineOf(t, manyProblems, w.marker)
		t.Run(w.key, func(t *testing.T) {
			if i >= len(ps) {
				t.Fatalf("missing problem %s (line %d): only %d problems", w.key, line, len(ps))
			}
			p := ps[i]
			if p.Key != w.key || p.Line != line || !strings.Contains(p.Msg, w.msg) {
				t.Errorf("problem %d = %v, want line %d: %s: ...%s...", i, p, line, w.key, w.msg)
			}
			if s := p.String(); !strings.HasPrefix(s, "line ") || !strings.Contains(s, w.key) {
				t.Errorf("String() = %q", s)
			}
		})
	}
	if len(ps) > len(want) {
		t.Errorf("%d extra problems: %v", len(ps)-len(want), ps[len(want):])
	}
	if msg := ps.Error(); !strings.HasPrefix(msg, "config: 20 problem(s):") || strings.Count(msg, "\n  line ") != 20 {
		t.Errorf("Error() = %q", msg)
	}
}

// TestOneProblem covers the checks that TestManyProblems does not, one
// document each. The line is that of the marker #@ in the document: the
// key's own line, or its table's header when the key is missing.
func TestOneProblem(t *testing.T) {
	const inst = "[[services.instances]]\nid = \"%s\"\naddr = \"127.0.0.1:1\"\n"
	svc := func(name string, extra string) string {
		return "[[services]]\nname = \"" + name + "\"\n" + extra + fmt.Sprintf(inst, name+"-1")
	}
	many := "[[services]]     #@\nname = \"big\"\n"
	for i := range config.MaxInstances + 1 {
		many += fmt.Sprintf(inst, fmt.Sprint("big-", i))
	}
	for _, tc := range []struct {
		name, doc, key, msg string
	}{
		{"no instances", "[[services]]   #@\nname = \"a\"\n", "services[0].instances", "at least one instance"},
		{"65 instances", many, "services[0].instances", "65 instances; at most 64"},
		{"64 instances is fine", strings.Replace(strings.Replace(many, fmt.Sprintf(inst, "big-64"), "", 1), "#@", "", 1) + "[log]\nlevel = \"loud\" #@\n", "log.level", "unknown level"},
		{"service name missing", svc("a", "") + "[[services]]  #@\nretries = 0\n" + fmt.Sprintf(inst, "b-1"), "services[1].name", "required"},
		{"service name duplicate", svc("a", "") + "[[services]]\nname = \"a\"  #@\n" + fmt.Sprintf(inst, "a-2"), "services[1].name", `duplicate service name "a"`},
		{"retries negative", svc("a", "retries = -1  #@\n"), "services[0].retries", "must be within 0..63 (each retry goes to another instance), got -1"},
		{"max_conns negative", svc("a", "max_conns = -2  #@\n"), "services[0].max_conns", "must be at least 1, got -2"},
		{"instance id missing", "[[services]]\nname = \"a\"\n[[services.instances]]  #@\naddr = \"127.0.0.1:1\"\n", "services[0].instances[0].id", "required"},
		{"service name reserved", "[[services]]\nname = \"_aggregate\" #@\n[[services.instances]]\nid = \"x\"\naddr = \"127.0.0.1:1\"\n", "services[0].name", "reserved"},
		{"instance port 0", "[[services]]\nname = \"a\"\n[[services.instances]]\nid = \"x\"\naddr = \"127.0.0.1:0\" #@\n", "services[0].instances[0].addr", "port 0"},
		{"instance addr is server.listen", "[server]\nlisten = \"127.0.0.1:8080\"\n[[services]]\nname = \"a\"\n[[services.instances]]\nid = \"x\"\naddr = \"127.0.0.1:8080\" #@\n", "services[0].instances[0].addr", "requests would loop"},
		{"instance on loopback, listen on all", "[server]\nlisten = \"0.0.0.0:8080\"\n[[services]]\nname = \"a\"\n[[services.instances]]\nid = \"x\"\naddr = \"127.0.0.1:8080\" #@\n", "services[0].instances[0].addr", "requests would loop"},
		{"instance localhost, listen on all", "[server]\nlisten = \":8080\"\n[[services]]\nname = \"a\"\n[[services.instances]]\nid = \"x\"\naddr = \"localhost:8080\" #@\n", "services[0].instances[0].addr", "requests would loop"},
		{"instance localhost, listen on ::1", "[server]\nlisten = \"[::1]:8080\"\n[[services]]\nname = \"a\"\n[[services.instances]]\nid = \"x\"\naddr = \"localhost:8080\" #@\n", "services[0].instances[0].addr", "requests would loop"},
		{"instance addr without port", "[[services]]\nname = \"a\"\n[[services.instances]]\nid = \"x\"\naddr = \"127.0.0.1\" #@\n", "services[0].instances[0].addr", "want host:port"},
		{"instance id duplicate across services", svc("a", "") + "[[services]]\nname = \"b\"\n[[services.instances]]\nid = \"a-1\"  #@\naddr = \"127.0.0.1:2\"\n", "services[1].instances[0].id", `also services[0].instances[0]`},
		{"listen without port", "[server]\nlisten = \"localhost\"  #@\n", "server.listen", `bad address "localhost"`},
		{"listen port out of range", "[server]\nlisten = \":65536\"  #@\n", "server.listen", "bad port"},
		{"health_path relative", "[server]\nhealth_path = \"health\"  #@\n", "server.health_path", "must start with /"},
		{"metrics_path with query", "[server]\nmetrics_path = \"/m?x=1\"  #@\n", "server.metrics_path", "plain path"},
		{"log format", "[log]\nformat = \"xml\"  #@\n", "log.format", `unknown format "xml"`},
		{"route service missing", svc("a", "") + "[[routes]]  #@\nprefix = \"/a\"\n", "routes[0].service", "required"},
		{"route prefix missing", svc("a", "") + "[[routes]]  #@\nservice = \"a\"\n", "routes[0].prefix", "required"},
		{"route prefix dot-dot", svc("a", "") + "[[routes]]\nprefix = \"/a/..\"  #@\nservice = \"a\"\n", "routes[0].prefix", "dot segment"},
		{"route prefixes equal ignoring case, one ignore_case", svc("a", "") + "[[routes]]\nprefix = \"/api\"\nservice = \"a\"\n[[routes]]\nprefix = \"/API\"  #@\nservice = \"a\"\nignore_case = true\n", "routes[1].prefix", "ignoring case, and one of them has ignore_case"},
		{"route prefixes equal ignoring case, case-sensitive both: fine", svc("a", "") + "[[routes]]\nprefix = \"/api\"\nservice = \"a\"\n[[routes]]\nprefix = \"/API\"\nservice = \"a\"\n[log]\nlevel = \"loud\" #@\n", "log.level", "unknown level"},
		{"ignore_case strip_prefix in another case", svc("a", "") + "[[routes]]\nprefix = \"/API/v1\"\nservice = \"a\"\nignore_case = true\nstrip_prefix = \"/apx\"  #@\n", "routes[0].strip_prefix", "not a prefix"},
		{"case-sensitive route under an ignore_case prefix", svc("a", "") + "[[routes]]\nprefix = \"/api\"\nservice = \"a\"\nignore_case = true\n[[routes]]  #@\nprefix = \"/API/v1/orders\"\nservice = \"a\"\n", "routes[1].ignore_case", "under routes[0]'s ignore_case prefix"},
		{"write_buffer too small", "[server]\nwrite_buffer = \"512\"  #@\n", "server.write_buffer", "within 1KiB..1MiB"},
		{"write_buffer zero", "[server]\nwrite_buffer = 0  #@\n", "server.write_buffer", "must be positive"},
		{"route prefix with a reserved character", svc("a", "") + "[[routes]]\nprefix = \"/api/@admin\"  #@\nservice = \"a\"\n", "routes[0].prefix", "may only hold letters, digits"},
		{"route prefix with a semicolon", svc("a", "") + "[[routes]]\nprefix = \"/a;b\"  #@\nservice = \"a\"\n", "routes[0].prefix", "may only hold letters, digits"},
		{"route prefix with space", svc("a", "") + "[[routes]]\nprefix = \"/a b\"  #@\nservice = \"a\"\n", "routes[0].prefix", "plain path"},
		{"strip_prefix not on a segment boundary", svc("a", "") + "[[routes]]\nprefix = \"/api/v1\"\nservice = \"a\"\nstrip_prefix = \"/ap\"  #@\n", "routes[0].strip_prefix", "not a prefix"},
		{"strip_prefix trailing slash", svc("a", "") + "[[routes]]\nprefix = \"/api/v1\"\nservice = \"a\"\nstrip_prefix = \"/api/\"  #@\n", "routes[0].strip_prefix", "must not end with /"},
		{"method with space", svc("a", "") + "[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = [\"GET\", \"PO ST\"]  #@\n", "routes[0].methods[1]", "bad method"},
		{"method empty", svc("a", "") + "[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = [\"\"]  #@\n", "routes[0].methods[0]", "bad method"},
		// TOML has nan and inf; a range check that NaN passes turned the
		// ratio check off (error_ratio) or retries off (retry_budget).
		{"error_ratio nan", svc("a", "[services.breaker]\nerror_ratio = nan  #@\n"), "services[0].breaker.error_ratio", "must be within 0..1, got NaN"},
		{"error_ratio -nan", svc("a", "[services.breaker]\nerror_ratio = -nan  #@\n"), "services[0].breaker.error_ratio", "must be within 0..1, got NaN"},
		{"error_ratio inf", svc("a", "[services.breaker]\nerror_ratio = inf  #@\n"), "services[0].breaker.error_ratio", "must be within 0..1, got +Inf"},
		{"error_ratio -inf", svc("a", "[services.breaker]\nerror_ratio = -inf  #@\n"), "services[0].breaker.error_ratio", "must be within 0..1, got -Inf"},
		{"error_ratio above 1", svc("a", "[services.breaker]\nerror_ratio = 1.5  #@\n"), "services[0].breaker.error_ratio", "must be within 0..1, got 1.5"},
		{"retry_budget nan", svc("a", "[services.limits]\nretry_budget = nan  #@\n"), "services[0].limits.retry_budget", "must be within 0..1, got NaN"},
		{"retry_budget +inf", svc("a", "[services.limits]\nretry_budget = +inf  #@\n"), "services[0].limits.retry_budget", "must be within 0..1, got +Inf"},
		{"retry_budget -inf", svc("a", "[services.limits]\nretry_budget = -inf  #@\n"), "services[0].limits.retry_budget", "must be within 0..1, got -Inf"},
		{"rate limit name with a colon", "[[rate_limits]]\nname = \"per:h\"  #@\nrate = 10\n", "rate_limits[0].name", "':' is reserved"},
		{"rate limit name duplicate", "[[rate_limits]]\nname = \"a\"\nrate = 10\n[[rate_limits]]\nname = \"a\"  #@\nrate = 5\n", "rate_limits[1].name", `duplicate rate limit "a"`},
		{"retry_budget negative", svc("a", "[services.limits]\nretry_budget = -0.1  #@\n"), "services[0].limits.retry_budget", "must be within 0..1, got -0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := lineOf(t, tc.doc, "#@")
			ps := problems(t, tc.doc)
			if len(ps) != 1 || ps[0].Key != tc.key || ps[0].Line != line || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Errorf("problems = %v\nwant one: line %d: %s: ...%s...", ps, line, tc.key, tc.msg)
			}
		})
	}
}

// TestCascades checks that one mistake gives one problem, not also a
// problem on some other key that was derived from it.
func TestCascades(t *testing.T) {
	for _, tc := range []struct {
		name, doc, key, bug string
	}{{
		name: "invalid weights are not zero weights",
		doc: "[[services]]\nname = \"a\"\n" +
			"[[services.instances]]\nid = \"a-1\"\naddr = \"127.0.0.1:1\"\nweight = -1\n" +
			"[[services.instances]]\nid = \"a-2\"\naddr = \"127.0.0.1:2\"\nweight = 0\n",
		key: "services[0].instances[0].weight",
		bug: `weights {-1, 1001} also give "services[0].instances: every instance has weight 0" ` +
			`(validate.go, Service.validate: total only counts valid weights)`,
	}, {
		name: "service timeout is not blamed on its routes",
		doc: "[[services]]\nname = \"a\"\ntimeout = \"-1s\"\n" +
			"[[services.instances]]\nid = \"a-1\"\naddr = \"127.0.0.1:1\"\n" +
			"[[routes]]\nprefix = \"/a\"\nservice = \"a\"\n",
		key: "services[0].timeout",
		bug: `service timeout "-1s" also gives "routes[0].timeout: must be positive, got -2s" on a route ` +
			`without a timeout (validate.go, setDefaults derives the route timeout from an invalid one)`,
	}, {
		name: "huge retries are blamed on retries",
		doc: "[[services]]\nname = \"a\"\nretries = 9223372036854775807\n" +
			"[[services.instances]]\nid = \"a-1\"\naddr = \"127.0.0.1:1\"\n" +
			"[[routes]]\nprefix = \"/a\"\nservice = \"a\"\n",
		key: "services[0].retries",
		bug: `retries has no upper bound and timeout*(retries+1) overflows: retries = MaxInt64 gives only ` +
			`"routes[0].timeout: must be positive, got 0s" (validate.go, setDefaults / Service.validate)`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ps := problems(t, tc.doc)
			ok := len(ps) == 1 && ps[0].Key == tc.key
			if tc.bug != "" {
				fixedBug(t, ok, tc.bug+"; got "+ps.Error())
			}
			if !ok {
				t.Errorf("problems = %v, want one on %s", ps, tc.key)
			}
		})
	}
}

func TestSyntaxError(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
	}{
		{"unterminated string", "[server]\nlisten = \"127.0.0.1:1\nhealth_path = \"/h\"\n", 2},
		{"missing =", "[server]\n\nlisten \"127.0.0.1:1\"\n", 3},
		{"missing value", "# c\nbogus =\n", 2},
		{"unclosed table", "\n\n[server\nlisten = \"127.0.0.1:1\"\n", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := problems(t, tc.doc)
			if len(ps) != 1 || ps[0].Key != "(syntax)" || ps[0].Line != tc.line || ps[0].Msg == "" {
				t.Errorf("problems = %v, want one (syntax) problem on line %d", ps, tc.line)
			}
		})
	}
}

func TestTypeMismatch(t *testing.T) {
	for _, tc := range []struct {
		name, doc, key string
		line           int
		bug            string
	}{
		{name: "listen = 5", doc: "[server]\nlisten = 5\n", key: "server.listen", line: 2},
		{name: "access = string", doc: "# c\n[log]\naccess = \"yes\"\n", key: "log.access", line: 3},
		{name: "methods = string", doc: "[[routes]]\nprefix = \"/a\"\nservice = \"a\"\nmethods = \"GET\"\n", key: "routes[0].methods", line: 4,
			bug: `type mismatch keys lack array indexes: "routes.methods", want "routes[0].methods" (load.go, decodeProblem)`},
		{name: "server = 1", doc: "server = 1\n", key: "server", line: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := problems(t, tc.doc)
			if len(ps) != 1 || ps[0].Line != tc.line || !strings.Contains(ps[0].Msg, "cannot decode") {
				t.Fatalf("problems = %v, want one type problem on line %d", ps, tc.line)
			}
			if tc.bug != "" {
				fixedBug(t, ps[0].Key == tc.key, tc.bug)
			}
			if ps[0].Key != tc.key {
				t.Errorf("key = %q, want %q", ps[0].Key, tc.key)
			}
		})
	}
}

func TestHasPathPrefix(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		want         bool
	}{
		{"/a", "/a", true},
		{"/a/b", "/a", true},
		{"/a/", "/a", true},
		{"/ab", "/a", false},
		{"/a", "/ab", false},
		{"/", "/a", false},
		{"/a", "/", true},
		{"/", "/", true},
		{"/anything/at/all", "/", true},
		{"/api/v1/users/7", "/api/v1/users", true},
		{"/api/v1/usersX", "/api/v1/users", false},
		{"/api/v1/users;jsessionid=1/7", "/api/v1/users", true},
		{"/api/v1/users;", "/api/v1/users", true},
		{"/api/v1/users;x", "/api/v1/users/", false},
		{"/api/v1;x/users", "/api/v1/users", true},
		{"/api;x/v1/users/7", "/api/v1/users", true},
		{"/api;x/v1;y/users;z", "/api/v1/users", true},
		{"/api;x/v1x/users", "/api/v1", false},
		{"/api;x", "/api/v1", false},
		{"/ap;i/v1", "/api", false},
		{"/api;x/v1", "/", true},
		{"/api/v1", "/api/v1/users", false},
		{"/A", "/a", false},
		{"", "/", false},
		{"", "", true},
	} {
		t.Run(tc.path+"|"+tc.prefix, func(t *testing.T) {
			if got := config.HasPathPrefix(tc.path, tc.prefix); got != tc.want {
				t.Errorf("HasPathPrefix(%q, %q) = %v, want %v", tc.path, tc.prefix, got, tc.want)
			}
		})
	}
	t.Run("empty prefix", func(t *testing.T) {
		var got bool
		panicked := func() (p bool) {
			defer func() { p = recover() != nil }()
			got = config.HasPathPrefix("/a", "")
			return false
		}()
		fixedBug(t, !panicked && got, `HasPathPrefix("/a", "") panics with index out of range [-1] (validate.go, HasPathPrefix)`)
	})
}

func TestTrustedProxies(t *testing.T) {
	doc := `[server]
trusted_proxies = ["10.0.0.0/8", "192.168.1.7/24", "203.0.113.5", "2001:db8::/32", "::1", "::ffff:198.51.100.1"]
`
	c := mustParse(t, doc)
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.0/24"), // masked
		netip.MustParsePrefix("203.0.113.5/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("198.51.100.1/32"), // mapped address unmapped
	}
	if !reflect.DeepEqual(c.Server.Trusted, want) {
		t.Errorf("Trusted = %v, want %v", c.Server.Trusted, want)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.20.30.40", true},
		{"11.0.0.1", false},
		{"192.168.1.200", true},
		{"192.168.2.1", false},
		{"203.0.113.5", true},
		{"203.0.113.6", false},
		{"2001:db8:1::9", true},
		{"::1", true},
		{"::2", false},
		{"198.51.100.1", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			got := false
			for _, p := range c.Server.Trusted {
				got = got || p.Contains(a)
			}
			if got != tc.want {
				t.Errorf("trusted(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}

	for _, bad := range []string{"10.0.0.300", "10.0.0.0/33", "example.com", "", "::1/129", "10.0.0.0/-1"} {
		t.Run("bad "+bad, func(t *testing.T) {
			ps := problems(t, "[server]\ntrusted_proxies = [\"127.0.0.1\", \""+bad+"\"]\n")
			if len(ps) != 1 || ps[0].Key != "server.trusted_proxies[1]" || ps[0].Line != 2 || !strings.Contains(ps[0].Msg, "bad CIDR") {
				t.Errorf("problems = %v", ps)
			}
		})
	}
}

func TestValidDocument(t *testing.T) {
	// Every accepted form at once; a regression here means a valid file
	// got rejected.
	c := mustParse(t, `
[server]
listen = "[::1]:8443"
trusted_proxies = []
health_path = "/"
metrics_path = "/internal/metrics"

[log]
level = "debug"
format = "console"
access = false
access_sample = 100

[[services]]
name = "s"
max_conns = 1
  [[services.instances]]
  id = "s-1"
  addr = "localhost:80"
  weight = 1000
  [[services.instances]]
  id = "s-2"
  addr = "127.0.0.1:81"
  weight = 0

[[routes]]
prefix = "/"
service = "s"

[[routes]]
prefix = "/api/v2"
service = "s"
strip_prefix = "/api"
methods = ["GET", "PROPFIND", "M-SEARCH"]
`)
	if *c.Log.Access || *c.Log.AccessSample != 100 || c.Log.Level != "debug" || c.Log.Format != "console" {
		t.Errorf("log = %+v", c.Log)
	}
	if c.Routes[1].StripPrefix != "/api" || len(c.Routes[1].Methods) != 3 {
		t.Errorf("routes[1] = %+v", c.Routes[1])
	}
	if c.Server.Listen != "[::1]:8443" || c.Services[0].MaxConns != 1 {
		t.Errorf("server/service = %q %d", c.Server.Listen, c.Services[0].MaxConns)
	}
}

func TestLoad(t *testing.T) {
	c, err := config.Load("../config.toml")
	if err != nil || len(c.Services) != 5 {
		t.Fatalf("Load(../config.toml) = %v, %v", c, err)
	}
	_, err = config.Load("testdata/does-not-exist.toml")
	var ps config.Problems
	if err == nil || errors.As(err, &ps) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want a wrapped os.ErrNotExist", err)
	}
	_, err = config.Load("testdata/bad.toml")
	if !errors.As(err, &ps) || len(ps) != 3 {
		t.Fatalf("Load(testdata/bad.toml) error = %v, want 3 problems", err)
	}
	for i, key := range []string{"server.listen", "services[0].instances[0].addr", "routes[0].prefix"} {
		if ps[i].Key != key || ps[i].Line == 0 {
			t.Errorf("problem %d = %v, want key %s with a line", i, ps[i], key)
		}
	}
}

func TestPathPrefixEndFold(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		fold, want   bool
		end          int
	}{
		{"/API/v1/Users/7", "/api/v1/users", true, true, 13},
		{"/API/v1/Users/7", "/api/v1/users", false, false, 0},
		{"/Api;x/V1/users;y/7", "/api/v1/users", true, true, 17},
		{"/Api;x/V1/users;y/7", "/api/v1/users", false, false, 0},
		{"/api/v1/usersX", "/API/V1/USERS", true, false, 0},
		{"/api/v1/users", "/api/v1/users", true, true, 13},
		{"/a-b_c.d~e/x", "/A-B_C.D~E", true, true, 10},
		{"/a", "/", true, true, 1},
	} {
		t.Run(fmt.Sprintf("%s|%s|%v", tc.path, tc.prefix, tc.fold), func(t *testing.T) {
			end, ok := config.PathPrefixEnd(tc.path, tc.prefix, tc.fold)
			if ok != tc.want || ok && end != tc.end {
				t.Errorf("PathPrefixEnd(%q, %q, %v) = %d, %v; want %d, %v", tc.path, tc.prefix, tc.fold, end, ok, tc.end, tc.want)
			}
		})
	}
}
