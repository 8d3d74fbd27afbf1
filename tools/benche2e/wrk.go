package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what one wrk run reports.
type WrkResult struct {
	Requests int64         // responses received
	Non2xx   int64         // of which not 2xx
	Errors   int64         // socket errors (connect, read, write, timeout)
	Duration time.Duration // the measured run
	P50, P99 time.Duration
	CPU      time.Duration // wrk's own user+system time
}

// OK returns the number of 2xx responses.
func (r WrkResult) OK() int64 { return r.Requests - r.Non2xx }

// targetsLua spreads wrk's threads over several servers: thread i talks to targets[i mod n].
const targetsLua = `
local targets = {%s}
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  local t = targets[(nthreads - 1) %% #targets + 1]
  local host, port = t:match("^(.+):(%%d+)$")
  thread.addr = wrk.lookup(host, port)[1]
  thread:set("tid", nthreads)
end
`

// runWrk runs wrk with threads threads and conns connections for d against targets, with script
// (a Lua body defining request() or nothing for a plain GET of path).
func runWrk(ctx context.Context, dir string, targets []string, path, script string, threads, conns int, d time.Duration) (WrkResult, error) {
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = strconv.Quote(t)
	}
	lua := fmt.Sprintf(targetsLua, strings.Join(quoted, ", ")) + script
	f := filepath.Join(dir, "bench.lua")
	if err := os.WriteFile(f, []byte(lua), 0o644); err != nil {
		return WrkResult{}, fmt.Errorf("writing wrk script: %w", err)
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", "--timeout", "10s", "-s", f,
		"http://"+targets[0]+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, out)
	}
	if ps := cmd.ProcessState; ps != nil {
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	return r, nil
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkErrors  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
)

func parseWrk(out string) (WrkResult, error) {
	var r WrkResult
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output has no request count")
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Duration = parseDur(m[2], m[3])
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	for _, m := range wrkPercent.FindAllStringSubmatch(out, -1) {
		d := parseDur(m[2], m[3])
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if r.P99 == 0 {
		return r, fmt.Errorf("wrk output has no latency distribution")
	}
	return r, nil
}

func parseDur(num, unit string) time.Duration {
	f, _ := strconv.ParseFloat(num, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}
