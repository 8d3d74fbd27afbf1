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
