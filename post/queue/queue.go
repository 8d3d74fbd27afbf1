// Package queue is our small interface over gocraft/work v0.5.1's queue format, the
// Sidekiq-style queue between postsvcd and writebackd. The library is unmaintained since 2020,
// so nothing outside this package touches the queue: postsvcd enqueues through Enqueuer,
// writebackd consumes through Worker.
//
// What the wrapper adds to the library:
//   - Enqueue takes a context and returns nil only once the queue Redis acknowledged the LPUSH
//     (with appendfsync always, that is durable) and, with a replica attached, once a replica
//     has it too (see "Replication and failover" below); the redigo pools dial, read and write
//     with timeouts, so a dead or hung queue fails a write fast instead of hanging it.
//   - Both sides follow R/queue/sidekiq: SetEndpoints switches to a promoted primary without a
//     restart (the Worker stops its pool, letting in-flight jobs finish, and starts a new one).
//   - Job arguments carry ids as strings (post.Args): the library decodes numbers as float64.
//   - A job whose arguments do not decode, or whose handler reports a permanent error, goes to
//     the dead set at once, since retrying cannot help; every other failure is retried with the
//     caller's policy (the library's default, 4 fails, kills a job within minutes).
//   - Job outcomes, batch sizes and queue depth are exported as metrics.
//   - Batches (batch.go): the worker does not run gocraft's worker pool, which fetches one job per
//     round trip, acknowledges one per round trip and polls an idle queue with backoff up to 5 s.
//     It takes up to BatchMax jobs per round trip (into its pool's in-progress list, as gocraft's
//     RPOPLPUSH fetch leaves them, with three list commands per batch), hands them to the handler
//     together, and settles the batch in one round trip after it: acknowledged jobs leave the
//     in-progress list (one DEL when the whole list was acknowledged), failed ones go to the
//     retry set (with gocraft's fail count, error and backoff score) or the dead set. An idle
//     worker blocks on the queue (BRPOPLPUSH, one command per second), so a lone job is taken
//     as soon as it is pushed. The keys, job documents, heartbeats, retry and dead sets stay
//     gocraft's, so its web UI lists queued, retrying and dead jobs and retries dead ones; the
//     requeuer moves due retries back once a second. gocraft's concurrency lock counters are not
//     maintained (nothing here sets a per-job concurrency limit). Each fetcher is its own pool
//     in gocraft's sense (heartbeat, in-progress list), and fetches only once its previous batch
//     is settled, so jobs stranded in its list by a fetch whose reply was lost come back with
//     its next batch rather than waiting for the process to die.
//   - Dead pools: a killed process's in-flight jobs stay in its pool's in-progress list. Every
//     Worker reaps, at start and every 5 s, pools whose heartbeat is over 10 s old, and orphaned
//     in-progress lists whose pool is no longer in worker_pools (gocraft/work #146), so the jobs
//     run again within about 15 s (reaper.go).
//   - While its Redis is down, the worker pool's dials are paced (dialGate) instead of failing
//     every 10 ms in every goroutine.
//
// # Replication and failover
//
// redismon promotes a secondary when the queue primary dies and later makes the old primary a
// replica of it, which discards whatever the promoted node had not received. A job acknowledged
// after the primary's fsync alone could be lost that way. So when the queue node lists
// secondaries, Enqueue sends WAIT 1 <ReplicaWait> in the same round trip as the LPUSH:
//   - a replica acknowledged → the job is on two nodes, and the write is acknowledged;
//   - none did in time → the job is withdrawn (LREM of its exact bytes; every job has a random
//     id, so they are unique). Removed → ErrNotReplicated: the job is gone and the post will
//     never appear. Nothing removed → a worker already moved the job to its in-progress list;
//     it is being persisted, so the write is acknowledged.
//
// Whether to WAIT is decided from a background poll of the primary's INFO replication (once a
// second), not per request: WAIT runs while at least one replica is online and acknowledged
// within the last replicaMaxLag seconds, or while that is not known yet. The alternative,
// always waiting when secondaries are listed, would refuse every write after a failover, since
// redismon lists the dead old primary as a secondary until it returns. The price is a window
// of single-copy acknowledgements whenever no replica is attached (the replica is down, the old
// primary has not rejoined yet, or a hung replica passed replicaMaxLag): a second failure in
// that window — the primary lost and a stale secondary promoted — loses those jobs. Writes are
// refused only for the few seconds it takes the poll to notice a replica went away.
//
// # What a failed Enqueue means
//
// Every error means "not queued" except one wrapping ErrMaybeQueued. When a push got no reply
// (timeout, dropped connection, canceled context), the job may or may not be in the list, so
// Enqueue tries, once and bounded by the dial and I/O timeouts, to LREM it over a new
// connection: removed → the refusal is true. When that fails too (the primary is unreachable or
// hung) or removes nothing (the LPUSH never arrived, is still in flight, or a worker took the
// job), the error wraps ErrMaybeQueued: the client is refused, yet the post may still be
// persisted once the primary processes the push. Residual cases of the same kind: a withdrawal
// that ran on the primary but not yet on a replica that had the push, followed by a failover,
// brings the job back; a worker that took an unreplicated job and crashed together with the
// primary loses it (its in-progress list was on the primary).
//
// Of the library itself only its web UI runs (tools/workwebui); this package writes its formats.
package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/the-red/zkpost/post"
)

