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
	cur   *target
	known bool // known_jobs holds JobName in the current target's Redis
}

// target is the queue primary jobs go to, its connections and, when the queue node lists
// secondaries, the watch of its attached replicas.
type target struct {
	addr     string
	pool     *redis.Pool
	replicas *replicaWatch // nil: never WAIT
}

func (t *target) close() {
	if t.replicas != nil {
		t.replicas.close()
	}
	t.pool.Close()
}

// NewEnqueuer returns an enqueuer with no endpoint; give it one with SetEndpoints.
func NewEnqueuer(cfg Config, log *slog.Logger) *Enqueuer {
	cfg = cfg.withDefaults()
	return &Enqueuer{cfg: cfg, k: newKeys(cfg.Namespace), log: log, now: time.Now}
}

// SetEndpoints follows R/queue/sidekiq: when the primary changed (redismon promoted a
// secondary), new jobs go to the new primary at once and the old pool is closed. Whether
// secondaries are listed decides whether jobs wait for a replica (see the package doc).
func (e *Enqueuer) SetEndpoints(q discovery.QueueEndpoints) {
	replicated := len(q.Secondary) > 0 && e.cfg.ReplicaWait > 0
	e.mu.Lock()
	old := e.cur
	if old != nil && old.addr == q.Primary && (old.replicas != nil) == replicated {
		e.mu.Unlock()
		return
	}
	e.cur, e.known = nil, false
	if q.Primary != "" {
		e.cur = e.newTarget(q.Primary, replicated)
	}
	e.mu.Unlock()
	e.log.Info("queue endpoint", "primary", q.Primary, "secondary", q.Secondary, "replica_wait", replicated)
	if old != nil {
		old.close()
	}
}

func (e *Enqueuer) newTarget(addr string, replicated bool) *target {
	t := &target{addr: addr, pool: newPool(addr, e.cfg, enqueuerConns, nil)}
	if replicated {
		t.replicas = watchReplicas(t.pool, e.cfg, e.log, addr)
	}
	return t
}

// Addr returns the queue primary jobs go to ("" when none is known).
func (e *Enqueuer) Addr() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.cur == nil {
		return ""
	}
	return e.cur.addr
}

func (e *Enqueuer) current() (*target, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.cur == nil {
		return nil, ErrNoQueue
	}
	return e.cur, nil
}

// Enqueue puts a persist_post job for p on the queue. It returns nil only when the queue
// primary acknowledged the LPUSH (durable there with appendfsync always) and, when a replica is
// attached, a replica acknowledged it too, or a worker already took the job. On any error the
// job was not queued, except when the error wraps ErrMaybeQueued. Waiting for a connection,
// dialing and the replies are bounded by ctx and by the configured timeouts; withdrawing a job
// after a failure adds at most one dial and one command.
func (e *Enqueuer) Enqueue(ctx context.Context, p post.Post) error {
	t, err := e.current()
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	body, err := newJob(p, e.now())
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	if err := e.push(ctx, t, body); err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	return nil
}

// push sends LPUSH, and WAIT 1 when a replica is attached, in one round trip.
func (e *Enqueuer) push(ctx context.Context, t *target, body []byte) error {
	c, err := t.pool.GetContext(ctx)
	if err != nil {
		return err // nothing was sent
	}
	defer c.Close()
	wait := t.replicas.waitFor(e.cfg.ReplicaWait)
	_ = c.Send("LPUSH", e.k.jobs(), body) // a failed Send fails the Do below
	if wait > 0 {
		_ = c.Send("WAIT", 1, waitMillis(wait))
	}
	replies, err := redis.Values(redis.DoContext(c, ctx, ""))
	if err != nil {
		return e.unanswered(ctx, t.addr, body, err)
	}
	if rerr, ok := replies[0].(redis.Error); ok {
		return fmt.Errorf("LPUSH: %w", rerr) // refused: nothing was queued
	}
	e.markKnown(ctx, c, t)
	if wait <= 0 {
		return nil
	}
	if n, err := redis.Int(replies[1], nil); err == nil && n >= 1 {
		return nil
	}
	return e.unreplicated(ctx, c, t.addr, body, wait)
}

// unreplicated handles a job the primary took but no replica acknowledged in time: a failover
// now would lose it, so it is withdrawn and the write refused — unless a worker already took it,
// in which case it will be persisted and the write stands.
func (e *Enqueuer) unreplicated(ctx context.Context, c redis.Conn, addr string, body []byte, wait time.Duration) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.IOTimeout)
	removed, err := e.withdraw(wctx, c, body)
	cancel()
	if err != nil {
		removed, err = e.withdrawFresh(ctx, addr, body)
	}
	switch {
	case err != nil:
		return fmt.Errorf("no replica acknowledged within %s: %w: %w", wait, ErrMaybeQueued, err)
	case removed:
		return fmt.Errorf("after %s: %w", wait, ErrNotReplicated)
	default:
		e.log.Debug("queue job taken before replication", "primary", addr)
		return nil
	}
}

// unanswered handles a push whose reply never came (timeout, closed connection, canceled
// context): the job may or may not be queued. It is withdrawn on a fresh connection; only a
// successful withdrawal proves it gone. Nothing removed is still ambiguous: the LPUSH may never
// have arrived, may still be in flight, or a worker may have taken the job already.
func (e *Enqueuer) unanswered(ctx context.Context, addr string, body []byte, cause error) error {
	removed, err := e.withdrawFresh(ctx, addr, body)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w (and %w)", ErrMaybeQueued, cause, err)
	case removed:
		return fmt.Errorf("no reply, job withdrawn: %w", cause)
	default:
		return fmt.Errorf("no reply, job not found to withdraw: %w: %w", ErrMaybeQueued, cause)
	}
}

// markKnown adds JobName to known_jobs once per pool, as gocraft's enqueuer does, so its web UI
// and client list the queue. Best effort: the job is already queued.
func (e *Enqueuer) markKnown(ctx context.Context, c redis.Conn, t *target) {
	e.mu.RLock()
	done := e.known || e.cur != t
	e.mu.RUnlock()
	if done {
		return
	}
	if _, err := redis.DoContext(c, ctx, "SADD", e.k.knownJobs(), JobName); err != nil {
		return
	}
	e.mu.Lock()
	if e.cur == t {
		e.known = true
	}
	e.mu.Unlock()
}

// Ping checks the queue primary answers.
func (e *Enqueuer) Ping(ctx context.Context) error {
	t, err := e.current()
	if err != nil {
		return err
	}
	return ping(ctx, t.pool)
}

// Stats reads the queue's depth, retry, scheduled and dead set sizes.
func (e *Enqueuer) Stats(ctx context.Context) (Stats, error) {
	t, err := e.current()
	if err != nil {
		return Stats{}, err
	}
	return queueStats(ctx, t.pool, e.k)
}

// DeadJobs lists the dead set (for tests and tools; it reads the whole set).
func (e *Enqueuer) DeadJobs(ctx context.Context) ([]DeadJob, error) {
	t, err := e.current()
	if err != nil {
		return nil, err
	}
	return deadJobs(ctx, t.pool, e.k)
}

// Close closes the connection pool and stops the replica watch.
func (e *Enqueuer) Close() error {
	e.mu.Lock()
	t := e.cur
	e.cur = nil
	e.mu.Unlock()
	if t != nil {
		t.close()
	}
	return nil
}
