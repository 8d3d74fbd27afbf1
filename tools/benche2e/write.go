package main

import (
	"context"
	"database/sql"
	_ "embed"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/the-red/zkpost/internal/metrics"
)

// writeLua posts a short post for a random user (write.lua). The same script drives both arms.
//
//go:embed write.lua
var writeLua string

// writeScenario compares write-back (the cluster's own postsvcds) with write-through (two more
// postsvcds started with the same command lines plus --write-mode=through, registered in the
// same cluster). Both arms use the same guidds, cache shards and MariaDB primary; the
// write-back arm's round lasts until writebackd has persisted every acknowledged post, so its
// CPU accounting covers the drain. After the closed-loop pairs: ack→commit at half saturation
// (lagRound), and both arms offered the same rate (sameLoadRounds).
func writeScenario() Scenario {
	var through []string
	return Scenario{
		Name: "write",
		Unit: "persisted post",
		A: func(ctx context.Context, env *Env) (Arm, error) {
			return writeArm(env, "write-back", writeBackTargets(env), true), nil
		},
		B: func(ctx context.Context, env *Env) (Arm, error) {
			through = nil
			for _, n := range []string{"postsvc-1", "postsvc-2"} {
				addr, err := env.StartLike(ctx, n, "postsvcd (through)", "--write-mode=through")
				if err != nil {
					return Arm{}, err
				}
				through = append(through, addr)
			}
			return writeThroughArm(env, through), nil
		},
		After: func(ctx context.Context, env *Env, o options, res map[int][2][]Round) error {
			if err := lagRound(ctx, env, o, res); err != nil {
				return err
			}
			return sameLoadRounds(ctx, env, o, res, through)
		},
	}
}

func writeBackTargets(env *Env) []string {
	return []string{env.Addr("postsvc-1"), env.Addr("postsvc-2")}
}

func writeThroughArm(env *Env, targets []string) Arm {
	return writeArm(env, "write-through", targets, false)
}

// sameLoadConns is how many times the highest connection count pace themselves in
// sameLoadRounds. A paced connection waits for its answer before its next pause, so an arm's
// latency lowers the rate it is offered; with four times the connections the pauses are four
// times as long against the same latency, and the two arms' offered rates differ less.
const sameLoadConns = 4

// sameLoadRounds offers both arms the same rates, each of o.sameLoad (parts of write-through's
// median rate at the highest connection count) in turn, over sameLoadConns times that many pacing
// connections, interleaved, and compares their latency (issue #9 compares p99 "at the same
// offered load") and CPU per persisted post: a latency curve over the load, from a rate both arms
// carry easily to one near write-through's saturation.
func sameLoadRounds(ctx context.Context, env *Env, o options, res map[int][2][]Round, through []string) error {
	sat := medianRate(res[slices.Max(o.conns)][1])
	if sat < 1 || len(through) == 0 {
		return nil
	}
	conns := sameLoadConns * slices.Max(o.conns)
	for _, share := range o.sameLoad {
		rate := sat * share
		script := pacedScript(writeLua, conns, rate)
		arms := [2]Arm{writeArm(env, "write-back", writeBackTargets(env), true), writeThroughArm(env, through)}
		for i := range arms {
			arms[i].Script = script
		}
		title := fmt.Sprintf("writes at the same offered load (%.0f %% of write-through's)", share*100)
		if err := pacedPairs(ctx, env, o, title, "post", arms, conns, rate); err != nil {
			return err
		}
	}
	return nil
}

