package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Replica status statements, newest first: MySQL 8.0.22+ and MariaDB 10.5.1+ know SHOW REPLICA
// STATUS (MySQL 8.4 knows nothing else); older servers only SHOW SLAVE STATUS.
var showReplicaStatus = []string{"SHOW REPLICA STATUS", "SHOW SLAVE STATUS"}

// Column names, the MySQL 8.0.22+ SHOW REPLICA STATUS name first; MariaDB keeps the old names
// under both statements.
var (
	lagColumns        = []string{"Seconds_Behind_Source", "Seconds_Behind_Master"}
	sqlRunningColumns = []string{"Replica_SQL_Running", "Slave_SQL_Running"}
	execFileColumns   = []string{"Relay_Source_Log_File", "Relay_Master_Log_File"}
	execPosColumns    = []string{"Exec_Source_Log_Pos", "Exec_Master_Log_Pos"}
)

// replicaState is one reading of a replica's status.
type replicaState struct {
	configured bool // the server reported a replica status row
	lag        time.Duration
	lagKnown   bool // false when Seconds_Behind_Master is NULL (a thread stopped or not connected)
	sqlRunning bool // the SQL (applier) thread runs
	// applied is how far into the primary's binary log this replica has applied: comparable
	// between replicas of the same primary (binlogPos.after).
	applied binlogPos
}

// binlogPos is a position in the primary's binary log; the zero value is unknown.
type binlogPos struct {
	file string
	pos  uint64
}

// after reports whether p is known to be further than q in the same server's binary log. Files
// are named <base>.<sequence number>; positions in differently named logs are not comparable.
func (p binlogPos) after(q binlogPos) bool {
	if p.file == "" {
		return false
	}
	if q.file == "" {
		return true
	}
	if p.file == q.file {
		return p.pos > q.pos
	}
	pb, pn, ok1 := splitBinlogName(p.file)
	qb, qn, ok2 := splitBinlogName(q.file)
	return ok1 && ok2 && pb == qb && pn > qn
}

func splitBinlogName(name string) (base string, seq uint64, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	return name[:i], n, err == nil
}

// replicaStatus reads the replica's status. A server with no replication configured answers with
// configured false. The monitoring privilege is needed: REPLICATION CLIENT (MySQL), SLAVE MONITOR
// (MariaDB 10.5.9+).
func (ep *endpoint) replicaStatus(ctx context.Context) (replicaState, error) {
	cmds := showReplicaStatus
	if c := ep.showCmd.Load(); c != nil {
		cmds = []string{*c}
	}
	var err error
	for i, cmd := range cmds {
		var st replicaState
		st, err = queryStatus(ctx, ep.store.db, cmd)
		if err == nil {
			ep.showCmd.Store(&cmds[i])
			return st, nil
		}
		if !isSyntaxError(err) {
			return replicaState{}, err
		}
	}
	return replicaState{}, err
}

func queryStatus(ctx context.Context, db *sql.DB, cmd string) (replicaState, error) {
	rows, err := db.QueryContext(ctx, cmd)
	if err != nil {
		return replicaState{}, fmt.Errorf("%s: %w", cmd, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return replicaState{}, fmt.Errorf("%s: %w", cmd, err)
	}
	if !rows.Next() {
		return replicaState{}, rows.Err() // no replication configured
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return replicaState{}, fmt.Errorf("%s: %w", cmd, err)
	}
	st, err := stateOf(cols, vals)
	if err != nil {
		return replicaState{}, fmt.Errorf("%s: %w", cmd, err)
	}
	return st, nil
}

// stateOf reads one row of replica status. Only the lag column is required; the others are
// best effort (a missing one leaves its field unknown).
func stateOf(cols []string, vals []sql.NullString) (replicaState, error) {
	st := replicaState{configured: true}
	var err error
	st.lag, st.lagKnown, err = lagOf(cols, vals)
	if err != nil {
		return replicaState{}, err
	}
	if v, ok := column(cols, vals, sqlRunningColumns); ok {
		st.sqlRunning = strings.EqualFold(v, "Yes")
	}
	file, okF := column(cols, vals, execFileColumns)
	pos, okP := column(cols, vals, execPosColumns)
	if n, err := strconv.ParseUint(pos, 10, 64); okF && okP && file != "" && err == nil {
		st.applied = binlogPos{file: file, pos: n}
	}
	return st, nil
}

// column returns the value of the first of names present in cols; ok is false when none is
// present or the value is NULL.
func column(cols []string, vals []sql.NullString, names []string) (string, bool) {
	for _, want := range names {
		i := slices.Index(cols, want)
		if i < 0 || i >= len(vals) {
			continue
		}
		return vals[i].String, vals[i].Valid
	}
	return "", false
}

// lagOf finds the lag in one row of replica status, under whichever of lagColumns the server
// uses; known is false when it is NULL.
func lagOf(cols []string, vals []sql.NullString) (lag time.Duration, known bool, err error) {
	for _, want := range lagColumns {
		i := slices.Index(cols, want)
		if i < 0 || i >= len(vals) {
			continue
		}
		if !vals[i].Valid {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(vals[i].String, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s=%q: %w", want, vals[i].String, err)
		}
		return time.Duration(n) * time.Second, true, nil
	}
	return 0, false, errors.New("no lag column")
}

// isSyntaxError reports MySQL error 1064 (ER_PARSE_ERROR): the server does not know the statement.
func isSyntaxError(err error) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && me.Number == 1064
}
