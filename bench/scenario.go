package main

import (
	"fmt"
	"strings"
)

// scenario is one workload the suite can run. Adding a scenario is adding
// one entry to scenarios; a feature the gateway lacks is marked Pending and
// reported as skipped rather than run.
type scenario struct {
	// Name is what a user passes to -scenario.
	Name string
	// Method is the HTTP method ["GET"].
	Method string
	// Path is the request path sent to every target ["/"].
	Path string
	// ReqBody is the request body size in bytes [0: no body].
	ReqBody int
	// RespBody is the size each stub pads its answers to.
	RespBody int
	// Conns is the number of client connections.
	Conns int
	// Pending, when set, is why the scenario cannot run yet.
	Pending string
}

const pendingFeature = "feature not built yet"

// scenarios lists every known scenario in the order the suite runs them.
func scenarios() []scenario {
	return []scenario{
		{Name: "proxy-small", Method: "GET", Path: "/", RespBody: 256, Conns: 64},
		{Name: "proxy-conns", Method: "GET", Path: "/", RespBody: 256, Conns: 512},
		{Name: "proxy-large", Method: "GET", Path: "/", RespBody: 16 << 10, Conns: 64},
		{Name: "post-4k", Method: "POST", Path: "/", ReqBody: 4 << 10, RespBody: 256, Conns: 64},
		{Name: "aggregate-4", Method: "GET", Path: "/", RespBody: 256, Conns: 64, Pending: pendingFeature},
		{Name: "cached", Method: "GET", Path: "/", RespBody: 256, Conns: 64, Pending: pendingFeature},
		{Name: "jwt", Method: "GET", Path: "/", RespBody: 256, Conns: 64, Pending: pendingFeature},
	}
}

// Describe is a one-line human description of the workload.
func (s scenario) Describe() string {
	var b strings.Builder
	b.WriteString(s.Method)
	if s.ReqBody > 0 {
		fmt.Fprintf(&b, " with a %s body", fmtBytes(s.ReqBody))
	}
	fmt.Fprintf(&b, ", %s response, %d connections", fmtBytes(s.RespBody), s.Conns)
	return b.String()
}

// selectScenarios resolves a comma-separated list of names ("all" or empty
// for every known scenario), keeping the table's order.
func selectScenarios(list string) ([]scenario, error) {
	all := scenarios()
	if list == "" || list == "all" {
		return all, nil
	}
	want := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	var out []scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		var unknown, known []string
		for n := range want {
			unknown = append(unknown, n)
		}
		for _, s := range all {
			known = append(known, s.Name)
		}
		return nil, fmt.Errorf("unknown scenario %s (known: %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
