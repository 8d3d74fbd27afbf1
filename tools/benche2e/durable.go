package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"

	_ "github.com/go-sql-driver/mysql" // the MariaDB driver
)

// durableSettings are what an fsync on every commit takes: the setting production runs with, and
// the one that matches the queue, which fsyncs every write on its primary and its replica
// (docs/failure-semantics.md §1). devcluster's default (innodb_flush_log_at_trx_commit=2,
// sync_binlog=0) survives kill -9 but not an OS crash, and would let write-through acknowledge
// posts less durable than write-back's.
var durableSettings = []struct{ name, value string }{
	{"innodb_flush_log_at_trx_commit", "1"},
	{"sync_binlog", "1"},
}

// makeDurable sets durableSettings on the MariaDB servers at addrs (as root over loopback, the
// account devcluster creates) and returns what puts the old values back.
func makeDurable(ctx context.Context, addrs []string, out io.Writer) (restore func(), err error) {
	var undo []func()
	restore = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	for _, addr := range addrs {
		db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/?timeout=5s", addr))
		if err != nil {
			restore()
			return nil, err
		}
		undo = append(undo, func() { db.Close() }) // undone last: after the settings below

		for _, s := range durableSettings {
			var old string
			if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+s.name).Scan(&old); err != nil {
				restore()
				return nil, fmt.Errorf("%s: reading %s: %w", addr, s.name, err)
			}
			if _, err := db.ExecContext(ctx, fmt.Sprintf("SET GLOBAL %s = %s", s.name, s.value)); err != nil {
				restore()
				return nil, fmt.Errorf("%s: setting %s: %w", addr, s.name, err)
			}
			name := s.name
			undo = append(undo, func() {
				_, _ = db.ExecContext(context.Background(), fmt.Sprintf("SET GLOBAL %s = %s", name, old))
			})
		}
	}
	var set []string
	for _, s := range durableSettings {
		set = append(set, s.name+"="+s.value)
	}
	fmt.Fprintf(out, "database: %s on %s for the run (restored afterwards)\n", strings.Join(set, ", "), strings.Join(addrs, " and "))
	return restore, nil
}
