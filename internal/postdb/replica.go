package postdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Replica status statements, newest first: MySQL 8.0.22+ and MariaDB 10.5.1+ know SHOW REPLICA
// STATUS (MySQL 8.4 knows nothing else); older servers only SHOW SLAVE STATUS.
var showReplicaStatus = []string{"SHOW REPLICA STATUS", "SHOW SLAVE STATUS"}

// Lag columns: MySQL 8.0.22+ renamed Seconds_Behind_Master to Seconds_Behind_Source under SHOW
// REPLICA STATUS; MariaDB keeps the old name under both statements.
var lagColumns = []string{"Seconds_Behind_Source", "Seconds_Behind_Master"}

// replicaLag reads the replica's lag. known is false when the server reports NULL (a replication
// thread is stopped or not connected) or is no replica at all: both count as unhealthy.
// The monitoring privilege is needed: REPLICATION CLIENT (MySQL), SLAVE MONITOR (MariaDB 10.5.9+).
func (ep *endpoint) replicaLag(ctx context.Context) (lag time.Duration, known bool, err error) {
	cmds := showReplicaStatus
	if c := ep.showCmd.Load(); c != nil {
		cmds = []string{*c}
	}
	for i, cmd := range cmds {
		lag, known, err = queryLag(ctx, ep.store.db, cmd)
		if err == nil {
			ep.showCmd.Store(&cmds[i])
			return lag, known, nil
		}
		if !isSyntaxError(err) {
			return 0, false, err
		}
	}
	return 0, false, err
}

func queryLag(ctx context.Context, db *sql.DB, cmd string) (time.Duration, bool, error) {
	rows, err := db.QueryContext(ctx, cmd)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", cmd, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", cmd, err)
	}
	if !rows.Next() {
		return 0, false, rows.Err() // no replication configured
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return 0, false, fmt.Errorf("%s: %w", cmd, err)
	}
	lag, known, err := lagOf(cols, vals)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", cmd, err)
	}
	return lag, known, nil
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
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1064
}
