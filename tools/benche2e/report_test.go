package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStealMetrics: a round whose host took a quarter of its CPU time reports 25 % steal, and
// its rate with steal added back is the rate over the three quarters it had.
func TestStealMetrics(t *testing.T) {
	r := Round{Ops: 1000, Elapsed: time.Second, Capacity: 1500 * time.Millisecond, Steal: 500 * time.Millisecond}
	got := map[string]float64{}
	for _, m := range baseMetrics("post") {
		got[m.name] = m.f(r)
	}
	for name, want := range map[string]float64{
		"host steal % (not counted)": 25,
		"posts/s incl. drain":        1000,
		"posts/s, steal added back":  1000 / 0.75,
	} {
		if g, ok := got[name]; !ok || math.Abs(g-want) > 1e-9 {
			t.Errorf("%s = %v (present: %v), want %v", name, g, ok, want)
		}
	}
	if s := stealShare(Round{}); s != 0 {
		t.Errorf("steal share of an empty round = %v, want 0", s)
	}
}

// TestPacedReportPerProcess: the paced report gives each process group's CPU per op, the median
// over each arm's rounds, with the median of the per-pair ratios.
func TestPacedReportPerProcess(t *testing.T) {
	round := func(ops int64, postsvcd, replica time.Duration) Round {
		return Round{Ops: ops, Elapsed: time.Second, Wrk: WrkResult{Duration: time.Second},
			Procs: map[string]time.Duration{"postsvcd": postsvcd, "mariadb-replica": replica}}
	}
	rounds := [2][]Round{
		{round(1000, 100*time.Millisecond, 10*time.Millisecond), round(1000, 300*time.Millisecond, 30*time.Millisecond), round(1000, 200*time.Millisecond, 20*time.Millisecond)},
		{round(1000, 200*time.Millisecond, 100*time.Millisecond), round(1000, 300*time.Millisecond, 100*time.Millisecond), round(1000, 400*time.Millisecond, 100*time.Millisecond)},
	}
	var out strings.Builder
	pacedReport(&out, "writes", "post", [2]string{"back", "through"}, 1000, 64, rounds)
	lines := map[string][]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 4 {
			lines[f[0]] = f[1:]
		}
	}
	// postsvcd: back 100, 300, 200 µs (median 200), through 200, 300, 400 (300); pair ratios
	// 0.5, 1, 0.5 (median 0.5). The replica: 20 against 100, ratios 0.1, 0.3, 0.2.
	for g, want := range map[string][]string{
		"postsvcd":        {"200.00", "300.00", "0.50"},
		"mariadb-replica": {"20.00", "100.00", "0.20"},
	} {
		if got := lines[g]; !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q\n%s", g, got, want, out.String())
		}
	}
	if !strings.Contains(out.String(), "CPU µs per post by process:") {
		t.Errorf("no per-process heading:\n%s", out.String())
	}
}
