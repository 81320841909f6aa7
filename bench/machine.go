package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes the host a run was measured on.
type machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MHz      string `json:"mhz,omitempty"`
	MemoryKB int64  `json:"memory_kb,omitempty"`
	Kernel   string `json:"kernel,omitempty"`
	Load     string `json:"loadavg_at_start,omitempty"`
	LoadEnd  string `json:"loadavg_at_end,omitempty"`
}

// readMachine gathers machine info from /proc; missing files leave fields empty.
func readMachine() machine {
	m := machine{Cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU, m.MHz = parseCPUInfo(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				m.MemoryKB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Load = loadAvg()
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// parseCPUInfo returns the first "model name" and "cpu MHz" of /proc/cpuinfo.
func parseCPUInfo(b []byte) (model, mhz string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		case "cpu MHz":
			if mhz == "" {
				mhz = strings.TrimSpace(v)
			}
		}
	}
	return model, mhz
}

// gitState returns HEAD's commit (or "unknown") and whether the tree differs.
func gitState(root string) (commit string, dirty bool) {
	commit = "unknown"
	if out, err := runQuiet(root, "git", "rev-parse", "--short=12", "HEAD"); err == nil {
		commit = strings.TrimSpace(out)
	}
	if out, err := runQuiet(root, "git", "status", "--porcelain"); err == nil {
		dirty = strings.TrimSpace(out) != ""
	}
	return commit, dirty
}

// toolVersion returns the first line a tool prints for its version flag.
func toolVersion(bin string, args ...string) string {
	if bin == "" {
		return ""
	}
	out, _ := runQuiet("", bin, args...)
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(line)
}

func runQuiet(dir, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
