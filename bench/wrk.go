package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkRun is one closed-loop wrk invocation.
type wrkRun struct {
	Bin      string
	URL      string
	Threads  int
	Conns    int
	Duration time.Duration
	// Timeout is wrk's per-request timeout, counted as a timeout error.
	Timeout time.Duration
	// Script is the Lua script path (see writeWrkScript).
	Script string
	// Headers are sent with every request, "Name: value" (wrk -H).
	Headers []string
	// Cursor is the token cursor file of a script that sends the next
	// token on each request (scenario.Tokens > 0); it goes after the URL,
	// with the thread count, to the script's init(args) [""]: none.
	Cursor string
}

// args are wrk's command line; the duration is whole seconds, at least 1.
func (w wrkRun) args() []string {
	secs := max(1, int(math.Ceil(w.Duration.Seconds())))
	threads := max(1, min(w.Threads, w.Conns))
	args := []string{
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(w.Conns),
		"-d", strconv.Itoa(secs) + "s",
		"--timeout", strconv.Itoa(max(1, int(w.Timeout.Seconds()))) + "s",
		"--latency",
		"-s", w.Script,
	}
	for _, h := range w.Headers {
		args = append(args, "-H", h)
	}
	args = append(args, w.URL)
	if w.Cursor != "" {
		args = append(args, strconv.Itoa(threads), w.Cursor)
	}
	return args
}

// run executes wrk and parses its report. The returned text is wrk's output.
func (w wrkRun) run(ctx context.Context) (sample, string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.Bin, w.args()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return sample{}, string(out), fmt.Errorf("wrk: %v: %s", err, strings.TrimSpace(string(out)))
	}
	s, err := parseWrk(string(out))
	return s, string(out), err
}

// writeWrkScript writes the Lua script every wrk run uses into dir: it sets
// the scenario's method and body, and its done() prints exact counters and
// the percentile spectrum (wrk's --latency stops at p99) as FGBENCH lines.
// With sc.Tokens, it also sends the next token of dir's tokenFile on each
// request (wrkTokenScript).
func writeWrkScript(dir string, sc scenario) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "wrk.method = %q\n", sc.Method)
	if sc.ReqBody > 0 {
		fmt.Fprintf(&b, "wrk.body = string.rep(\"x\", %d)\n", sc.ReqBody)
		b.WriteString("wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n")
	}
	if sc.Tokens > 0 {
		fmt.Fprintf(&b, "\nlocal tokenFile = %q\n", filepath.Join(dir, tokenFile))
		b.WriteString(wrkTokenScript)
	}
	b.WriteString(`
done = function(summary, latency, requests)
`)
	if sc.Tokens > 0 {
		b.WriteString("  saveCursor()\n")
	}
	b.WriteString(`  local e = summary.errors
  io.write(string.format("FGBENCH requests %d\n", summary.requests))
  io.write(string.format("FGBENCH duration_us %d\n", summary.duration))
  io.write(string.format("FGBENCH errors %d %d %d %d %d\n", e.connect, e.read, e.write, e.timeout, e.status))
  io.write(string.format("FGBENCH max_us %d\n", latency.max))
`)
	for _, p := range spectrumPcts {
		fmt.Fprintf(&b, "  io.write(string.format(\"FGBENCH p %g %%d\\n\", latency:percentile(%g)))\n", p, p)
	}
	b.WriteString("end\n")
	path := filepath.Join(dir, "wrk-"+sc.Name+".lua")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// wrkTokenScript sends the next token on each request, in the order
// tokens.go describes. setup() numbers the threads (in wrk's main Lua
// state); each thread's init(args) reads the tokens and the cursor (args:
// the thread count, the cursor file) and starts at cursor + its number;
// request() sets the Authorization header and formats the request with
// wrk.format; saveCursor(), from done(), saves the furthest position any
// thread reached, for the target's next run.
const wrkTokenScript = `local threads = {}
setup = function(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function cursorAt(path)
  local f = io.open(path, "r")
  if not f then return 0 end
  local n = f:read("*n")
  f:close()
  return assert(n, path .. ": bad token cursor")
end

local tokens, stride = {}, 1
init = function(args)
  stride, cursor = assert(tonumber(args[1]), "no thread count"), assert(args[2], "no cursor file")
  for line in io.lines(tokenFile) do tokens[#tokens + 1] = "Bearer " .. line end
  assert(#tokens > 0, tokenFile .. ": no tokens")
  pos = cursorAt(cursor) + id
end

request = function()
  wrk.headers["Authorization"] = tokens[pos % #tokens + 1]
  pos = pos + stride
  return wrk.format()
end

local function saveCursor()
  local next = 0
  for _, t in ipairs(threads) do next = math.max(next, t:get("pos")) end
  local f = assert(io.open(threads[1]:get("cursor"), "w"))
  f:write(string.format("%d\n", next))
  f:close()
end
`

