package mysql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
)

// testConfig is how tests reach an itest MariaDB: root without a password.
func testConfig() mysql.Config {
	return mysql.Config{User: "root", Name: "zkpost", MaxLag: 5 * time.Second, CheckInterval: 100 * time.Millisecond}
}

// openStore starts (or reuses) m, creates the database and the schema, and returns a store.
func openStore(t *testing.T, m *itest.MariaDB) *mysql.Store {
	t.Helper()
	m.DB(t, "zkpost") // creates the database
	db, err := sql.Open("mysql", mysql.DSN(testConfig(), m.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := mysql.Migrate(context.Background(), db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return mysql.NewStore(db)
}

func mkPost(id, user uint64, contents string) post.Post {
	return post.Post{ID: id, UserID: user, Contents: contents,
		CreatedAt: time.UnixMilli(1_700_000_000_000 + int64(id%1_000_000)).UTC()}
}

func TestStore(t *testing.T) {
	m := itest.StartMariaDB(t)
	s := openStore(t, m)
	ctx := context.Background()

	t.Run("MigrateIdempotent", func(t *testing.T) {
		for range 2 {
			if err := mysql.Migrate(ctx, s.DB()); err != nil {
				t.Fatalf("Migrate again: %v", err)
			}
		}
		var name, create string
		if err := s.DB().QueryRowContext(ctx, "SHOW CREATE TABLE posts").Scan(&name, &create); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"utf8mb4", "`post_id` bigint(20) unsigned NOT NULL", "KEY `user_post` (`user_id`,`post_id`)"} {
			if !strings.Contains(create, want) {
				t.Errorf("SHOW CREATE TABLE posts = %s; missing %q", create, want)
			}
		}
	})

	t.Run("UpsertTwiceIsNoop", func(t *testing.T) {
		batch := []post.Post{mkPost(101, 1, "a"), mkPost(102, 1, "b"), mkPost(103, 2, "c")}
		batch[1].URL = "https://example.com/x"
		batch[1].Scrap = json.RawMessage(`{"title":"x"}`)
		for range 2 {
			if err := s.Upsert(ctx, batch); err != nil {
				t.Fatalf("Upsert: %v", err)
			}
		}
		// A redelivery carrying different contents must not change the stored row either.
		changed := batch[0]
		changed.Contents = "changed"
		if err := s.Upsert(ctx, []post.Post{changed}); err != nil {
			t.Fatalf("Upsert: %v", err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE post_id BETWEEN 101 AND 103").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("rows = %d, want 3", n)
		}
		for _, want := range batch {
			got, err := s.Get(ctx, want.ID)
			if err != nil {
				t.Fatalf("Get(%d): %v", want.ID, err)
			}
			assertPost(t, got, want)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		tests := []struct {
			name string
			p    post.Post
		}{
			{"above 2^53", mkPost(1<<63-5, 1<<62+1, "big ids")},
			{"max uint64", mkPost(1<<64-1, 1<<64-2, "max")},
			{"emoji", mkPost(201, 3, "héllo 🎉👩‍👩‍👧 𝄞 日本語")},
			{"scrap and url", post.Post{ID: 202, UserID: 3, Contents: "x", URL: "https://example.com/ü?q=1",
				Scrap: json.RawMessage(`{"title":"🎉"}`), CreatedAt: time.UnixMilli(1_700_000_000_123).UTC()}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.Upsert(ctx, []post.Post{tt.p}); err != nil {
					t.Fatalf("Upsert: %v", err)
				}
				got, err := s.Get(ctx, tt.p.ID)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				assertPost(t, got, tt.p)
			})
		}
	})

	t.Run("GetNotFound", func(t *testing.T) {
		if _, err := s.Get(ctx, 999_999); !errors.Is(err, mysql.ErrNotFound) {
			t.Errorf("Get(missing) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("List", func(t *testing.T) {
		const user = 77
		var batch []post.Post
		for id := uint64(1001); id <= 1010; id++ {
			batch = append(batch, mkPost(id, user, "p"))
		}
		batch = append(batch, mkPost(1005_5, user+1, "other user"))
		if err := s.Upsert(ctx, batch); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			maxID uint64
			limit int
			want  []uint64
		}{
			{"newest first", 0, 3, []uint64{1010, 1009, 1008}},
			{"cursor inclusive", 1005, 3, []uint64{1005, 1004, 1003}},
			{"cursor between ids", 1_000_000, 2, []uint64{1010, 1009}},
			{"short last page", 1002, 10, []uint64{1002, 1001}},
			{"before the first", 1000, 10, nil},
			{"limit 0", 0, 0, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.List(ctx, user, tt.maxID, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				var ids []uint64
				for _, p := range got {
					ids = append(ids, p.ID)
					if p.UserID != user {
						t.Errorf("post %d of user %d listed for user %d", p.ID, p.UserID, user)
					}
				}
				if !reflect.DeepEqual(ids, tt.want) {
					t.Errorf("List(%d, %d, %d) = %v, want %v", user, tt.maxID, tt.limit, ids, tt.want)
				}
			})
		}
	})

	t.Run("LargeBatchSplits", func(t *testing.T) {
		var batch []post.Post
		for i := range 2500 {
			batch = append(batch, mkPost(uint64(500_000+i), 9, "bulk"))
		}
		if err := s.Upsert(ctx, batch); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM posts WHERE user_id = 9").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(batch) {
			t.Errorf("rows = %d, want %d", n, len(batch))
		}
	})
}

func assertPost(t *testing.T, got, want post.Post) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Contents != want.Contents || got.URL != want.URL ||
		!got.CreatedAt.Equal(want.CreatedAt) || !jsonEqual(got.Scrap, want.Scrap) {
		t.Errorf("got %+v (scrap %s),\nwant %+v (scrap %s)", got, got.Scrap, want, want.Scrap)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