// writeArm counts a round's posts as the rows that appear in the posts table after the highest
// post_id seen before the round, waiting (up to drainWait) until every 2xx answer has its row
// and then until the replica has applied all of them (awaitReplica).
// Its extra lines are the p50 and p99 of each write stage on its postsvcds (stageLines) and,
// with drain, writebackd's batch size and ack→commit lag.
func writeArm(env *Env, name string, targets []string, drain bool) Arm {
	var from uint64
	var wb0 wbStats
	var st0 map[string]histogram
	var catchUp time.Duration
	return Arm{
		Name: name, Targets: targets, Path: "/api/v1/posts", Script: writeLua,
		Before: func(ctx context.Context, env *Env) error {
			var err error
			if st0, err = scrapeStages(ctx, targets); err != nil {
				return err
			}
			if drain {
				wb0, _ = scrapeWriteback(ctx, env)
			}
			return env.DB.QueryRowContext(ctx, "SELECT COALESCE(MAX(post_id), 0) FROM posts").Scan(&from)
		},
		Ops: func(ctx context.Context, env *Env, r WrkResult) (int64, error) {
			n, err := awaitRows(ctx, env, from, r.OK())
			if err != nil {
				return n, err
			}
			catchUp, err = awaitReplica(ctx, env.DB, env.Replica, drainWait)
			return n, err
		},
		Extra: func(ctx context.Context, env *Env) (map[string]float64, error) {
			st1, err := scrapeStages(ctx, targets)
			if err != nil {
				return nil, err
			}
			out := stageLines(st1, st0)
			out["replica catch-up after the rows (ms)"] = float64(catchUp) / float64(time.Millisecond)
			if !drain {
				return out, nil
			}
			wb1, err := scrapeWriteback(ctx, env)
			if err != nil {
				return nil, err
			}
			d := wb1.minus(wb0)
			if d.batches > 0 {
				out["mean batch (rows)"] = d.rows / d.batches
			}
			if d.lag.count() > 0 {
				out["ack→commit p50 ≤ (s)"] = d.lag.quantile(0.50)
				out["ack→commit p99 ≤ (s)"] = d.lag.quantile(0.99)
			}
			return out, nil
		},
	}
}

// drainWait bounds the wait for the queue to be drained after a round.
const drainWait = 5 * time.Minute

func awaitRows(ctx context.Context, env *Env, from uint64, want int64) (int64, error) {
	deadline := time.Now().Add(drainWait)
	for {
		var n int64
		if err := env.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE post_id > ?", from).Scan(&n); err != nil {
			return 0, err
		}
		if n >= want {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("only %d of %d acknowledged posts persisted after %s", n, want, drainWait)
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitReplica waits, up to timeout, until replica has applied everything primary has binlogged
// so far, and returns how long that took. A round ends only then, in either arm: otherwise the
// replica's apply of one round's rows (single-row transactions in write-through, which a
// single-threaded replica applies more slowly than it receives them) runs on into the next
// round, the other arm's, and is counted there.
func awaitReplica(ctx context.Context, primary, replica *sql.DB, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var pos string
	if err := primary.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return 0, fmt.Errorf("reading the primary's binlog position: %w", err)
	}
	var res int
	if err := replica.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, timeout.Seconds()).Scan(&res); err != nil {
		return 0, fmt.Errorf("waiting for the replica to reach %s: %w", pos, err)
	}
	if res != 0 {
		return time.Since(start), fmt.Errorf("the replica did not reach the primary's %s within %s", pos, timeout)
	}
	return time.Since(start), nil
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	le  []float64
	cum []float64
}

func (h histogram) count() float64 {
	if len(h.cum) == 0 {
		return 0
	}
	return h.cum[len(h.cum)-1]
}

// quantile returns the upper bound of the bucket holding quantile q (+Inf as math.Inf).
func (h histogram) quantile(q float64) float64 {
	target := q * h.count()
	for i, c := range h.cum {
		if c >= target {
			return h.le[i]
		}
	}
	return math.Inf(1)
}

// plus returns h with o's counts added (o has the same buckets, or none).
func (h histogram) plus(o histogram) histogram {
	if h.le == nil {
		return histogram{le: o.le, cum: slices.Clone(o.cum)}
	}
	out := histogram{le: h.le, cum: slices.Clone(h.cum)}
	for i := range min(len(out.cum), len(o.cum)) {
		out.cum[i] += o.cum[i]
	}
	return out
}