var (
	wrkRequestsRe = regexp.MustCompile(`^\s*(\d+) requests in ([\d.]+[a-z]+)`)
	wrkSocketRe   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xxRe   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkRPSRe      = regexp.MustCompile(`^Requests/sec:\s+([\d.]+)`)
	wrkPctRe      = regexp.MustCompile(`^\s*([\d.]+)%\s+([\d.]+[a-z]+)\s*$`)
	wrkLatencyRe  = regexp.MustCompile(`^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)`)
)

var errNoWrkSummary = errors.New("bench: no wrk summary in output")

// parseWrk reads wrk's report: the human summary (with --latency) and, when
// present, the FGBENCH lines of the suite's Lua done(), which take
// precedence because they are exact and reach p99.9.
func parseWrk(out string) (sample, error) {
	var s sample
	var seen, exact bool
	var exactSpec []point
	var exactDur float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "FGBENCH "); ok {
			if err := parseFGLine(f, &s, &exactSpec, &exactDur); err != nil {
				return sample{}, err
			}
			exact = true
			continue
		}
		if m := wrkRequestsRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			d, err := parseWrkDuration(m[2])
			if err != nil {
				return sample{}, err
			}
			s.Requests, s.Seconds, seen = n, d.Seconds(), true
		} else if m := wrkSocketRe.FindStringSubmatch(line); m != nil {
			s.Errors.Connect = atoi64(m[1])
			s.Errors.Read = atoi64(m[2])
			s.Errors.Write = atoi64(m[3])
			s.Errors.Timeout = atoi64(m[4])
		} else if m := wrkNon2xxRe.FindStringSubmatch(line); m != nil {
			s.Errors.Status = atoi64(m[1])
		} else if m := wrkRPSRe.FindStringSubmatch(line); m != nil {
			s.RPS, _ = strconv.ParseFloat(m[1], 64)
		} else if m := wrkPctRe.FindStringSubmatch(line); m != nil {
			pct, _ := strconv.ParseFloat(m[1], 64)
			d, err := parseWrkDuration(m[2])
			if err != nil {
				return sample{}, err
			}
			s.Spectrum = append(s.Spectrum, point{Pct: pct, US: us(d)})
		} else if m := wrkLatencyRe.FindStringSubmatch(line); m != nil {
			if d, err := parseWrkDuration(m[3]); err == nil {
				s.MaxUS = us(d)
			}
		}
	}
	if !seen && !exact {
		return sample{}, errNoWrkSummary
	}
	if exact {
		s.Spectrum = exactSpec
		if exactDur > 0 {
			s.Seconds = exactDur
		}
	}
	// wrk counts every answer as a request; the suite counts the good
	// ones (2xx, 3xx), as the open loop does, so that a target answering
	// errors fast neither gains req/s nor spreads its CPU over them.
	total := s.Requests
	s.Requests = max(total-s.Errors.Status, 0)
	switch {
	case s.Seconds > 0 && (exact || s.RPS == 0):
		s.RPS = float64(s.Requests) / s.Seconds
	case total > 0: // wrk's Requests/sec, over its exact run time
		s.RPS *= float64(s.Requests) / float64(total)
	}
	s.P50US = percentileOf(s.Spectrum, 50)
	s.P90US = percentileOf(s.Spectrum, 90)
	s.P99US = percentileOf(s.Spectrum, 99)
	s.P999US = percentileOf(s.Spectrum, 99.9)
	return s, nil
}

// parseFGLine applies one FGBENCH line (prefix removed) to s.
func parseFGLine(f string, s *sample, spec *[]point, dur *float64) error {
	fields := strings.Fields(f)
	bad := fmt.Errorf("bench: bad wrk script line %q", f)
	if len(fields) < 2 {
		return bad
	}
	nums := make([]float64, len(fields)-1)
	for i, v := range fields[1:] {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return bad
		}
		nums[i] = x
	}
	switch fields[0] {
	case "requests":
		s.Requests = int64(nums[0])
	case "duration_us":
		*dur = nums[0] / 1e6
	case "max_us":
		s.MaxUS = nums[0]
	case "errors":
		if len(nums) != 5 {
			return bad
		}
		s.Errors.Connect, s.Errors.Read, s.Errors.Write = int64(nums[0]), int64(nums[1]), int64(nums[2])
		s.Errors.Timeout, s.Errors.Status = int64(nums[3]), int64(nums[4])
	case "p":
		if len(nums) != 2 {
			return bad
		}
		*spec = append(*spec, point{Pct: nums[0], US: nums[1]})
	default:
		return bad
	}
	return nil
}

// parseWrkDuration parses wrk's time format: a number followed by us, ms,
// s, m or h ("608.00us", "1.23ms", "2.00s", "1.00m").
func parseWrkDuration(v string) (time.Duration, error) {
	i := strings.IndexFunc(v, func(r rune) bool { return r >= 'a' && r <= 'z' })
	if i <= 0 {
		return 0, fmt.Errorf("bench: bad wrk time %q", v)
	}
	x, err := strconv.ParseFloat(v[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("bench: bad wrk time %q", v)
	}
	var unit time.Duration
	switch v[i:] {
	case "us":
		unit = time.Microsecond
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	default:
		return 0, fmt.Errorf("bench: bad wrk time unit %q", v)
	}
	return time.Duration(x * float64(unit)), nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
