package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// queue fails the queue Redis over. The queue node in ZooKeeper is the truth about which server
// is primary; redismon makes the servers agree with it:
//   - the primary fails FailThreshold consecutive probes → promote the reachable secondary holding
//     the most of the replication stream (highest offset): REPLICAOF NO ONE on it, then rewrite
//     the node {"primary": it, "secondary": [the others..., the old primary]} with a version check;
//   - every reachable secondary that is not a replica of the primary (the old primary once it
//     answers again, a secondary that followed the old primary) is made one: REPLICAOF host port;
//   - a primary that reports itself a replica is told REPLICAOF NO ONE: it would reject writes.
//
// What the design cannot save: writes the old primary acknowledged but had not replicated when it
// died are lost when it rejoins as a replica. Enqueuers that need them kept wait for a replica's
// acknowledgement (WAIT 1) before acknowledging a client.
type queue struct {
	cfg      Config
	zk       *discovery.Conn
	path     string
	redis    *clients
	log      *slog.Logger
	metrics  *monitorMetrics
	cacheDir string
	fails    int // consecutive failed probes of the current primary, in this leadership term
	primary  string
	overlap  overlapLog
}

// sharedWithCache returns the (normalized) addresses of the registered cache shards. A server
// that is both a cache shard and a queue server (the reference's own setup lists 16380 as both)
// must never be repointed or promoted: REPLICAOF would wipe the cache shard, and the shard's
// FLUSHALL would wipe the queue.
func (q *queue) sharedWithCache() (map[string]bool, error) {
	return addrsUnder(q.zk, q.cacheDir)
}

func (q *queue) tick(ctx context.Context) {
	data, stat, err := q.zk.Get(q.path)
	if err != nil {
		if !errors.Is(err, discovery.ErrNoNode) {
			q.log.Warn("reading queue node failed", "err", err)
		}
		return
	}
	eps, err := discovery.ParseQueue(data)
	if err != nil {
		q.log.Warn("queue node unreadable", "err", err)
		return
	}
	if eps.Primary != q.primary {
		q.primary, q.fails = eps.Primary, 0 // changed by someone else: count afresh
	}
	shared, err := q.sharedWithCache()
	if err != nil {
		q.log.Warn("listing cache shards failed", "err", err)
		return
	}
	if shared[normAddr(eps.Primary)] {
		q.overlap.report(q.log, q.metrics, eps.Primary)
		return
	}
	candidates := slices.DeleteFunc(slices.Clone(eps.Secondary), func(s string) bool {
		if shared[normAddr(s)] {
			q.overlap.report(q.log, q.metrics, s)
			return true
		}
		return false
	})
	rep, err := q.redis.probeReplication(ctx, eps.Primary, q.cfg.ProbeTimeout)
	if ctx.Err() != nil {
		return // leadership ended mid-probe: not the primary's failure
	}
	if err != nil {
		q.fails++
		q.metrics.probeFailures.WithLabelValues("queue").Inc()
		if q.fails >= q.cfg.FailThreshold {
			q.log.Warn("queue primary unreachable", "primary", eps.Primary, "failures", q.fails, "err", err)
			q.promote(ctx, eps, candidates, stat.Version)
		}
		return
	}
	q.fails = 0
	if rep.Role != "master" {
		q.log.Warn("queue primary is a replica; promoting it back", "primary", eps.Primary, "follows", rep.MasterAddr)
		if err := q.replicaOf(ctx, eps.Primary, ""); err != nil {
			q.log.Warn("queue primary promotion failed", "primary", eps.Primary, "err", err)
		}
	}
	q.reconcile(ctx, eps.Primary, candidates)
}

// promote makes the best reachable secondary the primary and records it in ZooKeeper.
func (q *queue) promote(ctx context.Context, eps discovery.QueueEndpoints, candidates []string, version int32) {
	reachable := map[string]replication{}
	for _, s := range candidates {
		if rep, err := q.redis.probeReplication(ctx, s, q.cfg.ProbeTimeout); err == nil {
			reachable[s] = rep
		}
	}
	best := pickSecondary(candidates, reachable)
	if best == "" {
		q.log.Error("queue primary down and no secondary reachable", "primary", eps.Primary)
		return
	}
	if err := q.replicaOf(ctx, best, ""); err != nil {
		q.log.Error("queue promotion failed", "candidate", best, "err", err)
		return
	}
	next := discovery.QueueEndpoints{Primary: best, Secondary: []string{}}
	for _, s := range eps.Secondary {
		if s != best {
			next.Secondary = append(next.Secondary, s)
		}
	}
	next.Secondary = append(next.Secondary, eps.Primary)
	b, err := json.Marshal(next)
	if err != nil {
		q.log.Error("encoding queue node failed", "err", err)
		return
	}
	if _, err := q.zk.Set(q.path, b, version); err != nil {
		// Promoted but not recorded: the next tick reads the node again and decides afresh.
		q.log.Warn("rewriting queue node failed", "err", err)
		return
	}
	q.metrics.zkWrites.Inc()
	q.metrics.promotions.Inc()
	q.primary, q.fails = best, 0
	q.log.Warn("queue secondary promoted", "primary", best, "old_primary", eps.Primary, "offset", reachable[best].Offset)
}

// pickSecondary returns the reachable secondary holding the most of the replication stream
// (highest offset), the earliest listed on a tie; "" when none is reachable.
func pickSecondary(order []string, reachable map[string]replication) string {
	best := ""
	for _, s := range order {
		rep, ok := reachable[s]
		if ok && (best == "" || rep.Offset > reachable[best].Offset) {
			best = s
		}
	}
	return best
}

// reconcile makes every reachable secondary a replica of the primary.
func (q *queue) reconcile(ctx context.Context, primary string, secondaries []string) {
	for _, s := range secondaries {
		if s == primary || ctx.Err() != nil {
			continue
		}
		rep, err := q.redis.probeReplication(ctx, s, q.cfg.ProbeTimeout)
		if err != nil {
			continue // down: repointed once it answers
		}
		if rep.Role == "slave" && sameAddr(rep.MasterAddr, primary) {
			continue
		}
		if err := q.replicaOf(ctx, s, primary); err != nil {
			q.log.Warn("queue repoint failed", "server", s, "err", err)
			continue
		}
		q.metrics.repoints.Inc()
		q.log.Info("queue server made a replica", "server", s, "primary", primary, "was_role", rep.Role, "was_following", rep.MasterAddr)
	}
}

// replicaOf sends REPLICAOF primary to addr, or REPLICAOF NO ONE when primary is "".
func (q *queue) replicaOf(ctx context.Context, addr, primary string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	args := []any{"REPLICAOF", "NO", "ONE"}
	if primary != "" {
		host, port, err := net.SplitHostPort(primary)
		if err != nil {
			return err
		}
		args = []any{"REPLICAOF", host, port}
	}
	return q.redis.get(addr).Do(ctx, args...).Err()
}

// sameAddr compares host:port strings, treating "localhost" and 127.0.0.1 alike: Redis reports
// master_host as it was given, ZooKeeper holds what zoo_setup was given.
func sameAddr(a, b string) bool { return normAddr(a) == normAddr(b) }

func normAddr(s string) string {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	if h == "localhost" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, p)
}
