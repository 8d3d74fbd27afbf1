package main

import (
	"context"
	"fmt"
	"slices"
)

// lagRound measures ack→commit at half the saturation rate: one write-back round whose
// connections (as many as the highest connection count) pace themselves to offer together half
// the median write-back rate measured at that count (pacedScript).
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
	conns := top
	arm := writeArm(env, "write-back", []string{env.Addr("postsvc-1"), env.Addr("postsvc-2")})
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
