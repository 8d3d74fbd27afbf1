package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// gocraft/work re-queues the in-progress jobs of a dead pool (a killed process) only from its
// dead-pool reaper, which runs 10 s after a pool starts and then every 10 min. A restarted
// process therefore recovers its predecessor's jobs quickly, but when an instance dies for good
// while others keep running, its jobs would wait up to 10 min. reaper closes that gap: every
// Worker runs one, which every interval re-queues the jobs of pools whose heartbeat is older than
// deadAfter (the library beats every 5 s and itself calls a pool dead after 10 s; we wait longer,
// since re-queueing a live pool's jobs would only cost a redundant, idempotent write).
//
// It does what the library's reaper does, with the same keys and in the same order: move every
// job of the dead pool's in-progress list back to the job list, releasing its concurrency lock,
// then drop the pool's heartbeat and worker_pools entry and its stale lock count. Two reapers
// racing is harmless: each job moves once (RPOPLPUSH is atomic).
//
// It also finds orphans (gocraft/work issue #146): in-progress lists of pools that are no longer
// in the worker_pools set, left behind when a pool was unregistered (or its entry reaped) while
// jobs were still in progress. The library's reaper only walks worker_pools and never sees them.
type reaper struct {
	k         keys
	deadAfter time.Duration
	now       func() time.Time
	self      []string // the reaping worker's own pool ids, never reaped
}

// reapScript moves one pool's in-progress jobs back to the queue and forgets the pool.
// KEYS: in-progress list, job list, lock, lock_info, heartbeat, worker_pools. ARGV[1]: pool id.
var reapScript = redis.NewScript(6, `
local n = 0
while redis.call('rpoplpush', KEYS[1], KEYS[2]) do
  redis.call('decr', KEYS[3])
  redis.call('hincrby', KEYS[4], ARGV[1], -1)
  n = n + 1
end
local stale = tonumber(redis.call('hget', KEYS[4], ARGV[1]))
if stale then
  redis.call('decrby', KEYS[3], stale)
  redis.call('hdel', KEYS[4], ARGV[1])
end
if tonumber(redis.call('get', KEYS[3]) or '0') < 0 then
  redis.call('set', KEYS[3], 0)
end
redis.call('del', KEYS[5])
redis.call('srem', KEYS[6], ARGV[1])
return n`)

// reap re-queues the jobs of every dead pool and returns how many it moved. Our own pool beats
// every 5 s, so it is never among them.
func (r reaper) reap(ctx context.Context, pool *redis.Pool) (int, error) {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("reaping dead pools: %w", err)
	}
	defer c.Close()
	ids, err := redis.Strings(redis.DoContext(c, ctx, "SMEMBERS", r.k.workerPools()))
	if err != nil {
		return 0, fmt.Errorf("reaping dead pools: %w", err)
	}
	moved := 0
	for _, id := range ids {
		if slices.Contains(r.self, id) {
			continue
		}
		dead, err := r.isDead(ctx, c, id)
		if err != nil || !dead {
			if err != nil {
				return moved, err
			}
			continue
		}
		n, err := redis.Int(reapScript.DoContext(ctx, c, r.k.inProgress(id), r.k.jobs(), r.k.lock(), r.k.lockInfo(),
			r.k.heartbeat(id), r.k.workerPools(), id))
		if err != nil {
			return moved, fmt.Errorf("reaping pool %s: %w", id, err)
		}
		moved += n
	}
	n, err := r.reapOrphans(ctx, c)
	return moved + n, err
}

// reapOrphans re-queues the in-progress lists whose pool is not in worker_pools. A pool lists
// itself before it fetches, so a list without a listed pool has no live owner.
func (r reaper) reapOrphans(ctx context.Context, c redis.Conn) (int, error) {
	pattern := r.k.jobs() + ":*:inprogress"
	prefix, suffix := r.k.jobs()+":", ":inprogress"
	moved := 0
	cursor := "0"
	for {
		reply, err := redis.Values(redis.DoContext(c, ctx, "SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
		if err != nil {
			return moved, fmt.Errorf("scanning in-progress lists: %w", err)
		}
		cursor, _ = redis.String(reply[0], nil)
		listKeys, _ := redis.Strings(reply[1], nil)
		for _, key := range listKeys {
			id := strings.TrimSuffix(strings.TrimPrefix(key, prefix), suffix)
			if slices.Contains(r.self, id) || id == "" {
				continue
			}
			listed, err := redis.Bool(redis.DoContext(c, ctx, "SISMEMBER", r.k.workerPools(), id))
			if err != nil || listed {
				continue
			}
			n, err := redis.Int(reapScript.DoContext(ctx, c, key, r.k.jobs(), r.k.lock(), r.k.lockInfo(),
				r.k.heartbeat(id), r.k.workerPools(), id))
			if err != nil {
				return moved, fmt.Errorf("reaping orphaned pool %s: %w", id, err)
			}
			moved += n
		}
		if cursor == "0" {
			return moved, nil
		}
	}
}

// isDead reports whether pool id's heartbeat is missing or older than deadAfter.
func (r reaper) isDead(ctx context.Context, c redis.Conn, id string) (bool, error) {
	at, err := redis.String(redis.DoContext(c, ctx, "HGET", r.k.heartbeat(id), "heartbeat_at"))
	if err == redis.ErrNil {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading heartbeat of pool %s: %w", id, err)
	}
	sec, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return false, nil // not a heartbeat we understand: leave it to the library
	}
	return r.now().Sub(time.Unix(sec, 0)) > r.deadAfter, nil
}
