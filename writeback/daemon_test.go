package writeback_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/queue"
)

// setNode writes a persistent ZooKeeper node, creating it and its parents when missing.
func setNode(t *testing.T, conn *discovery.Conn, p string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.EnsurePath(p); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ZK().Set(p, data, -1); err != nil {
		t.Fatalf("setting %s: %v", p, err)
	}
}

func dialZK(t *testing.T, z *itest.ZooKeeper) *discovery.Conn {
	t.Helper()
	conn, err := discovery.Dial(discovery.Config{Servers: z.Addr(), SessionTimeout: 2 * time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := conn.WaitSession(ctx); err != nil {
		t.Fatalf("ZooKeeper session: %v", err)
	}
	return conn
}

// TestKillNineExactlyOnce kills writebackd with SIGKILL twice while posts are being enqueued and
// committed, restarting it each time (as devcluster or systemd would), and checks that every
// acknowledged post ends up in MySQL exactly once. The killed process's in-flight jobs come back
// only through the restarted pool's dead-pool reaper, which runs 10 s after the pool starts.
func TestKillNineExactlyOnce(t *testing.T) {
	e := newEnv(t)
	z := itest.StartZooKeeper(t)
	conn := dialZK(t, z)
	layout := discovery.Layout{Root: "/wbkill"}
	setNode(t, conn, layout.DB(), discovery.DBEndpoints{Primary: e.db.Addr()})
	setNode(t, conn, layout.Queue(), discovery.QueueEndpoints{Primary: e.redis.Addr()})

	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	d := itest.StartDaemon(t, itest.DaemonSpec{
		Name: "writebackd",
		Bin:  itest.BuildBinary(t, "./writeback/cmd/writebackd"),
		Args: []string{"--listen", addr, "--zk", z.Addr(), "--zk-root", layout.Root, "--zk-session-timeout", "2s",
			"--db-user", "root", "--db-name", "zkpost", "--queue-namespace", namespace,
			"--concurrency", "64", "--batch-max", "64", "--log-format", "text"},
		Port:         port,
		ReadyURL:     "http://" + addr + "/readyz",
		ReadyTimeout: 30 * time.Second,
	})
	itest.WaitFor(t, 10*time.Second, "writebackd registered in ZooKeeper", func() bool {
		kids, _, err := conn.ZK().Children(layout.Nodes("writeback"))
		return err == nil && len(kids) == 1 && kids[0] == addr
	})

	const total, step = 6000, 12
	var mu sync.Mutex
	acked := map[uint64]bool{}
	produced := make(chan struct{})
	go func() { // up to ~1,200 posts a second, so that jobs are in flight whenever the kill comes
		defer close(produced)
		pace := time.NewTicker(10 * time.Millisecond)
		defer pace.Stop()
		for next := uint64(1); next <= total; next += step {
			for id, ok := range enqueueAll(t, e.enq, next, step, 4) {
				mu.Lock()
				acked[id] = ok
				mu.Unlock()
			}
			<-pace.C
		}
	}()

	for _, at := range []int{800, 3000} {
		itest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d rows and jobs in flight before the kill", at), func() bool {
			rows, _ := countRows(t, e.sql)
			return rows >= at && inProgress(t, e) >= 5
		})
		d.Kill()
		rows, _ := countRows(t, e.sql)
		t.Logf("killed writebackd with %d rows committed, %d jobs left in progress", rows, inProgress(t, e))
		d.Start(t)
	}
	restarted := time.Now()
	<-produced
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n != total {
		t.Fatalf("acked %d of %d posts (the queue stayed up)", n, total)
	}
	itest.WaitFor(t, 90*time.Second, "every acked post in MySQL", func() bool {
		rows, _ := countRows(t, e.sql)
		return rows == total
	})
	t.Logf("all %d posts committed %s after the last restart", total, time.Since(restarted).Round(100*time.Millisecond))
	assertExactlyOnce(t, e.sql, acked)
	assertQueueDrained(t, e)

	// SIGTERM: the node goes at once (not after the session timeout) and the exit is clean.
	d.Stop()
	if exited, err := d.Wait(0); !exited || err != nil {
		t.Errorf("after SIGTERM: exited %v, err %v; want a clean exit", exited, err)
	}
	kids, _, err := conn.ZK().Children(layout.Nodes("writeback"))
	if err != nil && err != zk.ErrNoNode || len(kids) != 0 {
		t.Errorf("registrations after SIGTERM = %v (%v); want none", kids, err)
	}
}

