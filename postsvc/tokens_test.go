package postsvc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestTokenReadsSeeEarlierWrites: token reads coalesced into shared MGETs still see every write
// that finished before the read began (what read-your-writes across instances rests on), under
// 64 concurrent readers; and a dead shard makes a read fail (the request then goes to the
// database) instead of answering from nothing. The read's own context has no deadline: only the
// batch's cache timeout can end it.
func TestTokenReadsSeeEarlierWrites(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{})
	c := NewCache(300*time.Millisecond, time.Now, slog.New(slog.DiscardHandler), newServiceMetrics(metrics.NewRegistry()))
	t.Cleanup(c.Close)
	c.Update(1, []discovery.CacheNode{{Name: "redis1", Addr: r.Addr(), Status: discovery.StatusAlive}})
	sh := c.view().shardFor("pl:1")
	direct := r.Client(t)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := uint64(1000 + g)
			for i := range 30 {
				want := fmt.Sprintf("w%d-%d", g, i)
				if err := direct.Set(ctx, versionKey(uid), want, 0).Err(); err != nil {
					errs <- err
					return
				}
				if got, err := sh.tokens.get(ctx, uid); err != nil || got != want {
					errs <- fmt.Errorf("user %d read %d: got %q, %v; want %q", uid, i, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, err := sh.tokens.get(ctx, 1); err != nil || got != "" {
		t.Fatalf("token of a user without one: got %q, %v; want \"\", nil", got, err)
	}

	r.Kill()
	if got, err := sh.tokens.get(ctx, 1000); err == nil {
		t.Fatalf("token read from a dead shard: got %q, want an error", got)
	}
}
