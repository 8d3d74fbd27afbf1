package postsvc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/post"
)

// TestPaginationModel drives random writes, write-back, shard removals and re-additions (with and
// without redismon's flush), cache flushes, key expiry and list trims through two postsvc
// instances over the same shards, and at checkpoints walks every user's timeline with the cursor,
// comparing it with the database truth: same ids, same order, no gaps, no duplicates, next_id null
// exactly at the end. Every acknowledged post must be on the next first page read through the
// other instance (read-your-writes across instances, whatever either keeps in process).
func TestPaginationModel(t *testing.T) {
	ops := 1500
	if testing.Short() {
		ops = 400
	}
	const settle = 10 * time.Second
	h := newHarness(t, 3, func(c *Config) {
		c.ListMax = minListMax // trims start at 102 posts per user
		c.Settle = settle
		c.CoverageTTL = time.Hour // expiry is simulated below, never waited for
	})
	h.ids.skewEvery = 7
	h.addPeer()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MODEL_SEED"); s != "" { // to replay a failure: MODEL_SEED=<the logged seed>
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("MODEL_SEED: %v", err)
		}
	}
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(42, seed))
	users := []uint64{1, 2, 3, 1 << 40, 1<<63 + 5, 77}
	alive := []int{0, 1, 2}
	down := map[int]bool{}
	pending := map[uint64]bool{} // users with posts not yet persisted

	persist := func() {
		h.db.persist()
		clear(pending)
	}
	checkpoint := func(label string) {
		persist()
		h.advance(settle + time.Second) // write-back caught up within the settle time
		for _, uid := range users {
			want := h.db.truth(uid)
			for pass := range 2 {
				limit := []int{1, 3, 10, 17, 100}[rnd.IntN(5)]
				h.via = rnd.IntN(2)
				if got := h.walk(uid, limit); !slices.Equal(got, want) {
					t.Fatalf("%s: user %d pass %d limit %d:\n got %d ids %v\nwant %d ids %v", label, uid, pass, limit, len(got), got, len(want), want)
				}
			}
		}
	}
	for i := range ops {
		uid := users[rnd.IntN(len(users))]
		h.via = rnd.IntN(2)
		switch r := rnd.IntN(100); {
		case r < 60:
			p := h.write(uid, fmt.Sprintf("op %d", i), "")
			pending[uid] = true
			h.via = 1 - h.via
			if len(alive) > 0 && !slices.ContainsFunc(h.page(uid, 0, 10).Posts, func(q post.Post) bool { return q.ID == p.ID }) {
				t.Fatalf("op %d: acknowledged post %d of user %d not in its first page read through the other instance", i, p.ID, uid)
			}
		case r < 70:
			persist()
		case r < 76: // ring change: some shards leave, some come back
			next := []int{}
			for s := range h.shards {
				if rnd.IntN(3) > 0 {
					next = append(next, s)
				}
			}
			for _, s := range next {
				if !slices.Contains(alive, s) && down[s] {
					h.flush(s) // redismon: flushed before it is ALIVE again
				}
			}
			for _, s := range alive {
				if !slices.Contains(next, s) {
					down[s] = rnd.IntN(2) == 0 // DOWN (will be flushed) or just removed
				}
			}
			alive = next
			h.setAlive(alive...)
		case r < 80: // a shard loses everything; only safe unnoticed when nothing is in flight
			persist()
			h.flush(rnd.IntN(len(h.shards)))
		case r < 85: // TTL expiry of some of a user's keys
			if !pending[uid] {
				h.expire(uid, rnd)
			}
		default:
			limit := 1 + rnd.IntN(12)
			h.page(uid, 0, limit)
			if rnd.IntN(3) == 0 {
				h.advance(settle + time.Second)
				persist()
			}
		}
		if i%250 == 249 {
			checkpoint(fmt.Sprintf("after op %d", i))
		}
	}
	checkpoint("end")

	// The cache must actually serve: a second walk of a settled, complete list needs the
	// database for far fewer pages than it reads, and a third is served from pages kept in
	// process.
	h.setAlive(0, 1, 2)
	h.advance(settle + time.Second)
	h.via = 0
	uid := users[0]
	h.walk(uid, 5)
	before := h.db.lists.Load()
	got := h.walk(uid, 5)
	if dbLists := h.db.lists.Load() - before; dbLists*2 > int64(len(got)/5+1) {
		t.Fatalf("warm walk of %d ids asked the database %d times", len(got), dbLists)
	}
	kept := h.metric(`postsvc_cache_ops_total{kind="list",result="kept"}`)
	h.walk(uid, 5)
	if n := h.metric(`postsvc_cache_ops_total{kind="list",result="kept"}`) - kept; n*2 < float64(len(got)/5) {
		t.Fatalf("third walk of %d pages: %v served from pages kept in process, want most", len(got)/5+1, n)
	}
}

// metric returns the value of one sample of the instance's /metrics (0 when absent).
func (h *harness) metric(sample string) float64 {
	h.t.Helper()
	for _, line := range strings.Split(string(h.do("GET", "/metrics", "").body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				h.t.Fatalf("metric %s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}

// flush empties shard i, as redismon does before marking it ALIVE again.
func (h *harness) flush(i int) {
	h.t.Helper()
	if err := h.shards[i].Client(h.t).FlushAll(context.Background()).Err(); err != nil {
		h.t.Fatalf("flushing shard %d: %v", i, err)
	}
}

// expire deletes some of uid's keys on every shard, as TTLs would.
func (h *harness) expire(uid uint64, rnd *rand.Rand) {
	h.t.Helper()
	ctx := context.Background()
	for _, s := range h.shards {
		c := s.Client(h.t)
		switch rnd.IntN(3) {
		case 0:
			c.Del(ctx, listKey(uid))
		case 1:
			c.Del(ctx, coverageKey(uid))
		default:
			ids, _ := c.ZRange(ctx, listKey(uid), 0, -1).Result()
			for _, m := range ids {
				if rnd.IntN(2) == 0 {
					if id, err := parseMember(m); err == nil {
						c.Del(ctx, postKey(id))
					}
				}
			}
		}
	}
}
