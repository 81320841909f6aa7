package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; it is 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procStat holds the fields of /proc/PID/stat the suite needs.
type procStat struct {
	PID, PPID int
	// Ticks is utime+stime+cutime+cstime: the process's own CPU time plus
	// that of its exited, reaped children.
	Ticks int64
}

// parseProcStat parses one /proc/PID/stat line. The command name may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, errors.New("bench: malformed /proc stat")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("bench: malformed /proc stat pid: %w", err)
	}
	// Fields after ')' start at field 3 (state); ppid is 4, utime 14,
	// stime 15, cutime 16, cstime 17.
	f := bytes.Fields(b[end+1:])
	if len(f) < 15 {
		return procStat{}, errors.New("bench: short /proc stat")
	}
	st := procStat{PID: pid}
	if st.PPID, err = strconv.Atoi(string(f[1])); err != nil {
		return procStat{}, err
	}
	for _, i := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return procStat{}, err
		}
		st.Ticks += v
	}
	return st, nil
}

// readProcs reads the stat of every process under procRoot ("/proc").
// Processes that exit while being read are skipped.
func readProcs(procRoot string) ([]procStat, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	out := make([]procStat, 0, len(ents))
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue
		}
		if st, err := parseProcStat(b); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// treePIDs returns root and all its descendants that are in procs.
func treePIDs(procs []procStat, root int) []int {
	children := map[int][]int{}
	found := false
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p.PID)
		found = found || p.PID == root
	}
	if !found {
		return nil
	}
	var out []int
	stack := []int{root}
	seen := map[int]bool{}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		stack = append(stack, children[pid]...)
	}
	return out
}

// treeTicks sums Ticks over root and all its descendants. Live children
// (nginx workers) are counted through their own stat; exited ones through
// their parent's cutime/cstime, so nothing is counted twice.
func treeTicks(procs []procStat, root int) int64 {
	ticks := make(map[int]int64, len(procs))
	for _, p := range procs {
		ticks[p.PID] = p.Ticks
	}
	var sum int64
	for _, pid := range treePIDs(procs, root) {
		sum += ticks[pid]
	}
	return sum
}

// parseProcIO returns syscr+syscw from a /proc/PID/io file: the read- and
// write-family system calls the process has made.
func parseProcIO(b []byte) (int64, error) {
	var n int64
	var seen int
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || (string(k) != "syscr" && string(k) != "syscw") {
			continue
		}
		x, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, err
		}
		n += x
		seen++
	}
	if seen != 2 {
		return 0, errors.New("bench: no syscr/syscw in /proc io")
	}
	return n, nil
}

// parseVoluntarySwitches returns voluntary_ctxt_switches from a
// /proc/PID/task/TID/status file: how often the thread blocked (waiting for
// I/O, a futex or a timer) and was later woken.
func parseVoluntarySwitches(b []byte) (int64, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && string(k) == "voluntary_ctxt_switches" {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, errors.New("bench: no voluntary_ctxt_switches in /proc status")
}

// processSwitches sums voluntary context switches over pid's live threads
// (the kernel keeps the counts per thread; /proc/PID/status shows only the
// main thread's).
func processSwitches(pid int) int64 {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status")); err == nil {
			if v, err := parseVoluntarySwitches(b); err == nil {
				n += v
			}
		}
	}
	return n
}

// usage is a process tree's resource counters at one instant.
type usage struct {
	CPU      float64 // seconds
	Syscalls int64   // read- and write-family calls of the live processes
	Switches int64   // voluntary context switches of the live threads
}

func (u usage) sub(o usage) usage {
	return usage{u.CPU - o.CPU, u.Syscalls - o.Syscalls, u.Switches - o.Switches}
}

// treeUsage samples each root's process tree (zero for a root of 0). One
// /proc scan serves all roots.
func treeUsage(roots ...int) []usage {
	out := make([]usage, len(roots))
	procs, err := readProcs("/proc")
	if err != nil {
		return out
	}
	for i, r := range roots {
		if r <= 0 {
			continue
		}
		out[i].CPU = float64(treeTicks(procs, r)) / clockTicks
		for _, pid := range treePIDs(procs, r) {
			if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "io")); err == nil {
				if n, err := parseProcIO(b); err == nil {
					out[i].Syscalls += n
				}
			}
			out[i].Switches += processSwitches(pid)
		}
	}
	return out
}
