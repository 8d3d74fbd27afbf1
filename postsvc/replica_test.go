package postsvc

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/queue"
)

// TestWriteRefusedWhenQueueReplicaHung runs writes through a real enqueuer whose queue primary
// has a listed, attached replica. While the replica hangs, no replica can acknowledge a job, so a
// failover could lose it: the write is refused with 503, and neither the cache, the database nor
// the queue keeps a trace of it.
func TestWriteRefusedWhenQueueReplicaHung(t *testing.T) {
	primary := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	replica := itest.StartRedis(t, itest.RedisOptions{AOF: true, ReplicaOf: primary.Addr()})
	// The primary counts the replica (in WAIT) only once online, and right after its initial sync
	// the replica may still answer late on a loaded machine: wait for a write it acknowledges
	// within the enqueuer's 250 ms.
	pc := primary.Client(t)
	itest.WaitFor(t, 20*time.Second, "queue replica acknowledging writes", func() bool {
		ctx := context.Background()
		info, err := pc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "state=online") || pc.Incr(ctx, "replica_test:probe").Err() != nil {
			return false
		}
		n, err := pc.Do(ctx, "WAIT", 1, 250).Int()
		return err == nil && n == 1
	})
	enq := queue.NewEnqueuer(queue.Config{Namespace: "svc", ReplicaWait: 250 * time.Millisecond}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { enq.Close() })
	enq.SetEndpoints(discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{replica.Addr()}})
	h := newHarness(t, 3, nil)
	var q Queue = enq
	h.db.front.Store(&q)

	before := h.write(7, "kept", "")
	replica.Pause()
	r := h.do("POST", "/api/v1/posts", `{"user_id":7,"contents":"lost"}`)
	jobs, err := primary.Client(t).LLen(context.Background(), "svc:jobs:"+queue.JobName).Result()
	replica.Resume()
	if r.status != 503 || !strings.Contains(string(r.body), `"error":"unavailable"`) {
		t.Fatalf("write with the queue replica hung: got %d %s, want 503 in the envelope", r.status, r.body)
	}
	if err != nil || jobs != 1 {
		t.Fatalf("jobs on the queue primary: got %d (%v), want 1 (the refused job withdrawn)", jobs, err)
	}
	h.db.persist()
	if got, want := h.walk(7, 10), []uint64{before.ID}; !slices.Equal(got, want) {
		t.Fatalf("timeline after the refused write: got %v, want %v", got, want)
	}
	for _, s := range h.shards {
		keys, err := s.Client(t).Keys(context.Background(), "post:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(keys, func(k string) bool { return k != postKey(before.ID) }) {
			t.Fatalf("shard %s holds %v after a refused write", s.Addr(), keys)
		}
	}
}
