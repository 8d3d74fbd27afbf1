package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The buffer pool a run gives a server whose posts table it would not hold: the table, half as
// much again for what the run writes and for the pool's own overhead, and a fixed margin, in
// whole chunks.
const (
	poolMargin = 256 << 20
	poolChunk  = 128 << 20
)

// poolFor returns the buffer pool size that holds a table of tableBytes, or current when that
// does already.
func poolFor(tableBytes, current int64) int64 {
	want := tableBytes + tableBytes/2 + poolMargin
	want = (want + poolChunk - 1) / poolChunk * poolChunk
	return max(want, current)
}

// fitBufferPool gives each MariaDB server at addrs, for the run, an InnoDB buffer pool that holds
// its posts tables (poolFor), reads the tables' indexes into it and returns what puts the old
// sizes back. A database is provisioned for its data, production's as any; devcluster's pool is
// sized for a developer's machine (servers.ClusterInnoDB), while the benchmark's table grows with
// every run (4.9 M rows, 580 MiB, by 3 Dec). Through a pool smaller than the table every insert's
// random page of the (user_id, post_id) index was a read from disk and, later, a page write:
// work both arms pay per row, the database's and not the write path's, and more of it every run
// (docs/benchmarks.md, "The database's buffer pool").
func fitBufferPool(ctx context.Context, addrs []string, out io.Writer) (restore func(), err error) {
	return forEachServer(ctx, addrs, func(db *sql.DB, addr string) (func(), error) {
		var current int64
		if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.innodb_buffer_pool_size").Scan(&current); err != nil {
			return nil, fmt.Errorf("%s: reading innodb_buffer_pool_size: %w", addr, err)
		}
		tables, err := postsTables(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		var bytes, rows int64
		for _, t := range tables {
			bytes, rows = bytes+t.bytes, rows+t.rows
		}
		want := poolFor(bytes, current)
		undo := func() {}
		if want > current {
			undo, err = setGlobals(ctx, db, addr, []setting{{"innodb_buffer_pool_size", strconv.FormatInt(want, 10)}})
			if err != nil {
				return nil, err
			}
			if err := awaitResize(ctx, db); err != nil {
				undo()
				return nil, fmt.Errorf("%s: %w", addr, err)
			}
		}
		start := time.Now()
		for _, t := range tables {
			if err := t.warm(ctx, db); err != nil {
				undo()
				return nil, fmt.Errorf("%s: %w", addr, err)
			}
		}
		change := "kept"
		if want > current {
			change = fmt.Sprintf("%d MiB for the run (was %d MiB, restored afterwards)", want>>20, current>>20)
		}
		fmt.Fprintf(out, "database: %s posts table %d MiB, ~%d rows; buffer pool %s; indexes read in %.1fs\n",
			addr, bytes>>20, rows, change, time.Since(start).Seconds())
		return undo, nil
	})
}

// postsTable is one schema's posts table, as information_schema estimates it.
type postsTable struct {
	schema      string
	bytes, rows int64
}

func postsTables(ctx context.Context, db *sql.DB) ([]postsTable, error) {
	rs, err := db.QueryContext(ctx, `SELECT table_schema, data_length + index_length, COALESCE(table_rows, 0)
		FROM information_schema.tables WHERE table_name = 'posts' AND engine = 'InnoDB'`)
	if err != nil {
		return nil, fmt.Errorf("sizing the posts tables: %w", err)
	}
	defer rs.Close()
	var ts []postsTable
	for rs.Next() {
		var t postsTable
		if err := rs.Scan(&t.schema, &t.bytes, &t.rows); err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rs.Err()
}

// warm reads both of the table's indexes through the buffer pool, so that the measured rounds do
// not pay for the first read of each page.
func (t postsTable) warm(ctx context.Context, db *sql.DB) error {
	name := "`" + strings.ReplaceAll(t.schema, "`", "``") + "`.posts"
	for _, index := range []string{"PRIMARY", "user_post"} {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+name+" FORCE INDEX ("+index+")").Scan(&n); err != nil {
			return fmt.Errorf("reading %s's %s index: %w", name, index, err)
		}
	}
	return nil
}

// awaitResize waits, up to a minute, for a buffer pool resize to finish: the status is empty
// before any, and says "Completed" after one.
func awaitResize(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var name, status string
		err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'").Scan(&name, &status)
		if err != nil {
			return fmt.Errorf("resizing the buffer pool: %w", err)
		}
		if status == "" || strings.HasPrefix(status, "Completed") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resizing the buffer pool: %w (status %q)", ctx.Err(), status)
		case <-tick.C:
		}
	}
}
