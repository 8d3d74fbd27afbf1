package itest

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

const (
	replicationLimit = 30 * time.Second
	// gtidWaitLimit stays under the 30s statement and read timeouts of exec and queryRow.
	gtidWaitLimit = 20 * time.Second
)

// StartMariaDBReplica starts a MariaDB replicating from primary as
// internal/launch/servers sets replication up (by GTID, as ReplUser), and waits
// until both replication threads run and it has caught up with the primary.
func StartMariaDBReplica(tb testing.TB, primary *MariaDB) *MariaDB {
	tb.Helper()
	m := startMariaDB(tb)
	m.primary = primary
	m.createAccounts(tb)
	if err := m.server.Replicate(context.Background(), primary.Addr()); err != nil {
		tb.Fatalf("setting up replication from %s: %v", primary.Addr(), err)
	}
	WaitFor(tb, replicationLimit, "replication threads on "+m.Addr(), func() bool {
		_, io, sqlRunning := m.ReplicaStatus(tb)
		return io && sqlRunning
	})
	m.WaitReplicated(tb, primary)
	return m
}

// StopReplication stops both replication threads (STOP SLAVE).
func (m *MariaDB) StopReplication(tb testing.TB) {
	tb.Helper()
	if err := m.exec("STOP SLAVE"); err != nil {
		tb.Fatalf("stopping replication on %s: %v", m.Addr(), err)
	}
}

// StartReplication starts the replication threads (START SLAVE) and waits
// until the SQL thread runs. The IO thread is not waited for: it may
// legitimately be still connecting, e.g. to a primary that is down.
func (m *MariaDB) StartReplication(tb testing.TB) {
	tb.Helper()
	if err := m.exec("START SLAVE"); err != nil {
		tb.Fatalf("starting replication on %s: %v", m.Addr(), err)
	}
	WaitFor(tb, replicationLimit, "replication SQL thread on "+m.Addr(), func() bool {
		_, _, sqlRunning := m.ReplicaStatus(tb)
		return sqlRunning
	})
}

// ReplicaStatus reports SHOW SLAVE STATUS: Seconds_Behind_Master (NULL when
// not replicating) and whether the IO and SQL threads run. A server that was
// never a replica reports NULL, false, false.
func (m *MariaDB) ReplicaStatus(tb testing.TB) (secondsBehind sql.NullInt64, ioRunning, sqlRunning bool) {
	tb.Helper()
	st, err := m.slaveStatus()
	if err != nil {
		tb.Fatalf("reading replica status of %s: %v", m.Addr(), err)
	}
	if st == nil {
		return sql.NullInt64{}, false, false
	}
	if v := st["Seconds_Behind_Master"]; v.Valid {
		var n int64
		if _, err := fmt.Sscan(v.String, &n); err == nil {
			secondsBehind = sql.NullInt64{Int64: n, Valid: true}
		}
	}
	return secondsBehind, st["Slave_IO_Running"].String == "Yes", st["Slave_SQL_Running"].String == "Yes"
}

// slaveStatus returns SHOW SLAVE STATUS as column → value, or nil when the
// server has no replication configured.
func (m *MariaDB) slaveStatus() (map[string]sql.NullString, error) {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	defer rows.Close()
	return scanOneRowMap(rows)
}

func scanOneRowMap(rows *sql.Rows) (map[string]sql.NullString, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("scanning: %w", err)
	}
	out := make(map[string]sql.NullString, len(cols))
	for i, c := range cols {
		out[c] = vals[i]
	}
	return out, nil
}

// WaitReplicated waits until m has applied everything primary has binlogged
// so far: its gtid_slave_pos covers the primary's gtid_binlog_pos.
func (m *MariaDB) WaitReplicated(tb testing.TB, primary *MariaDB) {
	tb.Helper()
	var pos string
	if err := primary.queryRow("SELECT @@GLOBAL.gtid_binlog_pos", nil, &pos); err != nil {
		tb.Fatalf("reading gtid_binlog_pos of %s: %v", primary.Addr(), err)
	}
	if pos == "" {
		return
	}
	var res sql.NullInt64
	q := "SELECT MASTER_GTID_WAIT(?, ?)"
	if err := m.queryRow(q, []any{pos, gtidWaitLimit.Seconds()}, &res); err != nil {
		tb.Fatalf("waiting for %s to reach %s: %v", m.Addr(), pos, err)
	}
	if !res.Valid || res.Int64 != 0 {
		st, _ := m.slaveStatus()
		tb.Fatalf("timed out after %s waiting for %s to replicate up to %s; replica status: %v",
			gtidWaitLimit, m.Addr(), pos, st)
	}
}
