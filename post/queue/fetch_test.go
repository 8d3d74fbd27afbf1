package queue

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// queueConn starts a Redis and returns a client for looking at its keys and one of the package's
// own pooled connections to it, closed at the end of the test.
func queueConn(t *testing.T, opts itest.RedisOptions) (*goredis.Client, redis.Conn) {
	r := itest.StartRedis(t, opts)
	pool := newPool(r.Addr(), Config{}.withDefaults(), 2, nil)
	t.Cleanup(func() { pool.Close() })
	c, err := pool.GetContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return r.Client(t), c
}

// TestFetchHandsOutStrandedJobs: jobs left in a fetcher's in-progress list by a fetch whose reply
// was lost come back with its next batch (counting towards its size), before new jobs.
func TestFetchHandsOutStrandedJobs(t *testing.T) {
	rc, c := queueConn(t, itest.RedisOptions{AOF: true})
	ctx := context.Background()
	k := newKeys("fetch_ns")
	rc.LPush(ctx, k.inProgress("p1"), "stranded-1", "stranded-2")
	rc.LPush(ctx, k.jobs(), "new-1", "new-2", "new-3")
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

// TestFetchLeavesListsAsRPOPLPUSH: a batch fetch leaves the job list and the in-progress list
// exactly as gocraft's fetch, one RPOPLPUSH per job, leaves them (checked against RPOPLPUSH run on
// a copy of the same lists), whether the queue holds more jobs than the batch, as many, or fewer,
// and for a batch larger than one LPUSH of the script takes (and than Lua's unpack could take at
// once).
func TestFetchLeavesListsAsRPOPLPUSH(t *testing.T) {
	rc, c := queueConn(t, itest.RedisOptions{})
	ctx := context.Background()
	for _, c2 := range []struct{ queued, batch int }{{7, 5}, {4, 5}, {2, 5}, {9000, 8500}} {
		queued, batch := c2.queued, c2.batch
		k, ref := newKeys("order_ns"), newKeys("order_ref")
		rc.Del(ctx, k.jobs(), k.inProgress("p"), ref.jobs(), ref.inProgress("p"))
		rc.LPush(ctx, k.inProgress("p"), "stranded")
		rc.LPush(ctx, ref.inProgress("p"), "stranded")
		_, err := rc.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range queued {
				j := "job-" + strconv.Itoa(i)
				p.LPush(ctx, k.jobs(), j)
				p.LPush(ctx, ref.jobs(), j)
			}
			for range batch - 1 { // the stranded job and up to batch-1 new ones
				p.RPopLPush(ctx, ref.jobs(), ref.inProgress("p"))
			}
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			t.Fatal(err)
		}
		got, err := fetchBatch(ctx, c, k, "p", batch, time.Second, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wantIP := rc.LRange(ctx, ref.inProgress("p"), 0, -1).Val()
		if gotIP := rc.LRange(ctx, k.inProgress("p"), 0, -1).Val(); !slices.Equal(gotIP, wantIP) {
			t.Errorf("%d queued: in-progress list %q, RPOPLPUSH leaves %q", queued, gotIP, wantIP)
		}
		if gotQ, wantQ := rc.LRange(ctx, k.jobs(), 0, -1).Val(), rc.LRange(ctx, ref.jobs(), 0, -1).Val(); !slices.Equal(gotQ, wantQ) {
			t.Errorf("%d queued: job list %q, RPOPLPUSH leaves %q", queued, gotQ, wantQ)
		}
		var fetched []string
		for _, j := range got {
			fetched = append(fetched, string(j))
		}
		if !slices.Equal(fetched, wantIP) {
			t.Errorf("%d queued: fetched %q, want the in-progress list %q", queued, fetched, wantIP)
		}
	}
}

// TestSettleRemovesOnlyTheBatch: settling removes the batch's jobs from the in-progress list and
// nothing else, whether the whole list was acknowledged (one DEL), a job failed, or the list
// changed since the fetch (a reaper took jobs back; a job the batch does not hold).
func TestSettleRemovesOnlyTheBatch(t *testing.T) {
	rc, c := queueConn(t, itest.RedisOptions{})
	ctx := context.Background()
	k := newKeys("settle_ns")
	ack := func(jobs ...string) []settlement {
		var ss []settlement
		for _, j := range jobs {
			ss = append(ss, settlement{raw: []byte(j), action: "ack"})
		}
		return ss
	}
	for _, c2 := range []struct {
		name   string
		list   []string
		settle []settlement
		left   []string
		retry  int64
	}{
		{"whole list acknowledged", []string{"a", "b", "c"}, ack("a", "b", "c"), nil, 0},
		{"one failed", []string{"a", "b", "c"}, append(ack("a", "c"), settlement{raw: []byte("b"), action: "retry", score: 9, doc: []byte("b2")}), nil, 1},
		{"a job beyond the batch", []string{"a", "b", "x"}, ack("a", "b"), []string{"x"}, 0},
		{"same length, other jobs", []string{"a", "x"}, ack("a", "b"), []string{"x"}, 0},
		{"reaped meanwhile", nil, ack("a", "b"), nil, 0},
	} {
		rc.Del(ctx, k.inProgress("p"), k.retry())
		for _, j := range c2.list {
			rc.RPush(ctx, k.inProgress("p"), j)
		}
		if err := settle(ctx, c, k, "p", c2.settle); err != nil {
			t.Fatal(err)
		}
		if left := rc.LRange(ctx, k.inProgress("p"), 0, -1).Val(); !slices.Equal(left, c2.left) && len(left)+len(c2.left) > 0 {
			t.Errorf("%s: in progress after settling %q, want %q", c2.name, left, c2.left)
		}
		if n := rc.ZCard(ctx, k.retry()).Val(); n != c2.retry {
			t.Errorf("%s: %d jobs in the retry set, want %d", c2.name, n, c2.retry)
		}
	}
}
