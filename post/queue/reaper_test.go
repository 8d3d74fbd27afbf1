package queue

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
)

// TestReaperRequeuesDeadPool plants the traces of a killed process (a pool whose heartbeat
// stopped a minute ago, with a job in progress) beside a live pool's, and checks that the worker
// re-queues and runs the dead pool's job within its reap interval rather than gocraft's 10 min,
// and leaves the live pool alone.
func TestReaperRequeuesDeadPool(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	rc := r.Client(t)
	ctx := context.Background()
	k := newKeys("reap_ns")
	now := time.Now()
	plant := func(pool string, beat time.Time, id uint64) {
		body := newJob(post.Post{ID: id, UserID: 1, Contents: "x", CreatedAt: now.UTC()}, now)
		rc.SAdd(ctx, k.workerPools(), pool)
		rc.HSet(ctx, k.heartbeat(pool), "heartbeat_at", strconv.FormatInt(beat.Unix(), 10), "job_names", JobName)
		rc.LPush(ctx, k.inProgress(pool), body)
		rc.Incr(ctx, k.lock())
		rc.HIncrBy(ctx, k.lockInfo(), pool, 1)
	}
	plant("deadpool", now.Add(-time.Minute), 1)
	plant("livepool", now, 2)

	var mu sync.Mutex
	got := map[uint64]int{}
	w := NewWorker(WorkerConfig{Queue: Config{Namespace: "reap_ns"}, Concurrency: 2,
		Retry:        RetryPolicy{MaxFails: 10, Base: time.Second, Cap: time.Second},
		ReapInterval: 200 * time.Millisecond, ReapDeadAfter: 30 * time.Second,
	}, func(_ context.Context, p post.Post) error {
		mu.Lock()
		defer mu.Unlock()
		got[p.ID]++
		return nil
	}, slog.New(slog.DiscardHandler), nil)
	w.SetEndpoints(discovery.QueueEndpoints{Primary: r.Addr()})
	w.Start()
	defer w.Stop()

	// gocraft's own reaper first runs 10 s after the pool starts; this must happen well before.
	itest.WaitFor(t, 5*time.Second, "the dead pool's job to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[1] == 1
	})
	mu.Lock()
	if got[2] != 0 {
		t.Errorf("the live pool's in-progress job ran %d times, want 0", got[2])
	}
	mu.Unlock()
	if n := rc.LLen(ctx, k.inProgress("livepool")).Val(); n != 1 {
		t.Errorf("live pool in-progress jobs = %d, want 1", n)
	}
	if rc.SIsMember(ctx, k.workerPools(), "deadpool").Val() || rc.Exists(ctx, k.heartbeat("deadpool")).Val() != 0 {
		t.Error("the dead pool is still listed")
	}
	if v, _ := rc.HGet(ctx, k.lockInfo(), "deadpool").Result(); v != "" {
		t.Errorf("dead pool lock info = %q, want none", v)
	}
}

// TestReaperRequeuesOrphans plants an in-progress list whose pool is in no worker_pools entry
// (gocraft/work issue #146: a pool unregistered, or reaped, while jobs were in progress), which
// the library's reaper never visits, and checks that the worker re-queues and runs its job.
func TestReaperRequeuesOrphans(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	rc := r.Client(t)
	ctx := context.Background()
	k := newKeys("orphan_ns")
	now := time.Now()
	body := newJob(post.Post{ID: 7, UserID: 1, Contents: "x", CreatedAt: now.UTC()}, now)
	rc.LPush(ctx, k.inProgress("gonepool"), body)

	var mu sync.Mutex
	got := map[uint64]int{}
	w := NewWorker(WorkerConfig{Queue: Config{Namespace: "orphan_ns"}, Concurrency: 2,
		Retry:        RetryPolicy{MaxFails: 10, Base: time.Second, Cap: time.Second},
		ReapInterval: 200 * time.Millisecond, ReapDeadAfter: 30 * time.Second,
	}, func(_ context.Context, p post.Post) error {
		mu.Lock()
		defer mu.Unlock()
		got[p.ID]++
		return nil
	}, slog.New(slog.DiscardHandler), nil)
	w.SetEndpoints(discovery.QueueEndpoints{Primary: r.Addr()})
	w.Start()
	defer w.Stop()

	itest.WaitFor(t, 5*time.Second, "the orphaned job to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[7] == 1
	})
	itest.WaitFor(t, 5*time.Second, "the orphaned list gone", func() bool {
		return rc.Exists(ctx, k.inProgress("gonepool")).Val() == 0
	})
}
