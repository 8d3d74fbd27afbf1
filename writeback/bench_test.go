package writeback_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
	"github.com/the-red/zkpost/writeback"
)

// benchService starts a service on e and returns its stop function.
func benchService(b *testing.B, e *env, cfg writeback.Config, onCommit func([]post.Post, time.Time)) (stop func()) {
	b.Helper()
	svc, err := writeback.New(cfg, quiet, metrics.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	svc.OnCommit(onCommit)
	svc.SetDBEndpoints(discovery.DBEndpoints{Primary: e.db.Addr()})
	svc.SetQueueEndpoints(discovery.QueueEndpoints{Primary: e.redis.Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	go svc.Run(ctx)
	return func() { cancel(); svc.Close() }
}

func resetTable(b *testing.B, e *env) {
	b.Helper()
	if err := mysql.Migrate(context.Background(), e.sql); err != nil {
		b.Fatal(err)
	}
	if _, err := e.sql.Exec("TRUNCATE TABLE posts"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDrain compares, with the durable database setting (innodb_flush_log_at_trx_commit=1,
// sync_binlog=1: an fsync per commit, as production runs), draining a backlog of drainPosts queued
// posts through writebackd (batched fetch, one multi-row upsert per batch, batched acknowledgement)
// with the baseline a writer without the queue would use: drainConns connections each inserting
// one row per statement. Both have drainConns statements in flight, so the difference is what
// batching buys. Each iteration is one pair, drain then baseline, so the two interleave; at
// least 3 pairs run. Reported: posts/s of each and the median per-pair ratio.
func BenchmarkDrain(b *testing.B) {
	e := newEnv(b)
	for _, stmt := range []string{"SET GLOBAL innodb_flush_log_at_trx_commit = 1", "SET GLOBAL sync_binlog = 1"} {
		if _, err := e.sql.Exec(stmt); err != nil {
			b.Fatalf("%s: %v", stmt, err)
		}
	}
	const drainPosts, drainConns = 5000, 4
	var drain, single, ratio []float64
	first := uint64(1)
	for range max(b.N, 3) { // at least 3 pairs, whatever -benchtime says
		resetTable(b, e)
		enqueueAll(b, e.enq, first, drainPosts, 32)
		d := timeDrain(b, e, drainPosts, drainConns)
		first += drainPosts
		resetTable(b, e)
		s := timeSingleInserts(b, e, first, drainPosts, drainConns)
		first += drainPosts
		drain, single = append(drain, drainPosts/d.Seconds()), append(single, drainPosts/s.Seconds())
		ratio = append(ratio, s.Seconds()/d.Seconds())
	}
	b.ReportMetric(medianOf(drain), "drain_posts/s")
	b.ReportMetric(medianOf(single), "single_insert_posts/s")
	b.ReportMetric(medianOf(ratio), "ratio")
}

// timeDrain runs writebackd's service over a queued backlog of n posts with conns batches in
// flight and returns how long the backlog took to commit.
func timeDrain(b *testing.B, e *env, n, conns int) time.Duration {
	var rows atomic.Int64
	all := make(chan struct{})
	cfg := testConfig()
	cfg.Concurrency, cfg.BatchMax = conns*256, 256
	start := time.Now()
	stop := benchService(b, e, cfg, func(ps []post.Post, _ time.Time) {
		if rows.Add(int64(len(ps))) == int64(n) {
			close(all)
		}
	})
	defer stop()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("drained %d of %d posts", rows.Load(), n)
	}
	return time.Since(start)
}

// timeSingleInserts writes n posts with conns goroutines, one row per statement, and returns how
// long it took.
func timeSingleInserts(b *testing.B, e *env, first uint64, n, conns int) time.Duration {
	st := mysql.NewStore(e.sql)
	ids := make(chan uint64, n)
	for id := first; id < first+uint64(n); id++ {
		ids <- id
	}
	close(ids)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for id := range ids {
				if err := st.Upsert(context.Background(), []post.Post{newPost(id)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkAckToCommitLag enqueues b.N posts at a steady rate and reports the lag from each
// enqueue's acknowledgement to the commit of its row (p50, p99, max). Run it with a fixed count
// (-benchtime 200x): each post waits for its slot at the given rate.
func BenchmarkAckToCommitLag(b *testing.B) {
	e := newEnv(b)
	for _, rate := range []int{10, 200, 1000} { // posts per second
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			benchLag(b, e, time.Second/time.Duration(rate), 512)
		})
	}
}

// BenchmarkAckToCommitLagIdle sends one post every 2–7 s (uniformly random) to an idle worker,
// which blocks on the queue instead of polling: the pickup latency of a lone post (-benchtime 8x).
func BenchmarkAckToCommitLagIdle(b *testing.B) {
	benchLag(b, newEnv(b), -2*time.Second, 512)
}

// benchLag sends b.N posts every interval; a negative interval -d means every d to d+5s, at random.
func benchLag(b *testing.B, e *env, interval time.Duration, concurrency int) {
	resetTable(b, e)
	var mu sync.Mutex
	acked := map[uint64]time.Time{}
	var lags []time.Duration
	all := make(chan struct{})
	cfg := testConfig()
	cfg.Concurrency, cfg.BatchMax = concurrency, 256
	stop := benchService(b, e, cfg, func(ps []post.Post, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range ps {
			if t0, ok := acked[p.ID]; ok {
				lags = append(lags, at.Sub(t0))
				delete(acked, p.ID)
			}
		}
		if len(lags) == b.N {
			close(all)
		}
	})
	defer stop()
	b.ResetTimer()
	pace := time.NewTicker(interval.Abs())
	for i := range b.N {
		if i > 0 {
			<-pace.C
		}
		if interval < 0 {
			pace.Reset(interval.Abs() + rand.N(5*time.Second))
		}
		p := newPost(uint64(i + 1))
		mu.Lock() // held across Enqueue so the commit hook never sees a post before its ack time
		if err := e.enq.Enqueue(context.Background(), p); err != nil {
			mu.Unlock()
			b.Fatal(err)
		}
		acked[p.ID] = time.Now()
		mu.Unlock()
	}
	pace.Stop()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("only %d of %d posts committed", len(lags), b.N)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	q := func(f float64) float64 { return float64(lags[int(f*float64(len(lags)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(1), "max_ms")
}
