package postsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWriteReadYourWrites(t *testing.T) {
	h := newHarness(t, 3, nil)
	for uid := uint64(1); uid <= 5; uid++ {
		for i := range 12 {
			p := h.write(uid, fmt.Sprintf("post %d of %d", i, uid), "")
			first := h.page(uid, 0, 10)
			if len(first.Posts) == 0 || first.Posts[0].ID != p.ID {
				t.Fatalf("user %d: first page after write %d starts with %v, want post %d", uid, i, first.Posts, p.ID)
			}
			if first.Posts[0].Contents != p.Contents || first.Posts[0].ID <= bigIDBase {
				t.Fatalf("got %+v, want %+v", first.Posts[0], p)
			}
		}
	}
}

func TestWriteRefusedByQueueLeavesNothing(t *testing.T) {
	h := newHarness(t, 3, nil)
	before := h.write(7, "kept", "")
	h.db.failQ.Store(true)
	body := `{"user_id":7,"contents":"lost","url":"https://example.com/x"}`
	r := h.do("POST", "/api/v1/posts", body)
	if r.status != 503 || !strings.Contains(string(r.body), `"error":"unavailable"`) {
		t.Fatalf("got %d %s, want 503 in the envelope", r.status, r.body)
	}
	r = h.do("GET", "/api/v1/write_post/7?contents=lost", "")
	if r.status != 503 {
		t.Fatalf("write_post: got %d, want 503", r.status)
	}
	h.db.failQ.Store(false)
	h.db.persist()
	got := h.walk(7, 10)
	if want := []uint64{before.ID}; !slices.Equal(got, want) {
		t.Fatalf("timeline after refused writes: got %v, want %v", got, want)
	}
	// No trace in any shard either.
	for _, r := range h.shards {
		keys, err := r.Client(t).Keys(context.Background(), "post:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k != postKey(before.ID) {
				t.Fatalf("shard %s holds %s after a refused write", r.Addr(), k)
			}
		}
	}
	after := h.write(7, "works again", "")
	if p := h.page(7, 0, 10); p.Posts[0].ID != after.ID {
		t.Fatalf("after the queue recovered: first post %d, want %d", p.Posts[0].ID, after.ID)
	}
}

