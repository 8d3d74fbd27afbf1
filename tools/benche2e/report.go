package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// metric is one line of the report: a value per round.
type metric struct {
	name string
	f    func(r Round) float64
}

func baseMetrics(unit string) []metric {
	return []metric{
		{"acknowledged/s (2xx)", func(r Round) float64 { return float64(r.Wrk.OK()) / r.Wrk.Duration.Seconds() }},
		{"p50 latency (ms)", func(r Round) float64 { return ms(r.Wrk.P50) }},
		{"p99 latency (ms)", func(r Round) float64 { return ms(r.Wrk.P99) }},
		{"non-2xx + socket errors", func(r Round) float64 { return float64(r.Wrk.Non2xx + r.Wrk.Errors) }},
		{unit + "s/s incl. drain", func(r Round) float64 { return float64(r.Ops) / r.Elapsed.Seconds() }},
		{"machine CPU µs/" + unit, func(r Round) float64 { return perOp(r.Machine, r.Ops) }},
		{"cluster CPU µs/" + unit, func(r Round) float64 { return perOp(clusterCPU(r), r.Ops) }},
		{"machine busy %", func(r Round) float64 { return 100 * float64(r.Machine) / float64(r.Capacity) }},
		{"host steal % (not counted)", stealShare},
		{unit + "s/s, steal added back", func(r Round) float64 {
			return float64(r.Ops) / r.Elapsed.Seconds() / (1 - stealShare(r)/100)
		}},
	}
}

// stealShare is the part of the round's CPU time, in %, that the hypervisor gave to others
// while our CPUs wanted to run.
func stealShare(r Round) float64 {
	if r.Capacity+r.Steal <= 0 {
		return 0
	}
	return 100 * float64(r.Steal) / float64(r.Capacity+r.Steal)
}

// clusterCPU sums the process groups other than the load generator.
func clusterCPU(r Round) time.Duration {
	var sum time.Duration
	for g, d := range r.Procs {
		if g != "wrk (client)" {
			sum += d
		}
	}
	return sum
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func report(out io.Writer, sc Scenario, a, b string, conns int, rs [2][]Round) {
	fmt.Fprintf(out, "\n== %s, %d connections, %d pairs: medians; ratio = median over pairs of A/B\n", sc.Name, conns, len(rs[0]))
	fmt.Fprintf(out, "%-36s %14s %14s %8s\n", "", a, b, "A/B")
	line := func(m metric) {
		var va, vb, ratio []float64
		for i := range rs[0] {
			x, y := m.f(rs[0][i]), m.f(rs[1][i])
			va, vb = append(va, x), append(vb, y)
			if y != 0 {
				ratio = append(ratio, x/y)
			}
		}
		fmt.Fprintf(out, "%-36s %14.1f %14.1f %8.2f\n", m.name, median(va), median(vb), median(ratio))
	}
	for _, m := range baseMetrics(sc.Unit) {
		line(m)
	}
	fmt.Fprintf(out, "CPU µs per %s by process:\n", sc.Unit)
	for _, g := range groupNames(rs) {
		line(metric{"  " + g, func(r Round) float64 { return perOp(r.Procs[g], r.Ops) }})
	}
	for _, k := range extraNames(rs) {
		line(metric{k, func(r Round) float64 { return r.Extra[k] }})
	}
}

// groupNames lists the process groups that used CPU, the busiest first.
func groupNames(rs [2][]Round) []string {
	tot := map[string]time.Duration{}
	for _, side := range rs {
		for _, r := range side {
			for g, d := range r.Procs {
				tot[g] += d
			}
		}
	}
	var names []string
	for g, d := range tot {
		if d > 0 {
			names = append(names, g)
		}
	}
	sort.Slice(names, func(i, j int) bool { return tot[names[i]] > tot[names[j]] })
	return names
}

func extraNames(rs [2][]Round) []string {
	var names []string
	for _, side := range rs {
		for _, r := range side {
			for k := range r.Extra {
				if !slices.Contains(names, k) {
					names = append(names, k)
				}
			}
		}
	}
	sort.Strings(names)
	return names
}
