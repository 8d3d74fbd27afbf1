package postsvc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
)

// routerStore reads through a mysql.Router's current reader, as postsvcd's main does.
type routerStore struct{ r *mysql.Router }

func (s routerStore) List(ctx context.Context, uid, maxID uint64, limit int) ([]post.Post, error) {
	st, err := s.r.Reader()
	if err != nil {
		return nil, err
	}
	return st.List(ctx, uid, maxID, limit)
}

func (s routerStore) Get(ctx context.Context, id uint64) (post.Post, error) {
	st, err := s.r.Reader()
	if err != nil {
		return post.Post{}, err
	}
	p, err := st.Get(ctx, id)
	if errors.Is(err, mysql.ErrNotFound) {
		return post.Post{}, ErrNotFound
	}
	return p, err
}

// TestTimelineServedWithPrimaryDown: with the MariaDB primary dead, its replica is unhealthy
// (Seconds_Behind_Master NULL) yet reachable; timeline pages that need the database are merged
// from the cache and that replica (200), never a 503, and hold both the persisted history and
// the posts acknowledged while the primary is down.
func TestTimelineServedWithPrimaryDown(t *testing.T) {
	primary := itest.StartMariaDB(t)
	pdb := primary.DB(t, "zkpost")
	ctx := context.Background()
	if err := mysql.Migrate(ctx, pdb); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	replica := itest.StartMariaDBReplica(t, primary)

	// Both users' history is persisted before the outage and never read before it, so the cache
	// knows nothing of it: every page below must come from the database.
	const uid, coldUID = 4242, 4343
	history := map[uint64][]uint64{} // newest first
	st := mysql.NewStore(sqlDB(t, primary))
	for i := range 25 {
		for _, u := range []uint64{uid, coldUID} {
			id := bigIDBase - 100_000 + uint64(i)*1000 + u%1000
			p := post.Post{ID: id, UserID: u, Contents: fmt.Sprintf("old %d of %d", i, u), CreatedAt: CreatedAt(id)}
			if err := st.Upsert(ctx, []post.Post{p}); err != nil {
				t.Fatalf("Upsert: %v", err)
			}
			history[u] = append([]uint64{id}, history[u]...)
		}
	}
	replica.WaitReplicated(t, primary)

	router := mysql.NewRouter(mysql.Config{User: "root", Name: "zkpost", CheckInterval: 100 * time.Millisecond},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	t.Cleanup(func() { router.Close() })
	router.SetEndpoints(discovery.DBEndpoints{Primary: primary.Addr(), Replicas: []string{replica.Addr()}})

	// h.db is only the queue here: acknowledged posts stay pending, as writebackd holds them
	// while the primary is down.
	h := newHarnessReading(t, 1, nil, routerStore{router})

	itest.WaitFor(t, 10*time.Second, "reads on the healthy replica", func() bool {
		s, err := router.Reader()
		return err == nil && s.Addr() == replica.Addr()
	})

	primary.Kill()
	itest.WaitFor(t, 15*time.Second, "reads degraded to the replica", router.ReadDegraded)

	var fresh []uint64 // acknowledged during the outage (pending in the queue), newest first
	for i := range 3 {
		p := h.write(uid, fmt.Sprintf("during the outage %d", i), "")
		fresh = append([]uint64{p.ID}, fresh...)
	}
	// uid's cache list holds only the fresh posts: a partial list merged with the replica.
	// A page starting below the fresh posts needs the database alone.
	if p := h.page(uid, history[uid][5], 3); !slices.Equal(postIDs(p.Posts), history[uid][5:8]) {
		t.Errorf("page below the cache with the primary dead: got %v, want %v", postIDs(p.Posts), history[uid][5:8])
	}
	want := append(slices.Clone(fresh), history[uid]...)
	for _, limit := range []int{1, 4, 10, 100} {
		if got := h.walk(uid, limit); !slices.Equal(got, want) {
			t.Errorf("walk with the primary dead, limit %d:\n got %v\nwant %v", limit, got, want)
		}
	}
	// coldUID's cache list is cold: its first page comes from the replica.
	if p := h.page(coldUID, 0, 10); !slices.Equal(postIDs(p.Posts), history[coldUID][:10]) {
		t.Errorf("cold first page with the primary dead: got %v, want %v", postIDs(p.Posts), history[coldUID][:10])
	}
	if got := h.walk(coldUID, 7); !slices.Equal(got, history[coldUID]) {
		t.Errorf("cold walk with the primary dead:\n got %v\nwant %v", got, history[coldUID])
	}
	if r := h.do("GET", fmt.Sprintf("/api/v1/posts/%d/%d", coldUID, history[coldUID][3]), ""); r.status != 200 {
		t.Errorf("GET one persisted post with the primary dead: status %d (%s), want 200", r.status, r.body)
	}
}

func postIDs(ps []post.Post) []uint64 {
	out := make([]uint64, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func sqlDB(t *testing.T, m *itest.MariaDB) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", mysql.DSN(mysql.Config{User: "root", Name: "zkpost"}, m.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
