package main

import (
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 1s test @ http://127.0.0.1:28000/api/v1/posts
  2 threads and 64 connections
  Latency Distribution
     50%    9.71ms
     75%   14.00ms
     90%   19.88ms
     99%    1.02s
  1067 requests in 1.05s, 330.93KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   1018.34
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{Requests: 1067, Non2xx: 5, Errors: 3, Duration: 1050 * time.Millisecond,
		P50: 9710 * time.Microsecond, P99: 1020 * time.Millisecond}
	if r != want {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("Running 1s test\n  0 requests in 1.00s\n"); err == nil {
		t.Error("parseWrk accepted output without a latency distribution")
	}
}

// TestParseMachineCPU: busy time is user, nice, system, irq and softirq; steal is apart from it
// and from the total, and guest (already in user) is not counted again.
func TestParseMachineCPU(t *testing.T) {
	//               user nice system idle iowait irq softirq steal guest guest_nice
	m, err := parseMachineCPU("cpu  100 2 30 500 7 1 4 60 50 0")
	if err != nil {
		t.Fatal(err)
	}
	want := machineCPU{busy: 137 * clockTick, total: 644 * clockTick, steal: 60 * clockTick}
	if m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := parseMachineCPU(bad); err == nil {
			t.Errorf("%q parsed without an error", bad)
		}
	}
}
