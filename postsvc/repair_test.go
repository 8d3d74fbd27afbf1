package postsvc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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

// TestFillDropsTheMarkerOfAVanishedList: a user's list vanishes (evicted) while its marker and
// token stay. Reading a later page merges with the database and writes the merge back, which
// recreates the list with that page's posts alone: the marker must not survive it, or the next
// first page is served from the list without the newest posts (TestPaginationModel found this
// with seed 1796307711479645191).
func TestFillDropsTheMarkerOfAVanishedList(t *testing.T) {
	h := newHarness(t, 1, func(c *Config) { c.CoverageTTL = time.Hour })
	h.advance(h.srv.svc.cfg.Settle + time.Second) // past the settle window: merges may claim coverage
	const uid = 9
	for i := range 25 {
		h.write(uid, fmt.Sprintf("post %d", i), "")
	}
	h.db.persist()
	want := h.db.truth(uid)
	first := h.page(uid, 0, 10) // a merge: the marker now covers the first page and more
	if first.NextID == nil {
		t.Fatalf("a first page of 10 of 25 posts has no next_id")
	}
	next, err := strconv.ParseUint(*first.NextID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := h.shards[0].Client(t)
	if err := c.Del(ctx, listKey(uid)).Err(); err != nil { // evicted: marker and token stay
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, coverageKey(uid)).Result(); n != 1 {
		t.Fatalf("the marker should still be there after the list's eviction")
	}
	h.page(uid, next, 10) // a later page: merged, written back, the list recreated
	if n, _ := c.Exists(ctx, coverageKey(uid)).Result(); n != 0 {
		t.Errorf("the marker of the vanished list survived the later page's fill")
	}
	if got := h.walk(uid, 1); !slices.Equal(got, want) {
		t.Fatalf("after the list's eviction and a later page's fill:\n got %d ids %v\nwant %d ids %v", len(got), got, len(want), want)
	}
}
