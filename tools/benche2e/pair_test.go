package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// stolen is a round in which the host took pct % of the CPU time.
func stolen(pct int64) Round {
	return Round{Capacity: time.Duration(100-pct) * time.Second, Steal: time.Duration(pct) * time.Second, Ops: pct}
}

func TestRunPairRunsAgainOnlyForTheHostsSteal(t *testing.T) {
	tests := []struct {
		name     string
		steal    []int64 // the steal of each round run, in order
		maxSteal float64
		runs     int // rounds run
		kept     [2]int64
		reruns   int // "runs again" lines
		gaveUp   bool
	}{
		{"quiet host", []int64{3, 5}, 15, 2, [2]int64{3, 5}, 0, false},
		{"B stolen once", []int64{3, 40, 4, 6}, 15, 4, [2]int64{4, 6}, 1, false},
		{"A stolen once", []int64{30, 2, 9, 15}, 15, 4, [2]int64{9, 15}, 1, false},
		{"stolen throughout", []int64{30, 30, 40, 40, 50, 20}, 15, 6, [2]int64{50, 20}, 2, true},
		{"check off", []int64{60, 60}, 0, 2, [2]int64{60, 60}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			runs, shown := 0, 0
			pair, err := runPair(&out, tt.maxSteal, func(i int) (Round, error) {
				if want := runs % 2; i != want {
					t.Fatalf("round %d ran arm %d, want %d (A then B)", runs, i, want)
				}
				r := stolen(tt.steal[runs])
				runs++
				return r, nil
			}, func(int, Round) { shown++ })
			if err != nil {
				t.Fatal(err)
			}
			if runs != tt.runs || shown != tt.runs {
				t.Fatalf("ran %d rounds and showed %d, want %d", runs, shown, tt.runs)
			}
			if got := [2]int64{pair[0].Ops, pair[1].Ops}; got != tt.kept {
				t.Fatalf("kept rounds with steal %v, want %v", got, tt.kept)
			}
			if n := strings.Count(out.String(), "runs again"); n != tt.reruns {
				t.Fatalf("%d rerun lines, want %d:\n%s", n, tt.reruns, out.String())
			}
			if gave := strings.Contains(out.String(), "kept after 3 runs"); gave != tt.gaveUp {
				t.Fatalf("gave-up line %v, want %v:\n%s", gave, tt.gaveUp, out.String())
			}
		})
	}
}
