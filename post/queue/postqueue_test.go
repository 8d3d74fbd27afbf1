package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/queue"
)

var quiet = slog.New(slog.DiscardHandler)

func testConfig() queue.Config {
	return queue.Config{Namespace: "test_ns", DialTimeout: 500 * time.Millisecond, IOTimeout: 500 * time.Millisecond}
}

func samplePost(id uint64) post.Post {
	return post.Post{ID: id, UserID: 1<<60 + 7, Contents: "hé 🎉", URL: "https://example.com/",
		Scrap: json.RawMessage(`{"title":"t"}`), CreatedAt: time.UnixMilli(1_700_000_000_123).UTC()}
}

func newEnqueuer(t *testing.T, addr string) *queue.Enqueuer {
	t.Helper()
	e := queue.NewEnqueuer(testConfig(), quiet)
	t.Cleanup(func() { e.Close() })
	e.SetEndpoints(discovery.QueueEndpoints{Primary: addr})
	return e
}

func TestEnqueueNoEndpoint(t *testing.T) {
	e := queue.NewEnqueuer(testConfig(), quiet)
	defer e.Close()
	if err := e.Enqueue(context.Background(), samplePost(1)); !errors.Is(err, queue.ErrNoQueue) {
		t.Errorf("Enqueue without endpoint: err = %v, want ErrNoQueue", err)
	}
}

func TestEnqueueStoresStringArgs(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, r.Addr())
	p := samplePost(1<<63 - 5)
	if err := e.Enqueue(context.Background(), p); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	raw, err := r.Client(t).LRange(context.Background(), "test_ns:jobs:"+queue.JobName, 0, -1).Result()
	if err != nil || len(raw) != 1 {
		t.Fatalf("LRANGE = %v, %v; want one job", raw, err)
	}
	var doc struct {
		Name string         `json:"name"`
		ID   string         `json:"id"`
		Args map[string]any `json:"args"`
	}
	if err := json.Unmarshal([]byte(raw[0]), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Name != queue.JobName || doc.ID == "" {
		t.Errorf("job name, id = %q, %q; want %q and an id", doc.Name, doc.ID, queue.JobName)
	}
	if got, want := doc.Args["post_id"], "9223372036854775803"; got != want {
		t.Errorf("post_id arg = %#v, want the string %q", got, want)
	}
	got, err := post.FromArgs(doc.Args)
	if err != nil || got.ID != p.ID || got.UserID != p.UserID || got.Contents != p.Contents || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("FromArgs = %+v, %v; want %+v", got, err, p)
	}
	known, _ := r.Client(t).SMembers(context.Background(), "test_ns:known_jobs").Result()
	if len(known) != 1 || known[0] != queue.JobName {
		t.Errorf("known_jobs = %v, want [%s]", known, queue.JobName)
	}
}

// enqueueBounded runs Enqueue without a caller deadline and fails the test if it has not
// returned long after the configured timeouts: a dead queue must fail the write, not hang it.
func enqueueBounded(t *testing.T, e *queue.Enqueuer, p post.Post) error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- e.Enqueue(context.Background(), p) }()
	select {
	case err := <-res:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("Enqueue still blocked 20s after the queue went away")
		return nil
	}
}

func TestEnqueueQueueDownAndBack(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, r.Addr())
	if err := e.Enqueue(context.Background(), samplePost(1)); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	r.Kill()
	if err := enqueueBounded(t, e, samplePost(2)); err == nil {
		t.Fatal("Enqueue with the queue killed: err = nil, want an error")
	}
	r.Start(t)
	if err := e.Enqueue(context.Background(), samplePost(3)); err != nil {
		t.Fatalf("Enqueue after restart (same Enqueuer): %v", err)
	}

	r.Pause() // hung: the port accepts, nothing answers
	err := enqueueBounded(t, e, samplePost(4))
	r.Resume()
	if err == nil {
		t.Fatal("Enqueue with the queue paused: err = nil, want an error")
	}
	itest.WaitFor(t, 10*time.Second, "Enqueue to work after resume", func() bool {
		return e.Enqueue(context.Background(), samplePost(5)) == nil
	})
	st, err := e.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Jobs 1 and 3 survived the kill (AOF); 4 may or may not have been applied before the pause.
	if st.Queued < 3 {
		t.Errorf("queued = %d, want at least 3 (jobs 1, 3 and 5)", st.Queued)
	}
}

func TestEnqueueFollowsPrimary(t *testing.T) {
	a := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	b := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, a.Addr())
	if err := e.Enqueue(context.Background(), samplePost(1)); err != nil {
		t.Fatal(err)
	}
	e.SetEndpoints(discovery.QueueEndpoints{Primary: b.Addr(), Secondary: []string{a.Addr()}})
	if err := e.Enqueue(context.Background(), samplePost(2)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "test_ns:jobs:" + queue.JobName
	if n := a.Client(t).LLen(ctx, key).Val(); n != 1 {
		t.Errorf("old primary holds %d jobs, want 1", n)
	}
	if n := b.Client(t).LLen(ctx, key).Val(); n != 1 {
		t.Errorf("new primary holds %d jobs, want 1", n)
	}
	if e.Addr() != b.Addr() {
		t.Errorf("Addr() = %s, want %s", e.Addr(), b.Addr())
	}
}

