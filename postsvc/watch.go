package postsvc

import (
	"errors"
	"log/slog"

	"github.com/the-red/zkpost/discovery"
)

// QueueEndpoints is what follows R/queue/sidekiq (queue.Enqueuer).
type QueueEndpoints interface {
	SetEndpoints(discovery.QueueEndpoints)
}

// DBEndpoints is what follows R/db (mysql.Router).
type DBEndpoints interface {
	SetEndpoints(discovery.DBEndpoints)
}

// Watches keeps the cache ring, the queue and the database endpoints in step with ZooKeeper.
// Every change applies without a restart; while ZooKeeper is unreachable the last state stays.
type Watches struct {
	cache     *discovery.Watcher
	queue, db *discovery.EndpointWatch
}

// Watch starts following R/cache/nodes, R/queue/sidekiq and R/db.
func Watch(conn *discovery.Conn, layout discovery.Layout, cache *Cache, q QueueEndpoints, db DBEndpoints, log *slog.Logger) *Watches {
	return &Watches{
		cache: conn.WatchChildren(layout.CacheNodes(), discovery.WatchOptions{WithData: true, OnChange: cache.UpdateFromSnapshot}),
		queue: conn.FollowQueue(layout.Queue(), q.SetEndpoints, log),
		db:    conn.FollowDB(layout.DB(), db.SetEndpoints, log),
	}
}

// Checks are the readiness conditions the watches provide; readiness.go says which capability
// each one gates.
func (w *Watches) Checks() []Check {
	return []Check{
		{Name: "cache_nodes", OK: func() error {
			if w.cache.Current().Version == 0 {
				return errors.New("cache shard list not read from ZooKeeper yet")
			}
			return nil
		}},
		{Name: "queue", OK: func() error {
			if !w.queue.Known() {
				return errors.New("queue endpoints not known yet")
			}
			return nil
		}},
		{Name: "db", OK: func() error {
			switch {
			case w.db.Known():
			case w.db.Absent():
				return errors.New("no database node in ZooKeeper: reads past the cache are unavailable")
			default:
				return errors.New("database endpoints not known yet")
			}
			return nil
		}},
	}
}

// Stop ends the watches.
func (w *Watches) Stop() {
	w.cache.Stop()
	w.queue.Stop()
	w.db.Stop()
}
