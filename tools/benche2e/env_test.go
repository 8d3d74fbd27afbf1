package main

import (
	"io"
	"slices"
	"testing"
)

// TestNodeGroup keeps exporters out of the groups whose CPU and keys the scenarios use: read-cold
// evicts users on every "cache redis" node, and redis1-exporter is no Redis.
func TestNodeGroup(t *testing.T) {
	for _, tc := range []struct{ node, want string }{
		{"redis1", "cache redis"},
		{"redis3", "cache redis"},
		{"redis1-exporter", "exporters"},
		{"queue-primary-exporter", "exporters"},
		{"zkexporter", "exporters"},
		{"redismon-1", "redismon"},
		{"queue-primary", "queue redis"},
		{"postsvc-2", "postsvcd"},
	} {
		if got := nodeGroup(tc.node); got != tc.want {
			t.Errorf("nodeGroup(%q): got %q, want %q", tc.node, got, tc.want)
		}
	}
}

// TestParseSameLoad: --same-load takes parts of the saturation rate in (0, 1]; the default is a
// curve from half to nine tenths; empty means no same-load rounds; anything else is refused.
func TestParseSameLoad(t *testing.T) {
	noEnv := func(string) string { return "" }
	o, err := parse(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 0.75, 0.9}; !slices.Equal(o.sameLoad, want) {
		t.Errorf("default --same-load = %v, want %v", o.sameLoad, want)
	}
	for arg, want := range map[string][]float64{"": nil, "1": {1}, " 0.6 ,0.8": {0.6, 0.8}} {
		o, err := parse([]string{"--same-load", arg}, noEnv, io.Discard)
		if err != nil {
			t.Errorf("--same-load %q: %v", arg, err)
		} else if !slices.Equal(o.sameLoad, want) {
			t.Errorf("--same-load %q = %v, want %v", arg, o.sameLoad, want)
		}
	}
	for _, bad := range []string{"0", "1.5", "-0.5", "half", "NaN", "0.5,,x"} {
		if _, err := parse([]string{"--same-load", bad}, noEnv, io.Discard); err == nil {
			t.Errorf("--same-load %q was accepted", bad)
		}
	}
}
