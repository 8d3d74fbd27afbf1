package queue

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
)

// TestBacklogReportsDepthAndOldestAge: jobs queued 2 minutes and 5 seconds ago make a backlog of
// two whose oldest is 2 minutes old, read with no worker or enqueuer running.
func TestBacklogReportsDepthAndOldestAge(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{})
	cfg := Config{Namespace: "bl"}
	k := newKeys(cfg.Namespace)
	rc := r.Client(t)
	ctx := context.Background()
	b := NewBacklogReader(r.Addr(), cfg)
	defer b.Close()

	got, err := b.Read(ctx)
	if err != nil || got.Queued != 0 || got.OldestAge != 0 {
		t.Fatalf("empty queue: got %+v, %v; want nothing queued, age 0", got, err)
	}
	now := time.Now()
	for _, age := range []time.Duration{2 * time.Minute, 5 * time.Second} { // oldest pushed first
		doc := newJob(post.Post{ID: 1, UserID: 2, CreatedAt: now}, now.Add(-age))
		if err := rc.LPush(ctx, k.jobs(), doc).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// As Enqueuer.markKnown does: gocraft's client lists only known job names.
	if err := rc.SAdd(ctx, k.knownJobs(), JobName).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ZAdd(ctx, k.dead(), goredis.Z{Score: 1, Member: "dead-job"}).Err(); err != nil {
		t.Fatal(err)
	}
	got, err = b.Read(ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got.Queued != 2 || got.Dead != 1 {
		t.Errorf("got queued %d dead %d, want 2 and 1", got.Queued, got.Dead)
	}
	if got.OldestAge < 119*time.Second || got.OldestAge > 125*time.Second {
		t.Errorf("got oldest age %v, want about 2m", got.OldestAge)
	}

	r.Kill()
	if _, err := b.Read(ctx); err == nil {
		t.Error("Read with the Redis killed: got nil error")
	}
}
