package main

import (
	"context"
	"io"
	"testing"

	"github.com/the-red/zkpost/internal/testenv/itest"
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
