package mysql

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/the-red/zkpost/post"
)

//go:embed schema.sql
var schemaSQL string

// Schema returns the schema statements, in order.
func Schema() []string {
	var out []string
	for _, stmt := range strings.Split(schemaSQL, ";\n") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.TrimSuffix(strings.Join(lines, "\n"), ";"))
		}
	}
	return out
}

// Migrate applies schema.sql to db. Every statement is idempotent, so it runs on every start.
func Migrate(ctx context.Context, db *sql.DB) error {
	for _, stmt := range Schema() {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("applying schema: %w", err)
		}
	}
	return nil
}

// ErrNotFound means no post has the requested id.
var ErrNotFound = errors.New("post not found")

// maxRowsPerStatement keeps a multi-row INSERT well under the placeholder limit (65,535) and
// max_allowed_packet; larger batches are split into several statements of one transaction.
const maxRowsPerStatement = 1000

// Store reads and writes the posts table over one connection pool.
type Store struct {
	db   *sql.DB
	addr string
}

// NewStore returns a store over db.
func NewStore(db *sql.DB) *Store { return &Store{db: db} }

// DB returns the underlying pool.
func (s *Store) DB() *sql.DB { return s.db }

// Addr returns the endpoint the store talks to ("" when built by NewStore).
func (s *Store) Addr() string { return s.addr }

const columns = "post_id, user_id, contents, url, scrap, created_at"

// Upsert writes posts in one multi-row INSERT. A post already present is left as it is: posts are
// immutable and identified by their id, so a redelivered job is a no-op rather than a
// unique-key failure, and the first write wins. (`post_id = post_id` rather than
// VALUES(): VALUES() is deprecated in MySQL 8.0.20+, and MariaDB lacks the row-alias form.)
func (s *Store) Upsert(ctx context.Context, posts []post.Post) error {
	if len(posts) == 0 {
		return nil
	}
	if len(posts) <= maxRowsPerStatement {
		return s.upsert(ctx, s.db, posts)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("upserting posts: %w", err)
	}
	defer tx.Rollback()
	for len(posts) > 0 {
		n := min(len(posts), maxRowsPerStatement)
		if err := s.upsert(ctx, tx, posts[:n]); err != nil {
			return err
		}
		posts = posts[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("upserting posts: commit: %w", err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) upsert(ctx context.Context, ex execer, posts []post.Post) error {
	var b strings.Builder
	b.Grow(64 + 16*len(posts))
	b.WriteString("INSERT INTO posts (" + columns + ") VALUES ")
	args := make([]any, 0, 6*len(posts))
	for i, p := range posts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?)")
		args = append(args, p.ID, p.UserID, p.Contents, nullString(p.URL), nullString(string(p.Scrap)),
			p.CreatedAt.UTC().Truncate(time.Millisecond))
	}
	b.WriteString(" ON DUPLICATE KEY UPDATE post_id = post_id")
	if _, err := ex.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("upserting %d posts: %w", len(posts), err)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// List returns up to limit posts of userID with post_id <= maxID (no bound when maxID is 0),
// newest first. It walks KEY (user_id, post_id) backwards.
func (s *Store) List(ctx context.Context, userID, maxID uint64, limit int) ([]post.Post, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := "SELECT " + columns + " FROM posts WHERE user_id = ? ORDER BY post_id DESC LIMIT ?"
	args := []any{userID, limit}
	if maxID != 0 {
		q = "SELECT " + columns + " FROM posts WHERE user_id = ? AND post_id <= ? ORDER BY post_id DESC LIMIT ?"
		args = []any{userID, maxID, limit}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing posts of user %d: %w", userID, err)
	}
	defer rows.Close()
	out := make([]post.Post, 0, limit)
	for rows.Next() {
		p, err := scanPost(rows)
		if err != nil {
			return nil, fmt.Errorf("listing posts of user %d: %w", userID, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing posts of user %d: %w", userID, err)
	}
	return out, nil
}

// Get returns the post with id postID, or ErrNotFound.
func (s *Store) Get(ctx context.Context, postID uint64) (post.Post, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM posts WHERE post_id = ?", postID)
	p, err := scanPost(row)
	if errors.Is(err, sql.ErrNoRows) {
		return post.Post{}, ErrNotFound
	}
	if err != nil {
		return post.Post{}, fmt.Errorf("getting post %d: %w", postID, err)
	}
	return p, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanPost(sc scanner) (post.Post, error) {
	var p post.Post
	var u, scrap sql.NullString
	if err := sc.Scan(&p.ID, &p.UserID, &p.Contents, &u, &scrap, &p.CreatedAt); err != nil {
		return post.Post{}, err
	}
	p.URL = u.String
	if scrap.Valid && scrap.String != "" {
		p.Scrap = json.RawMessage(scrap.String)
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return p, nil
}
