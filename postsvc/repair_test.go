package postsvc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestFailedCacheWriteDropsCoverage: a write whose cache step fails (the shard is unreachable, its
// data intact, as behind a network partition) leaves the author's list without an acknowledged
// post. The list's coverage marker must not outlive that: once the shard answers again, the next
// pages are merged with the database and show the post, long before the marker's own TTL.
func TestFailedCacheWriteDropsCoverage(t *testing.T) {
	h := newHarness(t, 1, func(c *Config) {
		c.CoverageTTL = time.Hour
		c.CacheTimeout = 200 * time.Millisecond
	})
	// A shard that keeps its data across a restart stands in for one cut off and back.
	h.shards[0] = itest.StartRedis(t, itest.RedisOptions{AOF: true})
	h.setAlive(0)
	h.advance(h.srv.svc.cfg.Settle + time.Second) // past the settle window: merges may claim coverage
	const uid = 5
	for range 3 {
		h.write(uid, "before", "")
	}
	h.db.persist()
	h.page(uid, 0, 10) // merge: the marker now claims the list complete
	rdb := h.shards[0].Client(t)
	if n, _ := rdb.Exists(context.Background(), coverageKey(uid)).Result(); n != 1 {
		t.Fatalf("no coverage marker after a merged page; the test cannot tell anything")
	}

	h.shards[0].Kill()
	p := h.write(uid, "while cut off", "") // acknowledged: enqueued, the cache step failed
	h.db.persist()
	h.shards[0].Start(t) // with its list and marker: AOF, fsynced on every write

	itest.WaitFor(t, 5*time.Second, "the post on the first page once the shard answers", func() bool {
		got := h.page(uid, 0, 10).Posts
		return len(got) > 0 && got[0].ID == p.ID
	})
	m := string(h.do("GET", "/metrics", "").body)
	for _, want := range []string{`postsvc_coverage_repairs_total{result="scheduled"} 1`, `postsvc_coverage_repairs_total{result="done"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s: the marker was not dropped in the background", want)
		}
	}
	if got, want := h.walk(uid, 2), h.db.truth(uid); !equalIDs(got, want) {
		t.Fatalf("walk: got %v, want %v", got, want)
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
