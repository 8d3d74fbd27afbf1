package postsvc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
)

// refusingQueue fails the test if write-through mode ever enqueues.
type refusingQueue struct{ t *testing.T }

func (q refusingQueue) Enqueue(context.Context, post.Post) error {
	q.t.Error("write-through mode enqueued a job")
	return fmt.Errorf("no queue in write-through mode")
}

// TestWriteThroughCommitsBeforeAnswering runs postsvc in write-through mode over a real MariaDB
// primary and a real cache shard, with no queue and no writebackd: every 201 comes after the
// post's row committed (it is on the primary the moment the answer arrives, exactly once), the
// post is listed from the cache, and with the primary gone a write is refused with 503, counted,
// and leaves nothing in the cache.
func TestWriteThroughCommitsBeforeAnswering(t *testing.T) {
	primary := itest.StartMariaDB(t)
	db := primary.DB(t, "zkpost")
	ctx := context.Background()
	if err := mysql.Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	store := mysql.NewStore(db)
	shard := itest.StartRedis(t, itest.RedisOptions{})
	cfg := DefaultConfig()
	cfg.Listen, cfg.CacheTimeout, cfg.StoreTimeout = "127.0.0.1:0", time.Second, 2*time.Second
	cfg.WriteMode = WriteThrough
	srv, err := New(cfg, Deps{IDs: newFakeIDs(), Previewer: &fakePreviewer{}, Queue: refusingQueue{t}, Store: store,
		Primary: store, Log: slog.New(slog.NewTextHandler(testLogOut(), nil)), Registry: metrics.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	srv.Cache().Update(1, []discovery.CacheNode{{Name: "redis1", Addr: shard.Addr(), Status: discovery.StatusAlive}})
	base := "http://" + srv.Addr().String()

	const uid = 77
	var ids []uint64
	for i := range 5 {
		status, body := postJSON(t, base, fmt.Sprintf(`{"user_id":%d,"contents":"through %d"}`, uid, i))
		if status != http.StatusCreated {
			t.Fatalf("write %d: status %d (%s), want 201", i, status, body)
		}
		var p post.Post
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("write %d: answer %s: %v", i, body, err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE post_id = ? AND user_id = ?", p.ID, uid).Scan(&n); err != nil || n != 1 {
			t.Fatalf("post %d right after its 201: %d rows on the primary (%v), want 1", p.ID, n, err)
		}
		ids = append([]uint64{p.ID}, ids...)
	}
	pageIDs := func() []uint64 {
		resp, err := http.Get(fmt.Sprintf("%s/api/v1/posts/%d?limit=10", base, uid))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var pg struct{ Posts []post.Post }
		if err := json.NewDecoder(resp.Body).Decode(&pg); err != nil {
			t.Fatal(err)
		}
		return postIDs(pg.Posts)
	}
	if got := pageIDs(); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("timeline %v, want %v", got, ids)
	}
	if n := shard.Client(t).ZCard(ctx, listKey(uid)).Val(); n != int64(len(ids)) {
		t.Errorf("cache list holds %d posts, want %d", n, len(ids))
	}

	primary.Kill()
	status, body := postJSON(t, base, fmt.Sprintf(`{"user_id":%d,"contents":"primary gone"}`, uid))
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("write with the primary gone: status %d (%s), want 503 in the error envelope", status, body)
	}
	if n := shard.Client(t).ZCard(ctx, listKey(uid)).Val(); n != int64(len(ids)) {
		t.Errorf("cache list holds %d posts after a refused write, want %d", n, len(ids))
	}
	if got := counterValue(srv.svc.metrics.writeThroughFails); got != 1 {
		t.Errorf("postsvc_write_through_failures_total = %v, want 1", got)
	}
}

func postJSON(t *testing.T, base, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(base+"/api/v1/posts", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
