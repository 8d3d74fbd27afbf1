package main

import (
	"fmt"
	"io"
)

// stealRetries bounds how often one pair is run again for the host's steal (runPair).
const stealRetries = 2

// runPair runs one round of each arm, A then B, with round. When the hypervisor kept our CPUs
// from running for more than maxSteal % of either round's CPU time (host steal), the pair
// measured the host's other tenants as much as our arms, and unequally: it is run again, whole,
// up to stealRetries times. The choice looks at the host alone, never at a result, and the pair
// that is kept is the last one run, whatever its steal. maxSteal 0 keeps every first pair. Each
// round run is shown; out gets a line for each pair run again.
func runPair(out io.Writer, maxSteal float64, round func(i int) (Round, error), show func(i int, r Round)) ([2]Round, error) {
	var rs [2]Round
	for try := 0; ; try++ {
		for i := range rs {
			r, err := round(i)
			if err != nil {
				return rs, err
			}
			show(i, r)
			rs[i] = r
		}
		sa, sb := stealShare(rs[0]), stealShare(rs[1])
		if maxSteal <= 0 || max(sa, sb) <= maxSteal {
			return rs, nil
		}
		if try == stealRetries {
			fmt.Fprintf(out, "  (host steal %.0f %% and %.0f %%, over --max-steal %.0f %%: kept after %d runs of this pair)\n", sa, sb, maxSteal, try+1)
			return rs, nil
		}
		fmt.Fprintf(out, "  (host steal %.0f %% and %.0f %%, over --max-steal %.0f %%: this pair runs again)\n", sa, sb, maxSteal)
	}
}
