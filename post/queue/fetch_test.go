package queue

import (
	"context"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestFetchHandsOutStrandedJobs: jobs left in a fetcher's in-progress list by a fetch whose reply
// was lost come back with its next batch (counting towards its size), before new jobs.
func TestFetchHandsOutStrandedJobs(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	rc := r.Client(t)
	ctx := context.Background()
	k := newKeys("fetch_ns")
	rc.LPush(ctx, k.inProgress("p1"), "stranded-1", "stranded-2")
	rc.LPush(ctx, k.jobs(), "new-1", "new-2", "new-3")
	pool := newPool(r.Addr(), Config{}.withDefaults(), 2, nil)
	defer pool.Close()
	c, err := pool.GetContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := fetchBatch(ctx, c, k, "p1", 3, time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"stranded-1": true, "stranded-2": true, "new-1": true}
	if len(got) != 3 {
		t.Fatalf("fetched %q, want the 2 stranded jobs and the oldest new one", got)
	}
	for _, j := range got {
		if !want[string(j)] {
			t.Errorf("fetched %q, want one of %v", j, want)
		}
	}
	if n := rc.LLen(ctx, k.jobs()).Val(); n != 2 {
		t.Errorf("jobs left queued = %d, want 2", n)
	}
	// Once settled (the list emptied), the next fetch takes new jobs only.
	rc.Del(ctx, k.inProgress("p1"))
	got, err = fetchBatch(ctx, c, k, "p1", 3, time.Second, time.Second)
	if err != nil || len(got) != 2 {
		t.Errorf("second fetch = %q, %v; want the 2 remaining jobs", got, err)
	}
}
