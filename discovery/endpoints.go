package discovery

import (
	"log/slog"
	"sync/atomic"
)

// EndpointWatch follows one endpoints node, R/db or R/queue/sidekiq, and hands every readable
// value to its consumer. A missing node (a setup step, not a failover) or an unreadable one keeps
// the endpoints last handed over, as does a ZooKeeper outage.
type EndpointWatch struct {
	w     *Watcher
	known atomic.Bool
}

// FollowDB follows the database node p (Layout.DB) and calls apply with every readable value.
func (c *Conn) FollowDB(p string, apply func(DBEndpoints), log *slog.Logger) *EndpointWatch {
	return follow(c, p, "db", ParseDB, apply, log)
}

// FollowQueue follows the queue node p (Layout.Queue) and calls apply with every readable value.
func (c *Conn) FollowQueue(p string, apply func(QueueEndpoints), log *slog.Logger) *EndpointWatch {
	return follow(c, p, "queue", ParseQueue, apply, log)
}

func follow[T any](c *Conn, p, what string, parse func([]byte) (T, error), apply func(T), log *slog.Logger) *EndpointWatch {
	e := &EndpointWatch{}
	e.w = c.WatchData(p, WatchOptions{OnChange: func(s Snapshot) {
		if !s.Exists {
			log.Warn(what+" node missing; keeping endpoints", "path", p)
			return
		}
		v, err := parse(s.Data)
		if err != nil {
			log.Warn(what+" node unreadable; keeping endpoints", "path", p, "err", err)
			return
		}
		apply(v)
		e.known.Store(true)
	}})
	return e
}

// Known reports whether a readable value was handed over yet: a readiness condition.
func (e *EndpointWatch) Known() bool { return e.known.Load() }

// Absent reports whether the node was read and does not exist (a tree without it, such as the
// reference's without R/db), as against not read yet: readiness says which.
func (e *EndpointWatch) Absent() bool {
	s := e.w.Current()
	return s.Version > 0 && !s.Exists
}

// Stop ends the watch.
func (e *EndpointWatch) Stop() { e.w.Stop() }
