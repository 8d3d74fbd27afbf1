package postsvc

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestCacheRefusesRestartedShard: a shard killed and restarted (reloading its old keys from the
// AOF) is refused while ZooKeeper still names the run_id redismon vouched for before the restart,
// so no read reaches its stale keys; once redismon records the new run_id (after its flush) the
// shard is used again, and a node with no run_id recorded is used as before.
func TestCacheRefusesRestartedShard(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	direct := r.Client(t)
	ctx := context.Background()
	runID := func() string {
		t.Helper()
		info, err := direct.Info(ctx, "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		return infoField(info, "run_id")
	}
	first := runID()
	if len(first) != 40 {
		t.Fatalf("run_id %q from INFO server, want 40 hex digits", first)
	}
	c := NewCache(time.Second, time.Now, slog.New(slog.DiscardHandler), newServiceMetrics(metrics.NewRegistry()))
	t.Cleanup(c.Close)
	node := func(epoch int64, id string) []discovery.CacheNode {
		return []discovery.CacheNode{{Name: "redis1", Addr: r.Addr(), Status: discovery.StatusAlive, Epoch: epoch, RunID: id}}
	}
	c.Update(1, node(0, first))
	sh := c.view().shardFor("pl:1")
	if err := sh.set(ctx, "post:1", []byte(`{"stale":true}`), 0); err != nil {
		t.Fatalf("SET through the vouched-for process: %v", err)
	}

	r.Kill()
	r.Start(t)
	if n, err := direct.Exists(ctx, "post:1").Result(); err != nil || n != 1 {
		t.Fatalf("post:1 after the restart: %d %v; want it back from the AOF (else the test proves nothing)", n, err)
	}
	second := runID()
	for i := range 5 {
		b, err := sh.get(ctx, "post:1")
		if err == nil {
			t.Fatalf("read %d from the restarted process (run_id %s, vouched %s): got %s, want an error", i, second, first, b)
		}
		if i > 0 && !strings.Contains(err.Error(), "restarted") {
			t.Fatalf("read %d: got error %v, want the run_id refusal", i, err)
		}
	}

	// redismon flushed it and recorded the new process.
	if err := direct.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c.Update(2, node(1, second))
	sh2 := c.view().shardFor("pl:1")
	if sh2 == sh {
		t.Fatal("the revived shard kept its old client")
	}
	if b, err := sh2.get(ctx, "post:1"); err != nil || b != nil {
		t.Fatalf("read after the new run_id is recorded: got %q, %v; want a miss", b, err)
	}
	c.Update(3, node(1, ""))
	if _, err := c.view().shardFor("pl:1").get(ctx, "post:1"); err != nil {
		t.Fatalf("with no run_id recorded: %v, want the shard used", err)
	}
}
