package main

import (
	"testing"
	"time"
)

func TestCoverageSettleFromCommandLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"--listen", "127.0.0.1:1", "--coverage-settle", "3s"}, 3 * time.Second},
		{[]string{"-coverage-settle=250ms", "--zk", "x"}, 250 * time.Millisecond},
		{[]string{"--listen", "127.0.0.1:1", "--coverage-ttl", "9s"}, 15 * time.Second}, // postsvcd's default
	} {
		got, err := coverageSettle(c.args)
		if err != nil || got != c.want {
			t.Errorf("coverageSettle(%q) = %v, %v; want %v", c.args, got, err, c.want)
		}
	}
	if _, err := coverageSettle([]string{"--coverage-settle", "soon"}); err == nil {
		t.Error("coverageSettle accepted a duration that does not parse")
	}
}
