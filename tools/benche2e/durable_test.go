package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/mysql"
)

// TestMakeDurableSetsAndRestores runs makeDurable on a real MariaDB: during the run every
// durable setting holds, and restore puts back what the server had before.
func TestMakeDurableSetsAndRestores(t *testing.T) {
	m := itest.StartMariaDB(t)
	db := m.DB(t, "")
	ctx := context.Background()
	read := func() (trx, binlog string) {
		t.Helper()
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.sync_binlog").Scan(&trx, &binlog); err != nil {
			t.Fatal(err)
		}
		return trx, binlog
	}
	trx0, binlog0 := read()
	if trx0 == "1" && binlog0 == "1" {
		t.Fatalf("the test server is durable already (%s, %s): nothing to see restored", trx0, binlog0)
	}
	restore, err := makeDurable(ctx, []string{m.Addr()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if trx, binlog := read(); trx != "1" || binlog != "1" {
		t.Errorf("during the run: innodb_flush_log_at_trx_commit=%s sync_binlog=%s, want 1 and 1", trx, binlog)
	}
	restore()
	if trx, binlog := read(); trx != trx0 || binlog != binlog0 {
		t.Errorf("after restore: %s and %s, want the old %s and %s", trx, binlog, trx0, binlog0)
	}
}

func TestPoolFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ table, current, want int64 }{
		{580 * mib, 64 * mib, 1152 * mib}, // 870 + 256 = 1126, up to whole 128 MiB chunks
		{0, 64 * mib, 256 * mib},
		{0, 2048 * mib, 2048 * mib},          // a pool that holds the table already is kept
		{1100 * mib, 2048 * mib, 2048 * mib}, // 1,906 MiB wanted
		{1300 * mib, 2048 * mib, 2304 * mib},
	} {
		if got := poolFor(c.table, c.current); got != c.want {
			t.Errorf("poolFor(%d MiB, %d MiB) = %d MiB, want %d MiB", c.table/mib, c.current/mib, got/mib, c.want/mib)
		}
	}
}

// TestFitBufferPoolSetsWarmsAndRestores runs fitBufferPool on a real MariaDB holding a posts
// table: during the run the pool is poolFor's size and both of the table's indexes have been read
// through it; restore puts the old size back.
func TestFitBufferPoolSetsWarmsAndRestores(t *testing.T) {
	m := itest.StartMariaDB(t)
	db := m.DB(t, "zkpost")
	ctx := context.Background()
	if err := mysql.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO posts (post_id, user_id, contents, created_at) VALUES (1, 7, 'a', NOW(3)), (2, 8, 'b', NOW(3))"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE posts"); err != nil {
		t.Fatal(err)
	}
	root := m.DB(t, "")
	var pool0, tableBytes int64
	if err := root.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_buffer_pool_size").Scan(&pool0); err != nil {
		t.Fatal(err)
	}
	if err := root.QueryRowContext(ctx, "SELECT data_length + index_length FROM information_schema.tables WHERE table_schema = 'zkpost' AND table_name = 'posts'").Scan(&tableBytes); err != nil {
		t.Fatal(err)
	}
	want := poolFor(tableBytes, pool0)
	if want == pool0 {
		t.Fatalf("the test server's pool (%d) holds the table already: nothing to see set", pool0)
	}
	reads := func() (n int64) {
		t.Helper()
		var name string
		if err := root.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_read_requests'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := reads()
	var out strings.Builder
	restore, err := fitBufferPool(ctx, []string{m.Addr()}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var pool int64
	if err := root.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_buffer_pool_size").Scan(&pool); err != nil {
		t.Fatal(err)
	}
	if pool != want {
		t.Errorf("during the run the pool is %d, want %d", pool, want)
	}
	if after := reads(); after <= before {
		t.Errorf("buffer pool read requests %d → %d: the indexes were not read", before, after)
	}
	if !strings.Contains(out.String(), "restored afterwards") {
		t.Errorf("the report does not say the pool was changed for the run: %q", out.String())
	}
	restore()
	if err := root.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_buffer_pool_size").Scan(&pool); err != nil {
		t.Fatal(err)
	}
	if pool != pool0 {
		t.Errorf("after restore the pool is %d, want the old %d", pool, pool0)
	}
}

// TestAwaitReplica: with replication stopped, awaitReplica gives up after its timeout with an
// error; once replication runs again it returns, and the replica then holds the primary's row.
func TestAwaitReplica(t *testing.T) {
	primary := itest.StartMariaDB(t)
	replica := itest.StartMariaDBReplica(t, primary)
	ctx := context.Background()
	pdb, rdb := primary.DB(t, "zkpost"), replica.DB(t, "zkpost")
	if err := mysql.Migrate(ctx, pdb); err != nil {
		t.Fatal(err)
	}
	if _, err := awaitReplica(ctx, pdb, rdb, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	replica.StopReplication(t)
	if _, err := pdb.ExecContext(ctx, "INSERT INTO posts (post_id, user_id, contents, created_at) VALUES (1, 7, 'a', NOW(3))"); err != nil {
		t.Fatal(err)
	}
	if _, err := awaitReplica(ctx, pdb, rdb, time.Second); err == nil {
		t.Fatal("awaitReplica returned without error while the replica was stopped")
	}
	replica.StartReplication(t)
	if _, err := awaitReplica(ctx, pdb, rdb, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE post_id = 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("after awaitReplica the replica has %d rows of post 1, want 1", n)
	}
}
