package main

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	postqueue "github.com/the-red/zkpost/post/queue"
)

// TestLifecycle: writebackd starts with ZooKeeper down (alive; not ready, since the database and
// the queue are named in ZooKeeper), becomes ready once they are, persists a queued post, and
// exposes the queue depth, the batch sizes, the queue latency and the ZooKeeper session. On
// SIGTERM its node goes before it exits.
func TestLifecycle(t *testing.T) {
	z := itest.StartZooKeeper(t)
	db := itest.StartMariaDB(t)
	sqlDB := db.DB(t, "zkpost")
	queue := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	const namespace = "wb_lifecycle"

	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	base := "http://" + addr
	layout := discovery.Layout{Root: "/writebackd_lifecycle"}
	daemontest.Lifecycle{
		ZK: z, Base: base, Root: layout.Root, NodeDir: layout.Nodes("writeback"), Node: addr,
		Spec: itest.Launch(t, launch.Writebackd, launch.Instance{Listen: addr, ZK: z.Addr(), ZKRoot: layout.Root,
			ZKSessionTimeout: 4 * time.Second, DB: launch.Account{User: "root", Name: "zkpost"}},
			"--queue-namespace", namespace, "--log-format", "text"),
		OnZooKeeperUp: func(t *testing.T, conn *discovery.Conn) {
			daemontest.CreateNode(t, conn, layout.DB(), daemontest.JSON(discovery.DBEndpoints{Primary: db.Addr()}))
			daemontest.CreateNode(t, conn, layout.Queue(), daemontest.JSON(discovery.QueueEndpoints{Primary: queue.Addr()}))
		},
		WhileReady: func(t *testing.T) {
			enq := postqueue.NewEnqueuer(postqueue.Config{Namespace: namespace}, slog.New(slog.DiscardHandler))
			defer enq.Close()
			enq.SetEndpoints(discovery.QueueEndpoints{Primary: queue.Addr()})
			p := post.Post{ID: 1 << 40, UserID: 7, Contents: "lifecycle", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
			if err := enq.Enqueue(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			itest.WaitFor(t, 20*time.Second, "the post in the database", func() bool {
				var n int
				return sqlDB.QueryRow("SELECT COUNT(*) FROM posts WHERE post_id = ?", p.ID).Scan(&n) == nil && n == 1
			})
			daemontest.WaitMetric(t, base, "writeback_batch_size_count", 1)
			daemontest.WaitMetric(t, base, "writeback_queue_latency_seconds_count", 1)
			daemontest.WaitMetric(t, base, `writeback_batches_total{result="ok"}`, 1)
			daemontest.WaitMetric(t, base, `writeback_queue_jobs{state="queued"}`, 0)
			daemontest.RequireSeries(t, base,
				`writeback_queue_jobs{state="dead"}`, `writeback_queue_jobs{state="retry"}`,
				`db_endpoint_healthy{addr="`+db.Addr()+`",role="primary"}`,
				`zk_watch_snapshot_age_seconds{path="`+layout.DB()+`"}`,
				`zk_watch_snapshot_age_seconds{path="`+layout.Queue()+`"}`,
				`http_requests_total{route="readyz",status="200"}`)
		},
	}.Run(t)
}
