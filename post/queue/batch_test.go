package queue_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/queue"
)

// TestBatchWorkerTakesBacklogInBatches queues a backlog before the worker starts and checks it
// arrives in a few handler calls of up to BatchMax posts, each post exactly once, with every job
// acknowledged (nothing left queued or in progress).
func TestBatchWorkerTakesBacklogInBatches(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, r.Addr())
	ctx := context.Background()
	const n, batchMax = 300, 100
	for id := uint64(1); id <= n; id++ {
		if err := e.Enqueue(ctx, samplePost(id)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var sizes []int
	w := queue.NewBatchWorker(queue.WorkerConfig{Queue: testConfig(), Concurrency: batchMax, BatchMax: batchMax,
		Retry: queue.RetryPolicy{MaxFails: 10, Base: time.Second, Cap: time.Second}},
		func(_ context.Context, posts []post.Post) error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(posts))
			for _, p := range posts {
				seen[p.ID]++
			}
			return nil
		}, quiet, prometheus.NewRegistry())
	w.SetEndpoints(discovery.QueueEndpoints{Primary: r.Addr()})
	w.Start()
	t.Cleanup(w.Stop)
	itest.WaitFor(t, 10*time.Second, "every post handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	mu.Lock()
	if len(sizes) != n/batchMax {
		t.Errorf("handler calls = %d %v, want %d of %d posts", len(sizes), sizes, n/batchMax, batchMax)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("post %d handled %d times, want 1", id, c)
		}
	}
	mu.Unlock()
	itest.WaitFor(t, 5*time.Second, "every job acknowledged", func() bool {
		st, err := w.Stats(ctx)
		return err == nil && st.Queued == 0 && inProgressJobs(t, r.Client(t)) == 0
	})
}

// TestBatchLingerGathersShortBatches checks a fetcher that just took a short batch waits
// BatchLinger before fetching again: jobs pushed one by one meanwhile arrive in one handler call,
// no sooner than BatchLinger after the batch before them.
func TestBatchLingerGathersShortBatches(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, r.Addr())
	ctx := context.Background()
	const linger = time.Second
	type call struct {
		at  time.Time
		ids []uint64
	}
	var mu sync.Mutex
	var calls []call
	w := queue.NewBatchWorker(queue.WorkerConfig{Queue: testConfig(), Concurrency: 100, BatchMax: 100,
		BatchLinger: linger, Retry: queue.RetryPolicy{MaxFails: 10, Base: time.Second, Cap: time.Second}},
		func(_ context.Context, posts []post.Post) error {
			c := call{at: time.Now()}
			for _, p := range posts {
				c.ids = append(c.ids, p.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, c)
			return nil
		}, quiet, prometheus.NewRegistry())
	w.SetEndpoints(discovery.QueueEndpoints{Primary: r.Addr()})
	w.Start()
	t.Cleanup(w.Stop)
	ncalls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(calls)
	}
	if err := e.Enqueue(ctx, samplePost(1)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "the first post handled", func() bool { return ncalls() == 1 })
	for id := uint64(2); id <= 6; id++ { // one push each, well within the linger
		if err := e.Enqueue(ctx, samplePost(id)); err != nil {
			t.Fatal(err)
		}
	}
	itest.WaitFor(t, 10*time.Second, "the next posts handled", func() bool { return ncalls() >= 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || len(calls[1].ids) != 5 {
		t.Fatalf("handler calls %v, want [1] then the 5 posts pushed during the linger in one call", calls)
	}
	if gap := calls[1].at.Sub(calls[0].at); gap < linger-50*time.Millisecond {
		t.Errorf("second batch %v after the first, want ≥ the %v linger", gap, linger)
	}
}

// TestIdleWorkerBlocksInsteadOfPolling checks an idle worker sends about one command per
// IdleBlock (a blocking pop) rather than polling, and still takes a job pushed meanwhile.
func TestIdleWorkerBlocksInsteadOfPolling(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	rc := r.Client(t)
	ctx := context.Background()
	rec := newRecorder()
	newWorker(t, rec.handle, r.Addr())
	e := newEnqueuer(t, r.Addr())
	if err := e.Enqueue(ctx, samplePost(1)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "post 1 handled", func() bool { return rec.count(1) == 1 })
	before := commandCalls(t, rc, "brpoplpush")
	fetchesBefore := commandCalls(t, rc, "evalsha")
	// An idle period long enough to tell blocking (≈1 pop/s) from polling (gocraft: tens a second).
	deadline := time.Now().Add(3 * time.Second)
	itest.WaitFor(t, 10*time.Second, "3 s of idleness", func() bool { return time.Now().After(deadline) })
	pops := commandCalls(t, rc, "brpoplpush") - before
	evals := commandCalls(t, rc, "evalsha") - fetchesBefore
	if pops < 1 || pops > 6 {
		t.Errorf("blocking pops in 3 idle seconds = %d, want 1–6", pops)
	}
	if evals > 20 { // each pop carries one fetch; plus the requeuer (2/s) and heartbeats
		t.Errorf("scripts run in 3 idle seconds = %d, want at most 20", evals)
	}
	if err := e.Enqueue(ctx, samplePost(2)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "post 2 handled", func() bool { return rec.count(2) == 1 })
}

func commandCalls(t *testing.T, rc *redis.Client, cmd string) int64 {
	t.Helper()
	info := rc.Info(context.Background(), "commandstats").Val()
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_"+cmd+":calls=") {
			var n int64
			for _, c := range strings.TrimPrefix(line, "cmdstat_"+cmd+":calls=") {
				if c < '0' || c > '9' {
					break
				}
				n = n*10 + int64(c-'0')
			}
			return n
		}
	}
	return 0
}

func inProgressJobs(t *testing.T, rc *redis.Client) int64 {
	t.Helper()
	ctx := context.Background()
	keys := rc.Keys(ctx, "test_ns:jobs:persist_post:*:inprogress").Val()
	var n int64
	for _, k := range keys {
		n += rc.LLen(ctx, k).Val()
	}
	return n
}

// TestConcurrentEnqueuesShareAPush: writes that arrive together are pushed together (fewer LPUSH
// commands than jobs), and every one of them is queued once and acknowledged.
func TestConcurrentEnqueuesShareAPush(t *testing.T) {
	primary, _ := replicatedQueue(t)
	e := newWaitingEnqueuer(t, discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{"replica"}})
	rc := primary.Client(t)
	ctx := context.Background()
	before := commandCalls(t, rc, "lpush")
	waits := commandCalls(t, rc, "wait")
	const n = 400
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for id := uint64(1); id <= n; id++ {
		wg.Go(func() { errs <- e.Enqueue(ctx, samplePost(id)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if q := queued(t, primary); q != n {
		t.Errorf("queued = %d, want %d", q, n)
	}
	pushes := commandCalls(t, rc, "lpush") - before
	if pushes >= n/2 {
		t.Errorf("%d LPUSH commands for %d concurrent writes, want fewer than %d", pushes, n, n/2)
	}
	if w := commandCalls(t, rc, "wait") - waits; w != pushes {
		t.Errorf("%d WAITs for %d pushes, want one each", w, pushes)
	}
	t.Logf("%d writes in %d pushes", n, pushes)
}
