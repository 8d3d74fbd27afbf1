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
var durableSettings = []setting{
	{"innodb_flush_log_at_trx_commit", "1"},
	{"sync_binlog", "1"},
}

// setting is one global server variable and the value a run gives it.
type setting struct{ name, value string }

// makeDurable sets durableSettings on the MariaDB servers at addrs and returns what puts the
// old values back.
func makeDurable(ctx context.Context, addrs []string, out io.Writer) (restore func(), err error) {
	restore, err = forEachServer(ctx, addrs, func(db *sql.DB, addr string) (func(), error) {
		return setGlobals(ctx, db, addr, durableSettings)
	})
	if err != nil {
		return nil, err
	}
	var set []string
	for _, s := range durableSettings {
		set = append(set, s.name+"="+s.value)
	}
	fmt.Fprintf(out, "database: %s on %s for the run (restored afterwards)\n", strings.Join(set, ", "), strings.Join(addrs, " and "))
	return restore, nil
}

// forEachServer connects to each MariaDB server at addrs (as root over loopback, the account
// devcluster creates) and runs change on it. It returns what undoes every change made, in reverse
// order, and closes the connections; on an error it has undone them already.
func forEachServer(ctx context.Context, addrs []string, change func(db *sql.DB, addr string) (undo func(), err error)) (restore func(), err error) {
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
		undo = append(undo, func() { db.Close() }) // undone last: after the change below
		u, err := change(db, addr)
		if err != nil {
			restore()
			return nil, err
		}
		undo = append(undo, u)
	}
	return restore, nil
}

// setGlobals gives the server behind db each setting and returns what puts the old values back.
func setGlobals(ctx context.Context, db *sql.DB, addr string, settings []setting) (undo func(), err error) {
	var olds []setting
	undo = func() {
		for i := len(olds) - 1; i >= 0; i-- {
			_, _ = db.ExecContext(context.Background(), fmt.Sprintf("SET GLOBAL %s = %s", olds[i].name, olds[i].value))
		}
	}
	for _, s := range settings {
		var old string
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL."+s.name).Scan(&old); err != nil {
			undo()
			return nil, fmt.Errorf("%s: reading %s: %w", addr, s.name, err)
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SET GLOBAL %s = %s", s.name, s.value)); err != nil {
			undo()
			return nil, fmt.Errorf("%s: setting %s: %w", addr, s.name, err)
		}
		olds = append(olds, setting{s.name, old})
	}
	return undo, nil
}
