package config_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/fastgate/fastgate/config"
)

// FuzzParse checks Parse's contract on any input: it never panics; a failure
// is a non-empty Problems, each naming a key, saying what is wrong and
// pointing at a line of the document, in file order; a success has every
// route's service, only valid weights and ratios within 0..1.
func FuzzParse(f *testing.F) {
	demo, err := os.ReadFile("../config.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(demo)
	f.Add([]byte(manyProblems))
	for _, seed := range []string{
		"",
		"[server]\nlisten = 5\n",
		"[server]\nlisten = \"a\n",
		"[server]\nmax_request_body = \"4XB\"\nread_timeout = 5\n",
		"server = 1\n",
		"[server.read_timeout]\na = 1\n",
		"services = [{name=\"a\", foo=1, instances=[{id=\"x\", addr=\"1.1.1.1:1\", bar=2}]}]\n",
		"[[services]]\nname=\"a\"\nretries=9223372036854775807\n[[services.instances]]\nid=\"x\"\naddr=\"1.1.1.1:1\"\n[[routes]]\nprefix=\"/a\"\nservice=\"a\"\n",
		"[[services.instances]]\nid=\"x\"\n[[services]]\nname=\"a\"\n",
		"[[services]]\nname=\"a\"\nfoo.bar=1\n[[services.instances]]\nid=\"x\"\naddr=\"1.1.1.1:1\"\n",
		"[[services]]\nname=\"a\"\n[services.breaker]\nerror_ratio=nan\n[services.limits]\nretry_budget=nan\n[[services.instances]]\nid=\"x\"\naddr=\"1.1.1.1:1\"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.ParseDir(data, "..")
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error is %T, want config.Problems: %v", err, err)
			}
			if len(ps) == 0 {
				t.Fatal("error is an empty Problems")
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for i, p := range ps {
				if p.Key == "" || p.Msg == "" {
					t.Fatalf("problem %d has no key or message: %#v", i, p)
				}
				if p.Line < 0 || p.Line > lines {
					t.Fatalf("problem %d: line %d outside the document's %d lines: %v", i, p.Line, lines, p)
				}
				if i > 0 && p.Line != 0 && (ps[i-1].Line == 0 || ps[i-1].Line > p.Line) {
					t.Fatalf("problems not in file order: %v before %v", ps[i-1], p)
				}
			}
			_ = ps.Error()
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		for i, r := range c.Routes {
			svc := c.Service(r.Service)
			if svc == nil {
				t.Fatalf("routes[%d] refers to unknown service %q", i, r.Service)
			}
			if r.Timeout.Duration <= 0 {
				t.Fatalf("routes[%d] timeout %v", i, r.Timeout.Duration)
			}
		}
		for i, s := range c.Services {
			total := 0
			if n := len(s.Instances); n == 0 || n > config.MaxInstances {
				t.Fatalf("services[%d] has %d instances", i, n)
			}
			for j, in := range s.Instances {
				if in.Weight == nil || *in.Weight < 0 || *in.Weight > 1000 {
					t.Fatalf("services[%d].instances[%d] weight %v", i, j, in.Weight)
				}
				total += *in.Weight
			}
			if total == 0 {
				t.Fatalf("services[%d] has only zero weights", i)
			}
			if r := s.Breaker.ErrorRatio; !(r >= 0 && r <= 1) {
				t.Fatalf("services[%d] error_ratio %v", i, r)
			}
			if r := s.Limits.RetryBudget; r == nil || !(*r >= 0 && *r <= 1) {
				t.Fatalf("services[%d] retry_budget %v", i, r)
			}
		}
	})
}

// FuzzPathPrefixEndFold: matching ignoring ASCII case is matching the
// lower-cased path and prefix, with the same end.
func FuzzPathPrefixEndFold(f *testing.F) {
	for _, s := range [][2]string{{"/API/v1;x/Users/7", "/api/v1/users"}, {"/a", "/"}, {"/Ab;c", "/aB"}, {"/x/Y", "/X/y/"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, prefix string) {
		if strings.Contains(prefix, ";") {
			return // prefixes hold no ';' (checkPath)
		}
		end, ok := config.PathPrefixEnd(path, prefix, true)
		lend, lok := config.PathPrefixEnd(asciiLower(path), asciiLower(prefix), false)
		if ok != lok || ok && end != lend {
			t.Fatalf("PathPrefixEnd(%q, %q, fold) = %d, %v; lower-cased: %d, %v", path, prefix, end, ok, lend, lok)
		}
	})
}

// asciiLower lower-cases A-Z only, byte by byte (strings.ToLower would also
// rewrite invalid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