// minus returns the counts h gained since o, an earlier scrape of the same histogram.
func (h histogram) minus(o histogram) histogram {
	out := histogram{le: h.le, cum: slices.Clone(h.cum)}
	for i := range min(len(out.cum), len(o.cum)) {
		out.cum[i] -= o.cum[i]
	}
	return out
}

// writeStages are the steps of postsvc_write_stage_seconds a round reports, in a write's order.
var writeStages = []string{"id", "store", "cache"}

// stageLines gives the p50 and p99 (bucket upper bounds, ms) of each write stage over a round,
// from the scrapes after (st1) and before (st0) it.
func stageLines(st1, st0 map[string]histogram) map[string]float64 {
	out := map[string]float64{}
	for i, stage := range writeStages {
		d := st1[stage].minus(st0[stage])
		if d.count() == 0 {
			continue
		}
		for _, q := range []float64{0.50, 0.99} {
			out[fmt.Sprintf("stage %d %s p%.0f ≤ (ms)", i+1, stage, q*100)] = d.quantile(q) * 1000
		}
	}
	return out
}

type wbStats struct {
	batches, rows float64
	lag           histogram
}

func (a wbStats) minus(b wbStats) wbStats {
	return wbStats{batches: a.batches - b.batches, rows: a.rows - b.rows, lag: a.lag.minus(b.lag)}
}

// scrapeWriteback sums every writebackd's batch and ack→commit metrics.
func scrapeWriteback(ctx context.Context, env *Env) (wbStats, error) {
	var s wbStats
	for _, n := range env.State.Nodes {
		if nodeGroup(n.Name) != "writebackd" || n.Pid == 0 {
			continue
		}
		fams, err := scrapeMetrics(ctx, "http://"+env.Addr(n.Name)+"/metrics")
		if err != nil {
			return s, err
		}
		for _, m := range fams["writeback_batches_total"].GetMetric() {
			if metrics.Label(m, "result") == "ok" {
				s.batches += m.GetCounter().GetValue()
			}
		}
		for _, m := range fams["writeback_rows_committed_total"].GetMetric() {
			s.rows += m.GetCounter().GetValue()
		}
		for _, m := range fams["writeback_queue_latency_seconds"].GetMetric() {
			s.lag = s.lag.plus(histogramOf(m))
		}
	}
	return s, nil
}

// scrapeStages sums the postsvc_write_stage_seconds histograms of the postsvcds at targets, by
// stage.
func scrapeStages(ctx context.Context, targets []string) (map[string]histogram, error) {
	out := map[string]histogram{}
	for _, t := range targets {
		fams, err := scrapeMetrics(ctx, "http://"+t+"/metrics")
		if err != nil {
			return nil, err
		}
		addStages(out, fams)
	}
	return out, nil
}

// addStages adds the postsvc_write_stage_seconds histograms of fams to out, by stage.
func addStages(out map[string]histogram, fams map[string]*dto.MetricFamily) {
	for _, m := range fams["postsvc_write_stage_seconds"].GetMetric() {
		stage := metrics.Label(m, "stage")
		out[stage] = out[stage].plus(histogramOf(m))
	}
}

// histogramOf is a histogram sample's cumulative buckets, +Inf last.
func histogramOf(m *dto.Metric) histogram {
	var h histogram
	for _, b := range m.GetHistogram().GetBucket() {
		h.le = append(h.le, b.GetUpperBound())
		h.cum = append(h.cum, float64(b.GetCumulativeCount()))
	}
	if n := len(h.le); n == 0 || !math.IsInf(h.le[n-1], 1) {
		h.le = append(h.le, math.Inf(1))
		h.cum = append(h.cum, float64(m.GetHistogram().GetSampleCount()))
	}
	return h
}

// scrapeMetrics reads a daemon's /metrics page into its metric families.
func scrapeMetrics(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	fams, err := metrics.ParseText(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	return fams, nil
}