// inProgress counts the jobs in every pool's in-progress list.
func inProgress(t *testing.T, e *env) int64 {
	t.Helper()
	ctx := context.Background()
	rc := e.redis.Client(t)
	keys, err := rc.Keys(ctx, namespace+":jobs:persist_post:*:inprogress").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		n += rc.LLen(ctx, k).Val()
	}
	return n
}

// assertQueueDrained checks nothing is left queued, retrying, dead or in progress.
func assertQueueDrained(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	// Jobs committed but not acknowledged before a kill stay in the killed pool's in-progress
	// list until a reaper finds the pool dead (heartbeat over 10 s old, checked every 5 s).
	itest.WaitFor(t, 30*time.Second, "queue drained", func() bool {
		st, err := e.enq.Stats(ctx)
		if err != nil || st.Queued != 0 || st.Retry != 0 || st.Dead != 0 {
			return false
		}
		return inProgress(t, e) == 0
	})
}

// TestDaemonFollowsZooKeeper moves writebackd to a promoted queue Redis and then to a new
// database primary by rewriting R/queue/sidekiq and R/db, without a restart; the new primary gets
// the schema on the fly. It also configures the daemon through WRITEBACKD_* variables.
func TestDaemonFollowsZooKeeper(t *testing.T) {
	e := newEnv(t)
	z := itest.StartZooKeeper(t)
	conn := dialZK(t, z)
	layout := discovery.Layout{Root: "/wbfollow"}
	setNode(t, conn, layout.DB(), discovery.DBEndpoints{Primary: e.db.Addr()})
	setNode(t, conn, layout.Queue(), discovery.QueueEndpoints{Primary: e.redis.Addr()})

	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	itest.StartDaemon(t, itest.DaemonSpec{
		Name: "writebackd",
		Bin:  itest.BuildBinary(t, "./writeback/cmd/writebackd"),
		Args: []string{"--listen", addr, "--zk", z.Addr(), "--zk-root", layout.Root, "--log-format", "text"},
		Env: []string{"WRITEBACKD_DB_USER=root", "WRITEBACKD_DB_NAME=zkpost", "WRITEBACKD_QUEUE_NAMESPACE=" + namespace,
			"WRITEBACKD_CONCURRENCY=8", "WRITEBACKD_DB_CHECK_INTERVAL=200ms"},
		Port:     port,
		ReadyURL: "http://" + addr + "/readyz",
	})
	ctx := context.Background()
	landed := func(db *sql.DB, id uint64) func() bool {
		return func() bool {
			var n int
			return db.QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE post_id = ?", id).Scan(&n) == nil && n == 1
		}
	}
	if err := e.enq.Enqueue(ctx, newPost(1)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 20*time.Second, "post 1 in the first database", landed(e.sql, 1))

	promoted := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	setNode(t, conn, layout.Queue(), discovery.QueueEndpoints{Primary: promoted.Addr(), Secondary: []string{e.redis.Addr()}})
	enq2 := queue.NewEnqueuer(queue.Config{Namespace: namespace}, quiet)
	defer enq2.Close()
	enq2.SetEndpoints(discovery.QueueEndpoints{Primary: promoted.Addr()})
	if err := enq2.Enqueue(ctx, newPost(2)); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 20*time.Second, "post 2, queued on the promoted Redis, in the database", landed(e.sql, 2))

	newDB := itest.StartMariaDB(t)
	newSQL := newDB.DB(t, "zkpost")
	setNode(t, conn, layout.DB(), discovery.DBEndpoints{Primary: newDB.Addr()})
	// Until the daemon sees the new node, post 3 may still land on the old primary; keep
	// enqueueing fresh posts until one lands on the new one.
	next := uint64(3)
	itest.WaitFor(t, 20*time.Second, "a post in the new primary", func() bool {
		if err := enq2.Enqueue(ctx, newPost(next)); err != nil {
			t.Fatal(err)
		}
		next++
		return itest.Eventually(2*time.Second, landed(newSQL, next-1))
	})
}
