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

// check looks every ack up in the posts table once.
func check(ctx context.Context, db *sql.DB, acks []Ack) (Verification, error) {
	found := map[string][]int64{} // post id → the user id of each row holding it
	for batch := range slices.Chunk(acks, verifyBatch) {
		if err := lookUp(ctx, db, batch, found); err != nil {
			return Verification{Acked: len(acks)}, err
		}
	}
	return classify(acks, found), nil
}

// lookUp adds the rows holding batch's post ids to found.
func lookUp(ctx context.Context, db *sql.DB, batch []Ack, found map[string][]int64) error {
	args := make([]any, len(batch))
	for i, a := range batch {
		args[i] = a.PostID
	}
	q := "SELECT CAST(post_id AS CHAR), user_id FROM posts WHERE post_id IN (?" +
		strings.Repeat(",?", len(batch)-1) + ")"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("querying posts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var uid int64
		if err := rows.Scan(&id, &uid); err != nil {
			return fmt.Errorf("scanning posts: %w", err)
		}
		found[id] = append(found[id], uid)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading posts: %w", err)
	}
	return nil
}

// classify sorts each ack by the rows found for it.
func classify(acks []Ack, found map[string][]int64) Verification {
	v := Verification{Acked: len(acks)}
	for _, a := range acks {
		switch users := found[a.PostID]; {
		case len(users) == 0:
			v.Missing = append(v.Missing, a.PostID)
		case len(users) > 1:
			v.Duplicated = append(v.Duplicated, a.PostID)
		case users[0] != a.UserID:
			v.WrongUser = append(v.WrongUser, a.PostID)
		default:
			v.Found++
		}
	}
	return v
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
