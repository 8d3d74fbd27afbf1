package main

import (
	"context"
	"fmt"
	"slices"
)

// lagRound measures ack→commit at half the saturation rate: one write-back round whose 16
// connections each pause between requests so that together they offer half the median
// write-back rate measured at the highest connection count. wrk (closed loop) cannot fix a
// rate, so the pause is what sets it.
func lagRound(ctx context.Context, env *Env, o options, res map[int][2][]Round) error {
	top := slices.Max(o.conns)
	var rates []float64
	for _, r := range res[top][0] {
		rates = append(rates, float64(r.Wrk.OK())/r.Wrk.Duration.Seconds())
	}
	half := median(rates) / 2
	if half < 1 {
		return nil
	}
	const conns = 16
	pause := float64(conns) / half * 1000 // ms between a connection's requests
	arm := writeArm(env, "write-back", []string{env.Addr("postsvc-1"), env.Addr("postsvc-2")})
	arm.Script = writeLua + fmt.Sprintf("\nfunction delay() return %.3f * (0.5 + math.random()) end\n", pause)
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
