package postsvc

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/the-red/zkpost/discovery"
)

// QueueEndpoints is what follows R/queue/sidekiq (postqueue.Enqueuer).
type QueueEndpoints interface {
	SetEndpoints(discovery.QueueEndpoints)
}

// DBEndpoints is what follows R/db (postdb.Router).
type DBEndpoints interface {
	SetEndpoints(discovery.DBEndpoints)
}

// Watches keeps the cache ring, the queue and the database endpoints in step with ZooKeeper.
// Every change applies without a restart; while ZooKeeper is unreachable the last state stays.
type Watches struct {
	cache, queue, db *discovery.Watcher
	queueKnown       atomic.Bool
	dbKnown          atomic.Bool
	dbAbsent         atomic.Bool // R/db does not exist (the reference's layout has none)
}

// Watch starts following R/cache/nodes, R/queue/sidekiq and R/db.
func Watch(conn *discovery.Conn, layout discovery.Layout, cache *Cache, q QueueEndpoints, db DBEndpoints, log *slog.Logger) *Watches {
	w := &Watches{}
	w.cache = conn.WatchChildren(layout.CacheNodes(), discovery.WatchOptions{WithData: true, OnChange: cache.UpdateFromSnapshot})
	w.queue = conn.WatchData(layout.Queue(), discovery.WatchOptions{OnChange: func(s discovery.Snapshot) {
		if !s.Exists {
			return // keep the last endpoints: a missing node is a setup step, not a failover
		}
		e, err := discovery.ParseQueue(s.Data)
		if err != nil {
			log.Warn("queue node ignored", "err", err)
			return
		}
		q.SetEndpoints(e)
		w.queueKnown.Store(true)
	}})
	w.db = conn.WatchData(layout.DB(), discovery.WatchOptions{OnChange: func(s discovery.Snapshot) {
		w.dbAbsent.Store(!s.Exists)
		if !s.Exists {
			return
		}
		e, err := discovery.ParseDB(s.Data)
		if err != nil {
			log.Warn("db node ignored", "err", err)
			return
		}
		db.SetEndpoints(e)
		w.dbKnown.Store(true)
	}})
	return w
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
			if !w.queueKnown.Load() {
				return errors.New("queue endpoints not known yet")
			}
			return nil
		}},
		{Name: "db", OK: func() error {
			switch {
			case w.dbKnown.Load():
			case w.dbAbsent.Load():
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