func TestCacheFailureNeverFailsRequests(t *testing.T) {
	h := newHarness(t, 3, nil)
	for i := range 30 {
		h.write(uint64(100+i%6), "before", "")
	}
	h.db.persist()
	// Kill every shard without telling the ring (redismon has not noticed yet).
	for _, r := range h.shards {
		r.Kill()
	}
	for uid := uint64(100); uid < 106; uid++ {
		p := h.write(uid, "during", "https://example.com/")
		h.db.persist() // read-your-writes falls back to "once persisted" while the shard is down
		got := h.walk(uid, 3)
		if got[0] != p.ID {
			t.Fatalf("user %d with shards dead: first id %d, want %d", uid, got[0], p.ID)
		}
		if r := h.do("GET", fmt.Sprintf("/api/v1/posts/%d/%d", uid, p.ID), ""); r.status != 200 {
			t.Fatalf("get with shards dead: got %d %s, want 200", r.status, r.body)
		}
	}
	m := string(h.do("GET", "/metrics", "").body)
	for _, want := range []string{`postsvc_cache_ops_total{kind="list",result="error"}`, `postsvc_cache_ops_total{kind="write",result="error"}`,
		`postsvc_db_fallbacks_total{reason="cache_error"}`, `postsvc_cache_ring_members 3`, `http_requests_total{route="posts_list",status="200"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The ring loses the dead shards: everything is served from the database alone.
	h.setAlive()
	for uid := uint64(100); uid < 106; uid++ {
		if got, want := h.walk(uid, 4), h.db.truth(uid); !slices.Equal(got, want) {
			t.Fatalf("user %d with no shards: got %v, want %v", uid, got, want)
		}
	}
}

func TestScrapBoundedWaitAndURLCache(t *testing.T) {
	const scrapTimeout = 100 * time.Millisecond
	h := newHarness(t, 2, func(c *Config) { c.ScrapTimeout = scrapTimeout })
	h.scrap.fn = func(ctx context.Context, u string) (json.RawMessage, error) {
		if strings.Contains(u, "slow") {
			// The bound is the deadline scrap is handed, not how long the write took.
			dl, ok := ctx.Deadline()
			if left := time.Until(dl); !ok || left > scrapTimeout {
				t.Errorf("scrap deadline: got %s left (set: %v), want at most %s", left, ok, scrapTimeout)
			}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if strings.Contains(u, "fail") {
			return nil, errors.New("boom")
		}
		return json.RawMessage(`{"title":"ok"}`), nil
	}
	for _, tc := range []struct{ url, scrap string }{
		{"https://example.com/slow", "{}"},
		{"https://example.com/fail", "{}"},
		{"https://example.com/good", `{"title":"ok"}`},
	} {
		p := h.write(9, "link", tc.url)
		if got := string(mustJSON(t, p)["scrap"]); got != tc.scrap {
			t.Errorf("%s: scrap got %s, want %s", tc.url, got, tc.scrap)
		}
	}
	calls := h.scrap.calls.Load()
	h.write(9, "again", "https://example.com/good")
	if got := h.scrap.calls.Load(); got != calls {
		t.Errorf("second write of a cached url called scrap: %d calls, want %d", got, calls)
	}
}

func mustJSON(t testing.TB, v any) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBigIDsSurvive(t *testing.T) {
	h := newHarness(t, 1, nil)
	h.ids.setLast(1<<63 + 999) // far past 2^53 and past int64
	p := h.write(1<<62, "big", "")
	raw := h.do("GET", fmt.Sprintf("/api/v1/posts/%d/%d", uint64(1)<<62, p.ID), "")
	if !strings.Contains(string(raw.body), `"post_id":`+strconv.FormatUint(p.ID, 10)+`,`) ||
		!strings.Contains(string(raw.body), `"post_id_str":"`+strconv.FormatUint(p.ID, 10)+`"`) {
		t.Fatalf("post JSON %s lost id %d", raw.body, p.ID)
	}
	h.db.persist()
	pg := h.page(1<<62, 0, 10)
	if len(pg.Posts) != 1 || pg.Posts[0].ID != p.ID || pg.Posts[0].UserID != 1<<62 {
		t.Fatalf("page: got %+v, want post %d", pg.Posts, p.ID)
	}
	if want := CreatedAt(p.ID); !pg.Posts[0].CreatedAt.Equal(want) {
		t.Fatalf("created_at %v, want %v", pg.Posts[0].CreatedAt, want)
	}
	m, err := h.shards[0].Client(t).ZRange(context.Background(), listKey(1<<62), 0, -1).Result()
	if err != nil || len(m) != 1 || m[0] != fmt.Sprintf("%020d", p.ID) {
		t.Fatalf("sorted-set members %v (%v), want [%020d]", m, err, p.ID)
	}
}

// TestWriteStagesAreTimed: postsvc_write_stage_seconds puts a write's time in the step that took
// it. The queue holds a post while the service's clock moves 60 ms: that time is the store
// step's, not the id's or the cache's. A refused write still times its store step, and only a
// post with a URL has a preview step.
func TestWriteStagesAreTimed(t *testing.T) {
	h := newHarness(t, 1, nil)
	bucket := func(stage, le string) float64 {
		return h.metric(`postsvc_write_stage_seconds_bucket{stage="` + stage + `",le="` + le + `"}`)
	}
	count := func(stage string) float64 {
		return h.metric(`postsvc_write_stage_seconds_count{stage="` + stage + `"}`)
	}
	gate := make(chan struct{})
	h.db.gate.Store(&gate)
	done := make(chan error, 1)
	go func() { // not h.do: a failure must not end this goroutine with t.Fatal
		resp, err := h.hc.Post(h.base+"/api/v1/posts", "application/json",
			strings.NewReader(`{"user_id":3,"contents":"held","url":"https://example.com/a"}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 201 {
				err = fmt.Errorf("status %d, want 201", resp.StatusCode)
			}
		}
		done <- err
	}()
	<-h.db.entered
	h.advance(60 * time.Millisecond)
	h.db.gate.Store(nil)
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("held write: %v", err)
	}
	for _, stage := range []string{"id", "preview", "store", "cache"} {
		if n := count(stage); n != 1 {
			t.Errorf("stage %s timed %v writes, want 1", stage, n)
		}
	}
	if n := bucket("store", "0.0512"); n != 0 {
		t.Errorf("the store step held for 60 ms was timed under 51.2 ms")
	}
	for _, stage := range []string{"id", "preview", "cache"} {
		if n := bucket(stage, "0.0512"); n != 1 {
			t.Errorf("stage %s was timed over 51.2 ms; the 60 ms belong to the store step", stage)
		}
	}

	h.db.failQ.Store(true)
	if r := h.do("POST", "/api/v1/posts", `{"user_id":3,"contents":"refused"}`); r.status != 503 {
		t.Fatalf("refused write: got %d, want 503", r.status)
	}
	for stage, want := range map[string]float64{"id": 2, "preview": 1, "store": 2, "cache": 1} {
		if n := count(stage); n != want {
			t.Errorf("after a refused write without a URL, stage %s timed %v writes, want %v", stage, n, want)
		}
	}
}
