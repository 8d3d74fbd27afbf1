package main

import (
	"math"
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
