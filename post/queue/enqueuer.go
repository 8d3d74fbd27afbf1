package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/post"
)

// enqueuerConns bounds the enqueuer's connections to the queue Redis: the pushers' (group.go),
// the replica watch's and Stats'.
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
	reqs     chan *pushReq // writes waiting for a pusher (group.go)
	stop     chan struct{} // closed by close: the pushers end
	exited   chan struct{} // closed once every pusher has ended
	wg       sync.WaitGroup
}

func (t *target) close() {
	close(t.stop)
	t.wg.Wait()
	close(t.exited)
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
	t := &target{addr: addr, pool: newPool(addr, e.cfg, enqueuerConns, nil),
		reqs: make(chan *pushReq, enqueuerConns*groupMax), stop: make(chan struct{}), exited: make(chan struct{})}
	if replicated {
		t.replicas = watchReplicas(t.pool, e.cfg, e.log, addr)
	}
	e.runPushers(t)
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
// job was not queued, except when the error wraps ErrMaybeQueued. Concurrent calls share one
// push and one WAIT (group.go). Waiting for a connection, dialing and the replies are bounded by
// ctx and by the configured timeouts; withdrawing a job after a failure adds at most one dial
// and one round trip.
func (e *Enqueuer) Enqueue(ctx context.Context, p post.Post) error {
	t, err := e.current()
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	body := newJob(p, e.now())
	r := &pushReq{ctx: ctx, body: body, done: make(chan error, 1)}
	select {
	case t.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("enqueueing post %d: %w", p.ID, ctx.Err())
	case <-t.stop:
		return fmt.Errorf("enqueueing post %d: %w", p.ID, ErrNoQueue)
	}
	select {
	case err = <-r.done: // every path of a pusher answers, within the timeouts
	case <-t.exited:
		// The endpoint changed and its pushers ended: a request they did not answer was left
		// in the channel after their last look, and never sent.
		select {
		case err = <-r.done:
		default:
			err = fmt.Errorf("queue endpoint changed before the push: %w", ErrNoQueue)
		}
	}
	if err != nil {
		return fmt.Errorf("enqueueing post %d: %w", p.ID, err)
	}
	return nil
}

// unreplicated handles jobs the primary took but no replica acknowledged in time: a failover
// now would lose them, so each is withdrawn and its write refused — unless a worker already took
// it, in which case it will be persisted and the write stands.
func (e *Enqueuer) unreplicated(ctx context.Context, c redis.Conn, addr string, bodies [][]byte, wait time.Duration) []error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.IOTimeout)
	removed, err := e.withdraw(wctx, c, bodies)
	cancel()
	if err != nil {
		removed, err = e.withdrawFresh(ctx, addr, bodies)
	}
	out := make([]error, len(bodies))
	for i := range bodies {
		switch {
		case err != nil:
			out[i] = fmt.Errorf("no replica acknowledged within %s: %w: %w", wait, ErrMaybeQueued, err)
		case removed[i]:
			out[i] = fmt.Errorf("after %s: %w", wait, ErrNotReplicated)
		default:
			e.log.Debug("queue job taken before replication", "primary", addr)
		}
	}
	return out
}

// unanswered handles a push whose reply never came (timeout, closed connection, canceled
// context): the jobs may or may not be queued. They are withdrawn on a fresh connection; only a
// successful withdrawal proves a job gone. Nothing removed is still ambiguous: the LPUSH may
// never have arrived, may still be in flight, or a worker may have taken the job already.
func (e *Enqueuer) unanswered(ctx context.Context, addr string, bodies [][]byte, cause error) []error {
	removed, err := e.withdrawFresh(ctx, addr, bodies)
	out := make([]error, len(bodies))
	for i := range bodies {
		switch {
		case err != nil:
			out[i] = fmt.Errorf("%w: %w (and %w)", ErrMaybeQueued, cause, err)
		case removed[i]:
			out[i] = fmt.Errorf("no reply, job withdrawn: %w", cause)
		default:
			out[i] = fmt.Errorf("no reply, job not found to withdraw: %w: %w", ErrMaybeQueued, cause)
		}
	}
	return out
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
