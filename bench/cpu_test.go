package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want procStat
		bad  bool
	}{
		{name: "nginx master", line: "1234 (nginx) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 50 10 5 20 0 1 0 100 1000 200 18446744073709551615",
			want: procStat{PID: 1234, PPID: 1, Ticks: 150 + 50 + 10 + 5}},
		{name: "spaces and parens in comm", line: "42 (a (b) c) R 7 42 42 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1",
			want: procStat{PID: 42, PPID: 7, Ticks: 7}},
		{name: "short", line: "42 (x) R 7 42", bad: true},
		{name: "no comm", line: "42 x R 7", bad: true},
		{name: "bad number", line: "42 (x) R 7 42 42 0 -1 0 0 0 0 0 x 4 0 0 20 0 1 0 1 1 1", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.line))
			if tt.bad {
				if err == nil {
					t.Fatalf("parsed %+v, want error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestTreeTicks(t *testing.T) {
	procs := []procStat{
		{PID: 1, PPID: 0, Ticks: 1000},
		{PID: 10, PPID: 1, Ticks: 5},   // nginx master
		{PID: 11, PPID: 10, Ticks: 40}, // worker
		{PID: 12, PPID: 10, Ticks: 60}, // worker
		{PID: 13, PPID: 12, Ticks: 1},  // grandchild
		{PID: 20, PPID: 1, Ticks: 500}, // unrelated
	}
	tests := []struct {
		name string
		root int
		want int64
	}{
		{name: "master and all descendants", root: 10, want: 106},
		{name: "leaf", root: 11, want: 40},
		{name: "gone", root: 99, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := treeTicks(procs, tt.root); got != tt.want {
				t.Fatalf("treeTicks(%d) = %d, want %d", tt.root, got, tt.want)
			}
		})
	}
}

func TestReadProcsFakeRoot(t *testing.T) {
	root := t.TempDir()
	for pid, line := range map[string]string{
		"100":  "100 (master) S 1 0 0 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 1 1 1",
		"101":  "101 (worker) S 100 0 0 0 -1 0 0 0 0 0 30 20 0 0 20 0 1 0 1 1 1",
		"self": "not a pid dir",
	} {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	procs, err := readProcs(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 2 {
		t.Fatalf("procs = %+v", procs)
	}
	if got := treeTicks(procs, 100); got != 70 {
		t.Fatalf("treeTicks = %d, want 70", got)
	}
}

// TestCPUSecondsCountsChildren measures a shell whose child burns CPU: the
// child's time must be counted under the parent's tree.
func TestCPUSecondsCountsChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	cmd := exec.Command(sh, "-c", "sh -c 'while :; do :; done' & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		procs, _ := readProcs("/proc")
		for _, p := range procs {
			if p.PPID == cmd.Process.Pid {
				_ = syscallKill(p.PID)
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	before := treeUsage(cmd.Process.Pid)[0].CPU
	time.Sleep(300 * time.Millisecond)
	got := treeUsage(cmd.Process.Pid)[0].CPU - before
	if got < 0.05 {
		t.Fatalf("child's CPU not counted: %.2fs over 300ms of busy loop", got)
	}
}

// TestParseProcCounters covers the two /proc counter parsers: syscr+syscw
// from /proc/PID/io and voluntary_ctxt_switches from a task's status.
func TestParseProcCounters(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) (int64, error)
		in    string
		want  int64
		bad   bool
	}{
		{name: "io file", parse: parseProcIO, in: "rchar: 100\nwchar: 200\nsyscr: 30\nsyscw: 12\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n", want: 42},
		{name: "io missing syscw", parse: parseProcIO, in: "syscr: 30\n", bad: true},
		{name: "io bad number", parse: parseProcIO, in: "syscr: x\nsyscw: 1\n", bad: true},
		{name: "status file", parse: parseVoluntarySwitches, in: "Name:\tfastgate\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t56\n", want: 1234},
		{name: "status missing", parse: parseVoluntarySwitches, in: "Name:\tx\nnonvoluntary_ctxt_switches:\t56\n", bad: true},
		{name: "status bad number", parse: parseVoluntarySwitches, in: "voluntary_ctxt_switches:\tx\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse([]byte(tt.in))
			if tt.bad {
				if err == nil {
					t.Fatalf("parsed %d, want error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestTreeUsageCountsSyscalls checks that this process's own syscalls show.
func TestTreeUsageCountsSyscalls(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skip("no /proc/self/io")
	}
	before := treeUsage(os.Getpid())[0].Syscalls
	for range 100 {
		if _, err := os.ReadFile("/proc/self/stat"); err != nil {
			t.Fatal(err)
		}
	}
	if got := treeUsage(os.Getpid())[0].Syscalls - before; got < 100 {
		t.Fatalf("%d syscalls counted for 100 file reads", got)
	}
}

// TestTreeUsageCountsSwitches checks that a thread of this process that
// sleeps repeatedly shows as voluntary switches. The sleep is the system
// call itself, so the thread blocks whatever the Go scheduler is doing.
func TestTreeUsageCountsSwitches(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc/self/task")
	}
	before := treeUsage(os.Getpid())[0].Switches
	for range 20 {
		ts := syscall.NsecToTimespec(int64(time.Millisecond))
		if err := syscall.Nanosleep(&ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := treeUsage(os.Getpid())[0].Switches - before; got < 20 {
		t.Fatalf("%d voluntary switches counted for 20 sleeps", got)
	}
}