// JobName is the gocraft/work job that persists one post.
const JobName = "persist_post"

// Config holds the queue flags shared by the enqueuing and the consuming side.
type Config struct {
	// Namespace prefixes every key, as gocraft/work's namespace ("the_red" → "the_red:jobs:persist_post").
	Namespace string
	// DialTimeout bounds connecting; IOTimeout bounds each command's write and reply.
	DialTimeout time.Duration
	IOTimeout   time.Duration
	// ReplicaWait is how long Enqueue waits for a replica of the queue primary to acknowledge
	// a job (WAIT 1 <ReplicaWait>) when the queue node lists secondaries; 0 never waits. Only
	// the enqueuing side uses it (RegisterEnqueueFlags).
	ReplicaWait time.Duration
}

// RegisterFlags adds --queue-namespace, --queue-dial-timeout and --queue-io-timeout to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Namespace, "queue-namespace", "the_red", "gocraft/work namespace of the write-back queue")
	fs.DurationVar(&c.DialTimeout, "queue-dial-timeout", time.Second, "queue Redis connect timeout")
	fs.DurationVar(&c.IOTimeout, "queue-io-timeout", 2*time.Second, "queue Redis command timeout")
}

// RegisterEnqueueFlags adds the enqueuing side's --queue-replica-wait to fs.
func (c *Config) RegisterEnqueueFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.ReplicaWait, "queue-replica-wait", 250*time.Millisecond,
		"how long a write waits for a queue replica to acknowledge its job before it is refused (0: never wait)")
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = "the_red"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = time.Second
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 2 * time.Second
	}
	return c
}

// keys names the library's Redis keys (gocraft/work's redis.go; they are part of its format).
type keys struct{ prefix string }

func newKeys(namespace string) keys {
	if !strings.HasSuffix(namespace, ":") {
		namespace += ":"
	}
	return keys{prefix: namespace}
}

func (k keys) jobs() string        { return k.prefix + "jobs:" + JobName }
func (k keys) knownJobs() string   { return k.prefix + "known_jobs" }
func (k keys) retry() string       { return k.prefix + "retry" }
func (k keys) dead() string        { return k.prefix + "dead" }
func (k keys) scheduled() string   { return k.prefix + "scheduled" }
func (k keys) workerPools() string { return k.prefix + "worker_pools" }
func (k keys) heartbeat(pool string) string {
	return k.prefix + "worker_pools:" + pool
}
func (k keys) inProgress(pool string) string { return k.jobs() + ":" + pool + ":inprogress" }
func (k keys) lock() string                  { return k.jobs() + ":lock" }
func (k keys) lockInfo() string              { return k.jobs() + ":lock_info" }

// job is gocraft/work's job document (work.Job's JSON form).
type job struct {
	Name       string         `json:"name,omitempty"`
	ID         string         `json:"id"`
	EnqueuedAt int64          `json:"t"`
	Args       map[string]any `json:"args"`
	Unique     bool           `json:"unique,omitempty"`
	Fails      int64          `json:"fails,omitempty"`
	LastErr    string         `json:"err,omitempty"`
	FailedAt   int64          `json:"failed_at,omitempty"`
}

