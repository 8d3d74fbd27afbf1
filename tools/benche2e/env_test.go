package main

import "testing"

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
