package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The drain takes jobs in batches on gocraft/work's keys and document format, in place of the
// library's worker pool, which fetches one job per round trip, acknowledges one per round trip
// and polls an idle queue (see the package doc, "Batches").

// fetchScript moves the oldest jobs from the job list to the fetcher's in-progress list until that
// list holds ARGV[1], and returns the whole list. The lists end up as gocraft's fetch (one
// RPOPLPUSH per job) leaves them, in three commands for the batch (LRANGE, LTRIM, and an LPUSH per
// 1,000 jobs) instead of one per job, which the queue's AOF and its replica each apply again. A fetcher fetches only
// once its previous batch is settled, so whatever its list still holds is stranded there by a
// fetch whose reply was lost (a timeout, a dropped connection): those jobs are handed out again
// with the batch instead of waiting for the process to die and a reaper to find them.
// KEYS: job list, in-progress list.
var fetchScript = redis.NewScript(2, `
local want = tonumber(ARGV[1]) - redis.call('llen', KEYS[2])
if want > 0 then
  local jobs = redis.call('lrange', KEYS[1], -want, -1)
  if #jobs > 0 then
    redis.call('ltrim', KEYS[1], 0, -#jobs - 1)
    -- oldest first, in LPUSHes of at most 1000 (unpack's stack is bounded)
    for top = #jobs, 1, -1000 do
      local chunk = {}
      for i = top, math.max(top - 999, 1), -1 do chunk[#chunk + 1] = jobs[i] end
      redis.call('lpush', KEYS[2], unpack(chunk))
    end
  end
end
return redis.call('lrange', KEYS[2], 0, -1)`)

// settleScript settles a batch in one round trip: for each job, ARGV holds its fetched bytes, an
// action ("ack", "retry" or "dead"), a score and, for retry and dead, the updated document, which
// goes to the retry or dead set (as gocraft's failed-job path does) before the job leaves the
// in-progress list. A batch is normally the fetcher's whole in-progress list as fetched: when
// every job is acknowledged and the list holds exactly the batch's jobs, one DEL removes them, a
// single write for the queue's AOF and replica instead of one LREM per job. Otherwise (a failure,
// or a list that changed, say a reaper took the jobs back) each job is removed by value.
// KEYS: in-progress list, retry set, dead set.
var settleScript = redis.NewScript(3, `
local batch, acked = {}, 0
for i = 1, #ARGV, 4 do
  if ARGV[i + 1] == 'ack' then acked = acked + 1 end
  batch[ARGV[i]] = true
end
if acked * 4 == #ARGV then
  local held = redis.call('lrange', KEYS[1], 0, -1)
  local same = #held == acked
  for _, j in ipairs(held) do
    if not batch[j] then same = false break end
  end
  if same then
    redis.call('del', KEYS[1])
    return 1
  end
end
for i = 1, #ARGV, 4 do
  local action = ARGV[i + 1]
  if action == 'retry' then
    redis.call('zadd', KEYS[2], ARGV[i + 2], ARGV[i + 3])
  elseif action == 'dead' then
    redis.call('zadd', KEYS[3], ARGV[i + 2], ARGV[i + 3])
  end
  redis.call('lrem', KEYS[1], 1, ARGV[i])
end
return 1`)

// requeueScript moves up to ARGV[2] jobs whose time has come (score ≤ ARGV[1]) from a retry or
// scheduled set back to their job list (ARGV[3] .. name), as gocraft's requeuer does. KEYS: the set.
var requeueScript = redis.NewScript(1, `
local jobs = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, j in ipairs(jobs) do
  local ok, doc = pcall(cjson.decode, j)
  if ok and type(doc) == 'table' and type(doc.name) == 'string' then
    redis.call('lpush', ARGV[3] .. doc.name, j)
  end
  redis.call('zrem', KEYS[1], j)
end
return #jobs`)

// fetched is one job taken from the queue: its bytes as stored (the in-progress list entry) and,
// once decoded, its document. A job decodeFast read is decoded only if it fails, since only a
// failure rewrites the document and an acknowledgement needs the bytes alone.
type fetched struct {
	raw     []byte
	doc     job
	decoded bool
}

// decode decodes the job's document unless it is already.
func (f *fetched) decode() error {
	if f.decoded {
		return nil
	}
	if err := json.Unmarshal(f.raw, &f.doc); err != nil {
		return err
	}
	f.decoded = true
	return nil
}

