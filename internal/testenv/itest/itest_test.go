package itest_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

func TestZooKeeperKillAndRestartKeepsPersistentNodes(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	z := itest.StartZooKeeper(t)
	t.Logf("zookeeper ready in %s", time.Since(begin))

	conn := connectZK(t, z)
	if _, err := conn.Create("/itest", []byte("kept"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create /itest: %v", err)
	}
	conn.Close()

	z.Kill()
	if z.Running() {
		t.Fatal("Running() = true after Kill")
	}
	if err := dialErr(z.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Kill: got %v, want connection refused", err)
	}

	begin = time.Now()
	z.Start(t)
	t.Logf("zookeeper restarted in %s", time.Since(begin))
	conn = connectZK(t, z)
	data, _, err := conn.Get("/itest")
	if err != nil {
		t.Fatalf("get /itest after restart: %v", err)
	}
	if string(data) != "kept" {
		t.Fatalf("got /itest = %q, want %q", data, "kept")
	}
}

func connectZK(t *testing.T, z *itest.ZooKeeper) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect(z.Servers(), 2*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk connect: %v", err)
	}
	t.Cleanup(conn.Close)
	itest.WaitFor(t, 10*time.Second, "zk session", func() bool {
		return conn.State() == zk.StateHasSession
	})
	return conn
}

func dialErr(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

func TestRedisPauseAndResume(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	r := itest.StartRedis(t, itest.RedisOptions{})
	t.Logf("redis ready in %s", time.Since(begin))
	c := r.Client(t)
	if err := c.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	r.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := c.Ping(ctx).Err()
	cancel()
	if !isTimeout(err) {
		t.Fatalf("PING while paused: got %v, want a timeout", err)
	}

	r.Resume()
	itest.WaitFor(t, 5*time.Second, "PONG after Resume", func() bool {
		return c.Ping(context.Background()).Val() == "PONG"
	})
	if got := c.Get(context.Background(), "k").Val(); got != "v" {
		t.Fatalf("GET k after Resume: got %q, want %q", got, "v")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func TestRedisAOFSurvivesKill(t *testing.T) {
	t.Parallel()
	r := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	c := r.Client(t)
	if err := c.Set(context.Background(), "k", "durable", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	r.Kill()
	r.Start(t)
	if got := c.Get(context.Background(), "k").Val(); got != "durable" {
		t.Fatalf("GET k after restart: got %q, want %q", got, "durable")
	}
}

func TestRedisReplicaOf(t *testing.T) {
	t.Parallel()
	primary := itest.StartRedis(t, itest.RedisOptions{})
	replica := itest.StartRedis(t, itest.RedisOptions{ReplicaOf: primary.Addr()})
	if err := primary.Client(t).Set(context.Background(), "k", "copied", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	rc := replica.Client(t)
	itest.WaitFor(t, 10*time.Second, "key on replica", func() bool {
		return rc.Get(context.Background(), "k").Val() == "copied"
	})
}

func TestMariaDBReplication(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	primary := itest.StartMariaDB(t)
	t.Logf("mariadb primary ready in %s", time.Since(begin))
	begin = time.Now()
	replica := itest.StartMariaDBReplica(t, primary)
	t.Logf("mariadb replica ready in %s", time.Since(begin))
	if primary.ServerID == replica.ServerID {
		t.Fatalf("primary and replica share server id %d", primary.ServerID)
	}

	pdb := primary.DB(t, "app")
	mustExec(t, pdb, "CREATE TABLE posts (id BIGINT PRIMARY KEY, body TEXT)")
	mustExec(t, pdb, "INSERT INTO posts VALUES (1, 'héllo ✓')")
	rdb := replica.DB(t, "app")
	replica.WaitReplicated(t, primary)
	if got := body(t, rdb, 1); got != "héllo ✓" {
		t.Fatalf("row 1 on replica: got %q, want %q", got, "héllo ✓")
	}

	replica.StopReplication(t)
	if _, io, sqlRunning := replica.ReplicaStatus(t); io || sqlRunning {
		t.Fatalf("after StopReplication: io=%v sql=%v, want both stopped", io, sqlRunning)
	}
	mustExec(t, pdb, "INSERT INTO posts VALUES (2, 'later')")
	if got := body(t, rdb, 2); got != "" {
		t.Fatalf("row 2 reached the replica while replication was stopped: %q", got)
	}

	replica.StartReplication(t)
	replica.WaitReplicated(t, primary)
	if got := body(t, rdb, 2); got != "later" {
		t.Fatalf("row 2 on replica after StartReplication: got %q, want %q", got, "later")
	}
	if secs, io, sqlRunning := replica.ReplicaStatus(t); !io || !sqlRunning || !secs.Valid {
		t.Fatalf("replica status: behind=%v io=%v sql=%v, want running", secs, io, sqlRunning)
	}
}

func TestMariaDBRestartKeepsData(t *testing.T) {
	t.Parallel()
	m := itest.StartMariaDB(t)
	db := m.DB(t, "app")
	mustExec(t, db, "CREATE TABLE posts (id BIGINT PRIMARY KEY, body TEXT)")
	mustExec(t, db, "INSERT INTO posts VALUES (1, 'kept')")
	m.Kill()
	if err := dialErr(m.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Kill: got %v, want connection refused", err)
	}
	begin := time.Now()
	m.Start(t)
	t.Logf("mariadb restarted in %s", time.Since(begin))
	if got := body(t, db, 1); got != "kept" {
		t.Fatalf("row 1 after restart: got %q, want %q", got, "kept")
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// body returns the body of post id, or "" if there is none.
func body(t *testing.T, db *sql.DB, id int) string {
	t.Helper()
	var b string
	err := db.QueryRow("SELECT body FROM posts WHERE id = ?", id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatalf("select post %d: %v", id, err)
	}
	return b
}

func TestMariaDBReplicationSurvivesRestarts(t *testing.T) {
	t.Parallel()
	primary := itest.StartMariaDB(t)
	replica := itest.StartMariaDBReplica(t, primary)
	pdb := primary.DB(t, "app")
	mustExec(t, pdb, "CREATE TABLE posts (id BIGINT PRIMARY KEY, body TEXT)")

	primary.Kill()
	primary.Start(t)
	mustExec(t, pdb, "INSERT INTO posts VALUES (1, 'after primary restart')")
	replica.WaitReplicated(t, primary)

	replica.Kill()
	replica.Start(t)
	mustExec(t, pdb, "INSERT INTO posts VALUES (2, 'after replica restart')")
	replica.WaitReplicated(t, primary)
	rdb := replica.DB(t, "app")
	for id, want := range map[int]string{1: "after primary restart", 2: "after replica restart"} {
		if got := body(t, rdb, id); got != want {
			t.Fatalf("row %d on replica: got %q, want %q", id, got, want)
		}
	}
}