// recorder is a Handler that records the posts it stored and can be told to fail.
type recorder struct {
	mu    sync.Mutex
	got   map[uint64]int
	fails map[uint64]int // post id → failures still to report
}

func newRecorder() *recorder { return &recorder{got: map[uint64]int{}, fails: map[uint64]int{}} }

func (r *recorder) handle(_ context.Context, p post.Post) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails[p.ID] > 0 {
		r.fails[p.ID]--
		return errors.New("database down")
	}
	if p.Contents == "permanent" {
		return queue.Permanent(errors.New("rejected"))
	}
	r.got[p.ID]++
	return nil
}

func (r *recorder) count(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

func newWorker(t *testing.T, h queue.Handler, addr string) *queue.Worker {
	t.Helper()
	w := queue.NewWorker(queue.WorkerConfig{
		Queue: testConfig(), Concurrency: 8,
		Retry: queue.RetryPolicy{MaxFails: 1000, Base: time.Second, Cap: time.Second},
	}, h, quiet, prometheus.NewRegistry())
	w.SetEndpoints(discovery.QueueEndpoints{Primary: addr})
	w.Start()
	t.Cleanup(w.Stop)
	return w
}

func TestWorker(t *testing.T) {
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	e := newEnqueuer(t, r.Addr())
	rec := newRecorder()
	rec.fails[3] = 2
	w := newWorker(t, rec.handle, r.Addr())
	ctx := context.Background()

	for id := uint64(1); id <= 5; id++ {
		if err := e.Enqueue(ctx, samplePost(id)); err != nil {
			t.Fatal(err)
		}
	}
	// A job with numeric ids (as the reference enqueued them) cannot be decoded exactly: dead at once.
	poison := `{"name":"persist_post","id":"p1","t":1,"args":{"post_id":1.2e18,"user_id":1}}`
	r.Client(t).LPush(ctx, "test_ns:jobs:"+queue.JobName, poison)
	perm := samplePost(6)
	perm.Contents = "permanent"
	if err := e.Enqueue(ctx, perm); err != nil {
		t.Fatal(err)
	}

	itest.WaitFor(t, 20*time.Second, "posts 1-5 handled (post 3 after two retries)", func() bool {
		for id := uint64(1); id <= 5; id++ {
			if rec.count(id) == 0 {
				return false
			}
		}
		return true
	})
	var dead []queue.DeadJob
	itest.WaitFor(t, 10*time.Second, "two dead jobs", func() bool {
		var err error
		dead, err = e.DeadJobs(ctx)
		return err == nil && len(dead) == 2
	})
	for _, d := range dead {
		if d.Fails != 1 || d.LastErr == "" {
			t.Errorf("dead job %s: fails %d, err %q; want 1 fail and a reason", d.ID, d.Fails, d.LastErr)
		}
	}
	for id := uint64(1); id <= 5; id++ {
		if n := rec.count(id); n != 1 {
			t.Errorf("post %d handled %d times, want 1", id, n)
		}
	}
	st, err := w.Stats(ctx)
	if err != nil || st.Queued != 0 || st.Retry != 0 || st.Dead != 2 || st.Pools != 1 {
		t.Errorf("Stats() = %+v, %v; want nothing queued or retrying, 2 dead, 1 pool", st, err)
	}
}

func TestWorkerFollowsPrimary(t *testing.T) {
	a := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	b := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	rec := newRecorder()
	w := newWorker(t, rec.handle, a.Addr())
	ea, eb := newEnqueuer(t, a.Addr()), newEnqueuer(t, b.Addr())
	ctx := context.Background()
	if err := ea.Enqueue(ctx, samplePost(1)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "post 1 handled from the first Redis", func() bool { return rec.count(1) == 1 })

	w.SetEndpoints(discovery.QueueEndpoints{Primary: b.Addr()})
	if err := eb.Enqueue(ctx, samplePost(2)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "post 2 handled from the promoted Redis", func() bool { return rec.count(2) == 1 })
	if w.Addr() != b.Addr() {
		t.Errorf("Addr() = %s, want %s", w.Addr(), b.Addr())
	}
	// The old pool deregistered its heartbeat when it stopped.
	if n := a.Client(t).SCard(ctx, "test_ns:worker_pools").Val(); n != 0 {
		t.Errorf("old Redis lists %d worker pools, want 0", n)
	}
}

func TestBackoff(t *testing.T) {
	p := queue.RetryPolicy{MaxFails: 100, Base: time.Second, Cap: 30 * time.Second}
	tests := []struct {
		fails  int64
		lo, hi time.Duration
	}{
		{0, time.Second, 1200 * time.Millisecond},
		{1, time.Second, 1200 * time.Millisecond},
		{3, 4 * time.Second, 4800 * time.Millisecond},
		{5, 16 * time.Second, 19200 * time.Millisecond},
		{6, 30 * time.Second, 36 * time.Second},
		{1000, 30 * time.Second, 36 * time.Second},
	}
	for _, tt := range tests {
		for range 20 {
			if got := p.Backoff(tt.fails); got < tt.lo || got > tt.hi {
				t.Errorf("Backoff(%d) = %s, want within [%s, %s]", tt.fails, got, tt.lo, tt.hi)
			}
		}
	}
}
