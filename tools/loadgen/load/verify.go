package load

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver
)

// Verification is what Verify found for a set of acknowledged posts.
type Verification struct {
	Acked      int           `json:"acked"`
	Found      int           `json:"found"`      // present exactly once with the right user
	Missing    []string      `json:"missing"`    // acknowledged but not in MySQL
	Duplicated []string      `json:"duplicated"` // present more than once
	WrongUser  []string      `json:"wrong_user"` // present under another user id
	Waited     time.Duration `json:"waited"`
}

// OK reports whether every acknowledged post is in MySQL exactly once.
func (v Verification) OK() bool {
	return v.Found == v.Acked && len(v.Missing)+len(v.Duplicated)+len(v.WrongUser) == 0
}

// verifyBatch bounds the ids of one IN list.
const verifyBatch = 500

// Verify checks that every ack is in the posts table exactly once, under its user. Write-back is
// asynchronous, so it polls until all are present or wait passes, then reports what is not.
func Verify(ctx context.Context, dsn string, acks []Ack, wait time.Duration) (Verification, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return Verification{}, fmt.Errorf("opening %s: %w", redact(dsn), err)
	}
	defer db.Close()
	start := time.Now()
	deadline := start.Add(wait)
	for {
		v, err := check(ctx, db, acks)
		if err != nil {
			return v, err
		}
		v.Waited = time.Since(start)
		if v.OK() || time.Now().After(deadline) || len(v.Duplicated)+len(v.WrongUser) > 0 {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func check(ctx context.Context, db *sql.DB, acks []Ack) (Verification, error) {
	v := Verification{Acked: len(acks)}
	want := make(map[string]int64, len(acks))
	for _, a := range acks {
		want[a.PostID] = a.UserID
	}
	seen := map[string]int{}
	users := map[string]int64{}
	for batch := range slices.Chunk(acks, verifyBatch) {
		args := make([]any, len(batch))
		for i, a := range batch {
			args[i] = a.PostID
		}
		q := "SELECT CAST(post_id AS CHAR), user_id FROM posts WHERE post_id IN (?" +
			strings.Repeat(",?", len(batch)-1) + ")"
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rows, err := db.QueryContext(qctx, q, args...)
		if err != nil {
			cancel()
			return v, fmt.Errorf("querying posts: %w", err)
		}
		for rows.Next() {
			var id string
			var uid int64
			if err := rows.Scan(&id, &uid); err != nil {
				rows.Close()
				cancel()
				return v, fmt.Errorf("scanning posts: %w", err)
			}
			seen[id]++
			users[id] = uid
		}
		err = rows.Err()
		rows.Close()
		cancel()
		if err != nil {
			return v, fmt.Errorf("reading posts: %w", err)
		}
	}
	for _, a := range acks {
		switch n := seen[a.PostID]; {
		case n == 0:
			v.Missing = append(v.Missing, a.PostID)
		case n > 1:
			v.Duplicated = append(v.Duplicated, a.PostID)
		case users[a.PostID] != want[a.PostID]:
			v.WrongUser = append(v.WrongUser, a.PostID)
		default:
			v.Found++
		}
	}
	return v, nil
}

// redact hides the password of a DSN user:password@...
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	colon := strings.Index(dsn, ":")
	if at < 0 || colon < 0 || colon > at {
		return dsn
	}
	return dsn[:colon+1] + "********" + dsn[at:]
}