func newJob(p post.Post, now time.Time) []byte {
	var id [12]byte
	_, _ = rand.Read(id[:])
	// What json.Marshal(job{Name: JobName, ID: …, EnqueuedAt: …, Args: p.Args()}) writes
	// (TestNewJobIsWhatEncodingJSONWrites), without reflection over a map.
	b := make([]byte, 0, 160+len(p.Contents)+len(p.URL)+len(p.Scrap))
	b = append(b, `{"name":`...)
	b = post.AppendJSONString(b, JobName)
	b = append(b, `,"id":"`...)
	b = hex.AppendEncode(b, id[:])
	b = append(b, `","t":`...)
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, `,"args":`...)
	b = p.AppendArgs(b)
	return append(b, '}')
}

// newPool returns a redigo pool for addr whose every connection dials, reads and writes with
// the configured timeouts. A connection idle for over a second is pinged before reuse, so the
// first command after a Redis restart does not fail on a dead socket.
func newPool(addr string, cfg Config, maxActive int, dial func(ctx context.Context) (redis.Conn, error)) *redis.Pool {
	if dial == nil {
		dial = func(ctx context.Context) (redis.Conn, error) { return dialRedis(ctx, addr, cfg) }
	}
	return &redis.Pool{
		DialContext: dial,
		MaxIdle:     maxActive,
		MaxActive:   maxActive,
		Wait:        true,
		IdleTimeout: 4 * time.Minute,
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, used time.Time) error {
			if time.Since(used) < time.Second {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
	}
}

func dialRedis(ctx context.Context, addr string, cfg Config) (redis.Conn, error) {
	return redis.DialContext(ctx, "tcp", addr,
		redis.DialConnectTimeout(cfg.DialTimeout),
		redis.DialReadTimeout(cfg.IOTimeout),
		redis.DialWriteTimeout(cfg.IOTimeout))
}

// Stats is the state of the queue in one Redis.
type Stats struct {
	Queued    int64 // waiting in the job list
	Retry     int64 // failed, waiting for their backoff
	Scheduled int64
	Dead      int64
	Pools     int64 // worker pools with a heartbeat entry
}

func queueStats(ctx context.Context, pool *redis.Pool, k keys) (Stats, error) {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	defer c.Close()
	var s Stats
	for _, q := range []struct {
		cmd, key string
		dst      *int64
	}{
		{"LLEN", k.jobs(), &s.Queued},
		{"ZCARD", k.retry(), &s.Retry},
		{"ZCARD", k.scheduled(), &s.Scheduled},
		{"ZCARD", k.dead(), &s.Dead},
		{"SCARD", k.workerPools(), &s.Pools},
	} {
		n, err := redis.Int64(redis.DoContext(c, ctx, q.cmd, q.key))
		if err != nil {
			return Stats{}, fmt.Errorf("queue stats: %s %s: %w", q.cmd, q.key, err)
		}
		*q.dst = n
	}
	return s, nil
}

// DeadJob is one job of the dead set.
type DeadJob struct {
	ID      string
	Args    map[string]any
	Fails   int64
	LastErr string
}

func deadJobs(ctx context.Context, pool *redis.Pool, k keys) ([]DeadJob, error) {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading dead set: %w", err)
	}
	defer c.Close()
	raw, err := redis.ByteSlices(redis.DoContext(c, ctx, "ZRANGE", k.dead(), 0, -1))
	if err != nil {
		return nil, fmt.Errorf("reading dead set: %w", err)
	}
	out := make([]DeadJob, 0, len(raw))
	for _, b := range raw {
		var j job
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, fmt.Errorf("reading dead set: %w", err)
		}
		out = append(out, DeadJob{ID: j.ID, Args: j.Args, Fails: j.Fails, LastErr: j.LastErr})
	}
	return out, nil
}

func ping(ctx context.Context, pool *redis.Pool) error {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("pinging queue: %w", err)
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "PING"); err != nil {
		return fmt.Errorf("pinging queue: %w", err)
	}
	return nil
}

// ErrNoQueue means no queue endpoint is known yet (R/queue/sidekiq was not read).
var ErrNoQueue = errors.New("no queue endpoint known")
