package postsvc

import (
	"context"
	"sync"
	"time"
)

// Failed cache writes and coverage. A write whose cache step failed leaves its author's list
// without an acknowledged post, while the list's coverage marker may still claim the list
// complete. The write deletes the marker and the list's token (coverage.go's dropKeys) at once
// when the shard answers; when it does not (the shard is cut off with its data intact), the
// deletion is retried in the background until the shard answers, the shard leaves the ring (a new
// ring version voids every marker anyway), or the marker's own TTL has passed. So a list missing a
// post is trusted at most one retry interval after its shard is reachable again, instead of for
// the marker's whole TTL.

// repairInterval is how often pending marker deletions are retried.
const repairInterval = 100 * time.Millisecond

// maxPendingRepairs bounds the memory a long shard outage can take; past it, a marker is left to
// its TTL (and the shard, once redismon marks it DOWN, leaves the ring, voiding the marker).
const maxPendingRepairs = 100_000

// repairs holds the coverage markers still to delete, by shard and user, with when to give up.
type repairs struct {
	mu      sync.Mutex
	pending map[*shard]map[uint64]time.Time
	count   int
}

// dropCoverage deletes uid's marker on sh, or schedules the deletion when sh does not answer.
func (c *Cache) dropCoverage(sh *shard, uid uint64, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := sh.rdb.Del(ctx, dropKeys(uid)...).Err(); err == nil {
		return
	}
	c.repairs.mu.Lock()
	defer c.repairs.mu.Unlock()
	if !c.schedule(sh, uid, c.now().Add(ttl)) {
		c.metrics.coverageRepairs.WithLabelValues("dropped").Inc()
		return
	}
	c.metrics.coverageRepairs.WithLabelValues("scheduled").Inc()
}

// repairLoop retries pending deletions until stop closes.
func (c *Cache) repairLoop(stop <-chan struct{}) {
	t := time.NewTicker(repairInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for sh, uids := range c.takeRepairs() {
			c.repair(sh, uids)
		}
	}
}

// takeRepairs removes and returns the pending deletions of shards still on the ring and not yet
// expired; the rest are forgotten.
func (c *Cache) takeRepairs() map[*shard]map[uint64]time.Time {
	view, now := c.view(), c.now()
	c.repairs.mu.Lock()
	defer c.repairs.mu.Unlock()
	out := map[*shard]map[uint64]time.Time{}
	for sh, users := range c.repairs.pending {
		if view.shards[sh.name] != sh {
			continue
		}
		for uid, until := range users {
			if now.Before(until) {
				if out[sh] == nil {
					out[sh] = map[uint64]time.Time{}
				}
				out[sh][uid] = until
			}
		}
	}
	clear(c.repairs.pending)
	c.repairs.count = 0
	return out
}

// repair deletes the markers of users on sh in one round trip; on failure they wait for the next
// round, keeping their deadlines.
func (c *Cache) repair(sh *shard, users map[uint64]time.Time) {
	keys := make([]string, 0, 2*len(users))
	for uid := range users {
		keys = append(keys, dropKeys(uid)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := sh.rdb.Del(ctx, keys...).Err(); err == nil {
		c.metrics.coverageRepairs.WithLabelValues("done").Add(float64(len(users)))
		return
	}
	c.repairs.mu.Lock()
	defer c.repairs.mu.Unlock()
	for uid, until := range users {
		c.schedule(sh, uid, until)
	}
}

// schedule records a pending deletion; the caller holds c.repairs.mu.
func (c *Cache) schedule(sh *shard, uid uint64, until time.Time) bool {
	users := c.repairs.pending[sh]
	if users == nil {
		users = map[uint64]time.Time{}
		c.repairs.pending[sh] = users
	}
	if _, ok := users[uid]; !ok {
		if c.repairs.count >= maxPendingRepairs {
			return false
		}
		c.repairs.count++
	}
	users[uid] = until
	return true
}
