package writeback_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
	"github.com/the-red/zkpost/post/queue"
	"github.com/the-red/zkpost/writeback"
)

const namespace = "wb_test"

var quiet = slog.New(slog.DiscardHandler)

// env is a queue Redis and a MariaDB primary with the zkpost database.
type env struct {
	redis *itest.Redis
	db    *itest.MariaDB
	sql   *sql.DB // root on the zkpost database
	enq   *queue.Enqueuer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{redis: itest.StartRedis(t, itest.RedisOptions{AOF: true}), db: itest.StartMariaDB(t)}
	e.sql = e.db.DB(t, "zkpost")
	e.enq = queue.NewEnqueuer(queue.Config{Namespace: namespace}, quiet)
	t.Cleanup(func() { e.enq.Close() })
	e.enq.SetEndpoints(discovery.QueueEndpoints{Primary: e.redis.Addr()})
	return e
}

func dbConfig() mysql.Config {
	return mysql.Config{User: "root", Name: "zkpost", CheckInterval: 200 * time.Millisecond,
		DialTimeout: 500 * time.Millisecond, IOTimeout: 2 * time.Second}
}

func testConfig() writeback.Config {
	return writeback.Config{Listen: "127.0.0.1:0", DB: dbConfig(), Queue: queue.Config{Namespace: namespace},
		Concurrency: 64, BatchMax: 64, CommitTimeout: 2 * time.Second,
		StatsInterval: 200 * time.Millisecond}
}

// startService runs a writeback.Service in-process against e until the test ends.
func startService(t *testing.T, e *env, cfg writeback.Config) *writeback.Service {
	t.Helper()
	svc, err := writeback.New(cfg, quiet, metrics.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	svc.SetDBEndpoints(discovery.DBEndpoints{Primary: e.db.Addr()})
	svc.SetQueueEndpoints(discovery.QueueEndpoints{Primary: e.redis.Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return svc
}

func newPost(id uint64) post.Post {
	return post.Post{ID: id, UserID: id%7 + 1, Contents: fmt.Sprintf("post %d 🎉", id),
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
}

// enqueueAll enqueues posts first..first+n-1 from workers goroutines and returns the acked ids.
func enqueueAll(t testing.TB, enq *queue.Enqueuer, first uint64, n, workers int) map[uint64]bool {
	t.Helper()
	var mu sync.Mutex
	acked := map[uint64]bool{}
	var wg sync.WaitGroup
	ids := make(chan uint64)
	for range workers {
		wg.Go(func() {
			for id := range ids {
				if err := enq.Enqueue(context.Background(), newPost(id)); err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		})
	}
	for id := first; id < first+uint64(n); id++ {
		ids <- id
	}
	close(ids)
	wg.Wait()
	return acked
}

func countRows(t testing.TB, db *sql.DB) (rows, distinct int) {
	t.Helper()
	err := db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT post_id) FROM posts").Scan(&rows, &distinct)
	if err != nil {
		return -1, -1
	}
	return rows, distinct
}

// assertExactlyOnce checks every acked id is in the table once and nothing else is.
func assertExactlyOnce(t *testing.T, db *sql.DB, acked map[uint64]bool) {
	t.Helper()
	rows, distinct := countRows(t, db)
	if rows != distinct {
		t.Errorf("COUNT(*) = %d, COUNT(DISTINCT post_id) = %d; want equal", rows, distinct)
	}
	if rows != len(acked) {
		t.Errorf("rows = %d, want %d (every acked post)", rows, len(acked))
	}
	r, err := db.Query("SELECT post_id FROM posts")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var id uint64
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !acked[id] {
			t.Errorf("post %d in the table was never acked", id)
		}
	}
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestGroupCommit(t *testing.T) {
	e := newEnv(t)
	const n = 2000
	// Enqueue first, so the pool finds a backlog and batches fill.
	acked := enqueueAll(t, e.enq, 1, n, 16)
	if len(acked) != n {
		t.Fatalf("acked %d of %d", len(acked), n)
	}
	svc := startService(t, e, testConfig())
	base := "http://" + svc.Addr().String()
	itest.WaitFor(t, 60*time.Second, "every post in MySQL", func() bool {
		rows, _ := countRows(t, e.sql)
		return rows == n
	})
	assertExactlyOnce(t, e.sql, acked)
	if b := svc.Batches(); b >= n || b == 0 {
		t.Errorf("statements = %d for %d posts; want group commit (fewer statements than posts)", b, n)
	}
	t.Logf("%d posts in %d statements", n, svc.Batches())

	itest.WaitFor(t, 10*time.Second, "readyz 200", func() bool {
		code, _ := getStatus(t, base+"/readyz")
		return code == http.StatusOK
	})
	_, body := getStatus(t, base+"/metrics")
	for _, want := range []string{"writeback_batch_size_count", "writeback_queue_latency_seconds_bucket",
		`queue_jobs_total{result="done"} 2000`, `writeback_queue_jobs{state="queued"}`, `db_endpoint_healthy{addr=`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := getStatus(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestReadinessWithoutDatabase(t *testing.T) {
	svc, err := writeback.New(testConfig(), quiet, metrics.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); svc.Close() }()
	go svc.Run(ctx)
	base := "http://" + svc.Addr().String()
	itest.WaitFor(t, 5*time.Second, "healthz 200", func() bool {
		code, _ := getStatus(t, base+"/healthz")
		return code == http.StatusOK
	})
	code, body := getStatus(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "database: no endpoint") {
		t.Errorf("readyz = %d %s; want 503 naming the missing database endpoint", code, body)
	}
	var doc struct{ Reasons []string }
	if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Reasons) == 0 {
		t.Errorf("readyz body %s: want a JSON list of reasons (%v)", body, err)
	}
}

// TestDatabaseOutage stops the primary while posts are enqueued. With gocraft's default of 4
// fails, jobs would reach the dead set within seconds of backoff; with our policy they wait and
// all land once the database is back.
func TestDatabaseOutage(t *testing.T) {
	outage := 30 * time.Second
	if testing.Short() {
		outage = 10 * time.Second
	}
	e := newEnv(t)
	cfg := testConfig()
	cfg.RetryCap = 4 * time.Second // keeps the test short; the default cap is 30 s
	svc := startService(t, e, cfg)
	base := "http://" + svc.Addr().String()
	acked := enqueueAll(t, e.enq, 1, 100, 4)
	itest.WaitFor(t, 30*time.Second, "the first posts in MySQL", func() bool {
		rows, _ := countRows(t, e.sql)
		return rows == 100
	})

	e.db.Stop()
	itest.WaitFor(t, 10*time.Second, "readyz to report the database", func() bool {
		code, body := getStatus(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "database")
	})
	deadline := time.Now().Add(outage)
	pace := time.NewTicker(time.Second) // a trickle of posts through the whole outage
	defer pace.Stop()
	for next := uint64(1000); time.Now().Before(deadline); next += 20 {
		for id, ok := range enqueueAll(t, e.enq, next, 20, 4) {
			acked[id] = ok
		}
		<-pace.C
	}
	if code, _ := getStatus(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz during the outage = %d, want 200", code)
	}
	e.db.Start(t)

	itest.WaitFor(t, 60*time.Second, "every acked post in MySQL after the outage", func() bool {
		rows, _ := countRows(t, e.sql)
		return rows == len(acked)
	})
	assertExactlyOnce(t, e.sql, acked)
	st, err := e.enq.Stats(context.Background())
	if err != nil || st.Dead != 0 {
		t.Errorf("queue stats %+v, %v; want an empty dead set", st, err)
	}
}
