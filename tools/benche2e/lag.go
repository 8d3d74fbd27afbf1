package main

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// medianRate is the median of rounds' 2xx answers per second.
func medianRate(rounds []Round) float64 {
	return medianOf(rounds, func(r Round) float64 { return float64(r.Wrk.OK()) / r.Wrk.Duration.Seconds() })
}

// pacedPairs runs arms, whose scripts pace conns connections to offer rate requests/s together,
// interleaved A B A B (o.pairs pairs), and prints each round and the medians of served/s, latency
// and machine CPU per op, with the median of the per-pair ratios A/B. title names the comparison;
// unit is what an op is.
func pacedPairs(ctx context.Context, env *Env, o options, title, unit string, arms [2]Arm, conns int, rate float64) error {
	var rounds [2][]Round
	for pair := range o.pairs {
		rs, err := runPair(env.Log, o.maxSteal, func(i int) (Round, error) {
			return runRound(ctx, env, o, arms[i], conns, o.duration)
		}, func(i int, r Round) {
			fmt.Fprintf(env.Log, "  %s pair %d %-13s %6.0f/s  p50 %-9s p99 %-9s %4.0f µs machine CPU/%s  steal %2.0f %%\n",
				title, pair+1, arms[i].Name, float64(r.Wrk.OK())/r.Wrk.Duration.Seconds(), r.Wrk.P50, r.Wrk.P99, perOp(r.Machine, r.Ops), unit, stealShare(r))
		})
		if err != nil {
			return fmt.Errorf("%s: %w", title, err)
		}
		for i, r := range rs {
			rounds[i] = append(rounds[i], r)
		}
	}
	pacedReport(env.Log, title, unit, [2]string{arms[0].Name, arms[1].Name}, rate, conns, rounds)
	return nil
}

// pacedReport prints the medians of the paced rounds, the median of the per-pair ratios A/B, and
// each process group's CPU per op: below saturation fewer ops share each wake-up and grouped
// round trip, and these lines show where that costs.
func pacedReport(out io.Writer, title, unit string, names [2]string, rate float64, conns int, rounds [2][]Round) {
	fmt.Fprintf(out, "\n== %s (offered %.0f/s, %d conns, %d pairs): medians; ratio = median over pairs of A/B\n", title, rate, conns, len(rounds[0]))
	fmt.Fprintf(out, "%-36s %13s %13s %8s\n", "", names[0], names[1], "A/B")
	row := func(name string, f func(Round) float64) {
		var ratios []float64
		for i := range rounds[0] {
			if b := f(rounds[1][i]); b != 0 {
				ratios = append(ratios, f(rounds[0][i])/b)
			}
		}
		fmt.Fprintf(out, "%-36s %13.2f %13.2f %8.2f\n", name, medianOf(rounds[0], f), medianOf(rounds[1], f), median(ratios))
	}
	row("served/s", func(r Round) float64 { return float64(r.Wrk.OK()) / r.Wrk.Duration.Seconds() })
	row("p50 latency (ms)", func(r Round) float64 { return ms(r.Wrk.P50) })
	row("p99 latency (ms)", func(r Round) float64 { return ms(r.Wrk.P99) })
	row("machine CPU µs/"+unit, func(r Round) float64 { return perOp(r.Machine, r.Ops) })
	row("host steal % (not counted)", func(r Round) float64 { return stealShare(r) })
	fmt.Fprintf(out, "CPU µs per %s by process:\n", unit)
	for _, g := range groupNames(rounds) {
		row("  "+g, func(r Round) float64 { return perOp(r.Procs[g], r.Ops) })
	}
	for _, k := range extraNames(rounds) {
		row(k, func(r Round) float64 { return r.Extra[k] })
	}
}

// lagRound measures ack→commit at half the saturation rate: one write-back round whose
// connections (as many as the highest connection count) pace themselves to offer together half
// the median write-back rate measured at that count (pacedScript).
func lagRound(ctx context.Context, env *Env, o options, res map[int][2][]Round) error {
	top := slices.Max(o.conns)
	half := medianRate(res[top][0]) / 2
	if half < 1 {
		return nil
	}
	conns := top
	arm := writeArm(env, "write-back", writeBackTargets(env), true)
	arm.Script = pacedScript(writeLua, conns, half)
	r, err := runRound(ctx, env, o, arm, conns, o.duration)
	if err != nil {
		return fmt.Errorf("ack→commit round: %w", err)
	}
	out := env.Log
	fmt.Fprintf(out, "\n== write-back at half saturation (target %.0f/s, got %.0f/s, %d conns)\n",
		half, float64(r.Wrk.OK())/r.Wrk.Duration.Seconds(), conns)
	fmt.Fprintf(out, "p50 %s  p99 %s  machine CPU %.0f µs/post  cluster CPU %.0f µs/post\n",
		r.Wrk.P50, r.Wrk.P99, perOp(r.Machine, r.Ops), perOp(clusterCPU(r), r.Ops))
	fmt.Fprintf(out, "ack→commit p50 ≤ %.3g s, p99 ≤ %.3g s (bucket bounds of writeback_queue_latency_seconds)\n",
		r.Extra["ack→commit p50 ≤ (s)"], r.Extra["ack→commit p99 ≤ (s)"])
	return nil
}

// pacedScript adds to a wrk script a pause before each request of a connection, so that conns
// connections offer about rate requests/s: wrk is a closed loop and cannot fix a rate itself. A
// pause is 0.5–1.5× the mean, and rounded to a whole ms at random, up or down in proportion:
// wrk truncates delay() to whole ms, which would turn a 1 ms mean into about 0.5.
func pacedScript(script string, conns int, rate float64) string {
	pause := float64(conns) / rate * 1000
	return script + fmt.Sprintf(`
function delay()
  local d = %.3f * (0.5 + math.random())
  local ms = math.floor(d)
  if math.random() < d - ms then ms = ms + 1 end
  return ms
end
`, pause)
}
