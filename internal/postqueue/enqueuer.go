package postqueue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/post"
)

// enqueuerConns bounds the enqueuer's connections to the queue Redis; callers past it wait for a
// free connection (bounded by their context).
const enqueuerConns = 64

// Enqueuer puts persist_post jobs on the queue Redis named by R/queue/sidekiq.
type Enqueuer struct {
	cfg Config
	k   keys
	log *slog.Logger
	now func() time.Time

	mu    sync.RWMutex
	addr  string
	pool  *redis.Pool
	known bool // known_jobs holds JobName in this pool's Redis
}

// NewEnqueuer returns an enqueuer with no endpoint; give it one with SetEndpoints.
func NewEnqueuer(cfg Config, log *slog.Logger) *Enqueuer {
	cfg = cfg.withDefaults()
	return &Enqueuer{cfg: cfg, k: newKeys(cfg.Namespace), log: log, now: time.Now}
}

// SetEndpoints follows R/queue/sidekiq: when the primary changed (redismon promoted a
// secondary), new jobs go to the new primary at once and the old pool is closed.
func (e *Enqueuer) SetEndpoints(q discovery.QueueEndpoints) {
	e.mu.Lock()
	if q.Primary == e.addr {
		e.mu.Unlock()
		return
	}
	old, oldAddr := e.pool, e.addr
	e.addr, e.known = q.Primary, false
	e.pool = nil
	if q.Primary != "" {
		e.pool = newPool(q.Primary, e.cfg, enqueuerConns, nil)
	}
	e.mu.Unlock()
	e.log.Info("queue endpoint", "primary", q.Primary, "previous", oldAddr)
	if old != nil {
		old.Close()
	}
}

// Addr returns the queue primary jobs go to ("" when none is known).
func (e *Enqueuer) Addr() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.addr
}

func (e *Enqueuer) current() (*redis.Pool, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.pool == nil {
		return nil, ErrNoQueue
	}
	return e.pool, nil
}

// Enqueue puts a persist_post job for p on the queue. It returns nil only when the queue Redis
// acknowledged the LPUSH; the job is then durable as far as that Redis's fsync policy makes it
// (appendfsync always in our deployments). Waiting for a connection, dialing and the reply are
// bounded by ctx and by the configured timeouts.
func (e *Enqueuer) Enqueue(ctx context.Context, p post.Post) error {
	pool, err := e.current()
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	body, err := newJob(p, e.now())
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	c, err := pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	defer c.Close()
	if _, err := redis.DoContext(c, ctx, "LPUSH", e.k.jobs(), body); err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	e.markKnown(ctx, c, pool)
	return nil
}

// markKnown adds JobName to known_jobs once per pool, as gocraft's enqueuer does, so its web UI
// and client list the queue. Best effort: the job is already queued.
func (e *Enqueuer) markKnown(ctx context.Context, c redis.Conn, pool *redis.Pool) {
	e.mu.RLock()
	done := e.known || e.pool != pool
	e.mu.RUnlock()
	if done {
		return
	}
	if _, err := redis.DoContext(c, ctx, "SADD", e.k.knownJobs(), JobName); err != nil {
		return
	}
	e.mu.Lock()
	if e.pool == pool {
		e.known = true
	}
	e.mu.Unlock()
}

// Ping checks the queue primary answers.
func (e *Enqueuer) Ping(ctx context.Context) error {
	pool, err := e.current()
	if err != nil {
		return err
	}
	return ping(ctx, pool)
}

// Stats reads the queue's depth, retry, scheduled and dead set sizes.
func (e *Enqueuer) Stats(ctx context.Context) (Stats, error) {
	pool, err := e.current()
	if err != nil {
		return Stats{}, err
	}
	return queueStats(ctx, pool, e.k)
}

// DeadJobs lists the dead set (for tests and tools; it reads the whole set).
func (e *Enqueuer) DeadJobs(ctx context.Context) ([]DeadJob, error) {
	pool, err := e.current()
	if err != nil {
		return nil, err
	}
	return deadJobs(ctx, pool, e.k)
}

// Close closes the connection pool.
func (e *Enqueuer) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	if e.pool != nil {
		err = e.pool.Close()
	}
	e.pool, e.addr = nil, ""
	return err
}