// fetchBatch takes up to max jobs in one round trip; when the queue is empty it blocks on it
// (BRPOPLPUSH) for up to block and takes whatever else arrived with the first job, still in one
// round trip, so an idle worker sends one command per block period instead of polling.
func fetchBatch(ctx context.Context, c redis.Conn, k keys, pool string, max int, block, io time.Duration) ([][]byte, error) {
	jobs, err := redis.ByteSlices(fetchScript.DoContext(ctx, c, k.jobs(), k.inProgress(pool), max))
	if err != nil || len(jobs) > 0 {
		return jobs, err
	}
	secs := max1(int64(block / time.Second))
	_ = c.Send("BRPOPLPUSH", k.jobs(), k.inProgress(pool), secs)
	_ = fetchScript.SendHash(c, k.jobs(), k.inProgress(pool), max)
	replies, err := redis.Values(redis.DoWithTimeout(c, time.Duration(secs)*time.Second+io, ""))
	if err != nil {
		return nil, err
	}
	// The script's answer holds the popped job too (it is in the in-progress list); if the
	// script failed, the popped job alone is in progress.
	if all, err := redis.ByteSlices(replies[1], nil); err == nil {
		return all, nil
	}
	first, err := redis.Bytes(replies[0], nil)
	if errors.Is(err, redis.ErrNil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return [][]byte{first}, nil
}

func max1(n int64) int64 { return max(n, 1) }

// settlement is what becomes of one fetched job.
type settlement struct {
	raw    []byte
	action string // ack, retry, dead
	score  int64
	doc    []byte
}

// settle applies the settlements in one round trip.
func settle(ctx context.Context, c redis.Conn, k keys, pool string, ss []settlement) error {
	args := make([]any, 0, 3+4*len(ss))
	args = append(args, k.inProgress(pool), k.retry(), k.dead())
	for _, s := range ss {
		args = append(args, s.raw, s.action, s.score, s.doc)
	}
	if _, err := settleScript.DoContext(ctx, c, args...); err != nil {
		return fmt.Errorf("settling %d jobs: %w", len(ss), err)
	}
	return nil
}

// failed returns the settlement of a job that failed with cause: a retry after the policy's
// backoff, or the dead set once it failed MaxFails times or the failure is permanent.
func failed(f fetched, cause error, retry RetryPolicy, now time.Time) settlement {
	// decodeFast takes only what json.Unmarshal takes, and a decoded document always encodes;
	// keep the job where it is otherwise.
	if err := f.decode(); err != nil {
		return settlement{raw: f.raw, action: "retry", score: now.Unix(), doc: f.raw}
	}
	j := f.doc
	j.Fails++
	j.LastErr = cause.Error()
	j.FailedAt = now.Unix()
	b, err := json.Marshal(j)
	if err != nil {
		return settlement{raw: f.raw, action: "retry", score: now.Unix(), doc: f.raw}
	}
	if errors.Is(cause, ErrPermanent) || uint(j.Fails) >= retry.MaxFails {
		return settlement{raw: f.raw, action: "dead", score: now.Unix(), doc: b}
	}
	at := now.Add(retry.Backoff(j.Fails)).Unix()
	return settlement{raw: f.raw, action: "retry", score: at, doc: b}
}

// requeueDue moves due retries and scheduled jobs back to their queues, a bounded number per call.
func requeueDue(ctx context.Context, c redis.Conn, k keys, now time.Time) (int, error) {
	total := 0
	for _, set := range []string{k.retry(), k.scheduled()} {
		n, err := redis.Int(requeueScript.DoContext(ctx, c, set, now.Unix(), 1000, k.prefix+"jobs:"))
		if err != nil {
			return total, fmt.Errorf("requeueing %s: %w", set, err)
		}
		total += n
	}
	return total, nil
}

// newPoolID returns a pool id in gocraft's form (24 hex digits).
func newPoolID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// heartbeat writes each fetcher's heartbeat hash and worker_pools entry in gocraft's format,
// which the web UI lists and every reaper reads. Each fetcher is a pool in gocraft's sense (its
// own in-progress list), so that a fetcher can tell its stranded jobs from others' in flight.
func heartbeat(ctx context.Context, c redis.Conn, k keys, pools []string, started time.Time, concurrency int) error {
	host, _ := os.Hostname()
	for _, pool := range pools {
		_ = c.Send("SADD", k.workerPools(), pool)
		_ = c.Send("HSET", k.heartbeat(pool), "heartbeat_at", time.Now().Unix(), "started_at", started.Unix(),
			"job_names", JobName, "concurrency", concurrency, "worker_ids", pool, "host", host,
			"pid", strconv.Itoa(os.Getpid()))
	}
	if _, err := redis.DoContext(c, ctx, ""); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// unregister removes the pools' heartbeats and worker_pools entries (gocraft's stop does the same).
func unregister(ctx context.Context, c redis.Conn, k keys, pools []string) error {
	for _, pool := range pools {
		_ = c.Send("SREM", k.workerPools(), pool)
		_ = c.Send("DEL", k.heartbeat(pool))
	}
	_, err := redis.DoContext(c, ctx, "")
	return err
}
