package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSelectScenarios(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    string
		wantErr string
	}{
		{name: "all", list: "all", want: "proxy-small,proxy-conns,proxy-large,post-4k,aggregate-4,cached,jwt,jwt-verify"},
		{name: "empty is all", list: "", want: "proxy-small,proxy-conns,proxy-large,post-4k,aggregate-4,cached,jwt,jwt-verify"},
		{name: "table order kept", list: "post-4k, proxy-small", want: "proxy-small,post-4k"},
		{name: "jwt-verify alone", list: "jwt-verify", want: "jwt-verify"},
		{name: "both jwt rows", list: "jwt-verify,jwt", want: "jwt,jwt-verify"},
		{name: "no prefix match", list: "jwt-v", wantErr: "unknown scenario jwt-v"},
		{name: "unknown", list: "proxy-small,nope", wantErr: "unknown scenario nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectScenarios(tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != tt.want {
				t.Fatalf("got %v, want %s", names, tt.want)
			}
		})
	}
}

// TestScenarioTable pins the workloads issue 3 defines.
func TestScenarioTable(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		reqBody     int
		resp        int
		conns       int
		feature     feature
		latency     time.Duration
		unsupported string // peers skipped for want of the feature, sorted
		tokens      int
	}{
		{"proxy-small", "GET", 0, 256, 64, featureProxy, 0, "", 0},
		{"proxy-conns", "GET", 0, 256, 512, featureProxy, 0, "", 0},
		{"proxy-large", "GET", 0, 16 << 10, 64, featureProxy, 0, "", 0},
		{"post-4k", "POST", 4 << 10, 256, 64, featureProxy, 0, "", 0},
		{"aggregate-4", "GET", 0, 256, 64, featureAggregate, time.Millisecond, "haproxy,nginx", 0},
		{"cached", "GET", 0, 256, 64, featureCache, 0, "", 0},
		{"jwt", "GET", 0, 256, 64, featureJWT, 0, "nginx", 0},
		// 2×auth.SeenMax tokens for each of wrk's 2 threads (tokens.go).
		{"jwt-verify", "GET", 0, 256, 64, featureJWT, 0, "nginx", 65536},
	}
	all := scenarios()
	if len(all) != len(tests) {
		t.Fatalf("%d scenarios, want %d", len(all), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := all[i]
			var unsupported []string
			for p := range s.Unsupported {
				unsupported = append(unsupported, p)
			}
			slices.Sort(unsupported)
			if s.Name != tt.name || s.Method != tt.method || s.ReqBody != tt.reqBody || s.RespBody != tt.resp ||
				s.Conns != tt.conns || s.Pending != "" || s.Feature != tt.feature || s.StubLatency != tt.latency ||
				strings.Join(unsupported, ",") != tt.unsupported || s.Tokens != tt.tokens || s.Headers != nil || s.Bearers != nil {
				t.Fatalf("scenario %+v", s)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"proxy-small", "GET, 256 B response, 64 connections"},
		{"post-4k", "POST with a 4 KiB body, 256 B response, 64 connections"},
		{"aggregate-4", "GET /agg, an aggregate of 4 parts (GETs of distinct paths), 256 B per part, 64 connections, stub latency 1ms"},
		{"cached", "GET of one URL cached for 60s, 256 B response, 64 connections"},
		{"jwt", "GET with an ES256 bearer JWT verified, 256 B response, 64 connections"},
		{"jwt-verify", "GET with the next of 65536 ES256 bearer JWTs on each request (4x the gateway's cache of verified tokens: each verified), 256 B response, 64 connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := selectScenarios(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := sc[0].Describe(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(t *testing.T, c *cli)
	}{
		{name: "defaults", check: func(t *testing.T, c *cli) {
			if !c.opts.Closed || !c.opts.Open || !c.opts.AccessLog || c.opts.Rounds != 3 || len(c.opts.Targets) != 4 {
				t.Fatalf("defaults %+v", c.opts)
			}
		}},
		{name: "open only, logs off", args: []string{"-mode", "open", "-access-log", "off", "-targets", "gateway"}, check: func(t *testing.T, c *cli) {
			if c.opts.Closed || !c.opts.Open || c.opts.AccessLog || strings.Join(c.opts.Targets, ",") != "gateway" {
				t.Fatalf("opts %+v", c.opts)
			}
		}},
		{name: "fasthttp reference opted in", args: []string{"-targets", "gateway,fasthttp,nginx"}, check: func(t *testing.T, c *cli) {
			if strings.Join(c.opts.Targets, ",") != "gateway,fasthttp,nginx" {
				t.Fatalf("targets %v", c.opts.Targets)
			}
		}},
		{name: "unknown target", args: []string{"-targets", "envoy"}, wantErr: true},
		{name: "unknown mode", args: []string{"-mode", "both"}, wantErr: true},
		{name: "bad access-log", args: []string{"-access-log", "maybe"}, wantErr: true},
		{name: "zero rounds", args: []string{"-rounds", "0"}, wantErr: true},
		{name: "fraction above 1", args: []string{"-open-fraction", "1.5"}, wantErr: true},
		{name: "stray argument", args: []string{"proxy-small"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, &strings.Builder{})
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
