package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/post"
)

// Handler persists one post. It returns nil only when the post is stored; an error wrapping
// ErrPermanent sends the job to the dead set, any other error schedules a retry.
type Handler func(ctx context.Context, p post.Post) error

// BatchHandler persists a batch of posts (writebackd: one multi-row upsert). It returns nil only
// when every post is stored; an error fails the whole batch, as Handler's error fails one post.
type BatchHandler func(ctx context.Context, posts []post.Post) error

// ErrPermanent marks a failure no retry can fix.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the job goes to the dead set instead of being retried.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// RetryPolicy is how failed jobs are retried: after fails failures a job waits
// min(Cap, Base·2^(fails-1)) plus up to 20 % jitter, and goes to the dead set after MaxFails.
// gocraft/work keeps the fail count in the job document in the retry set, so it survives
// restarts and queue failovers, and after a long outage every further failure waits Cap.
type RetryPolicy struct {
	MaxFails uint
	Base     time.Duration
	Cap      time.Duration
}

// Backoff returns the wait before the attempt that follows the fails-th failure.
func (r RetryPolicy) Backoff(fails int64) time.Duration {
	d := r.Cap
	if fails < 1 {
		fails = 1
	}
	if fails < 32 {
		d = min(r.Cap, r.Base<<(fails-1))
	}
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Queue Config
	// Concurrency bounds the jobs in flight: Concurrency/BatchMax batches (at least one) are
	// fetched and handled at once.
	Concurrency int
	// BatchMax is the most jobs taken in one round trip and handed to one handler call (default
	// min(Concurrency, 256)).
	BatchMax int
	// BatchLinger is the least time between two fetches of one fetcher while batches come back
	// short of BatchMax (0: fetch again at once): the jobs that arrive meanwhile join the next
	// batch, so a busy queue drains in fewer, larger batches at the cost of at most BatchLinger
	// of ack→commit latency. A full batch is followed at once; an empty queue is waited on
	// (IdleBlock), never polled.
	BatchLinger time.Duration
	Retry       RetryPolicy
	// JobTimeout bounds one handler call (its context's deadline).
	JobTimeout time.Duration
	// ReapInterval is how often dead pools' in-progress jobs are re-queued (default 5 s);
	// ReapDeadAfter is how old a heartbeat must be for its pool to count as dead (default 10 s,
	// two missed beats; reaping a pool that was only slow costs a redundant, idempotent write).
	ReapInterval  time.Duration
	ReapDeadAfter time.Duration
	// IdleBlock is how long one blocking wait on an empty queue lasts before the fetcher looks at
	// its stop signal again (default 1 s); a job pushed meanwhile is taken at once.
	IdleBlock time.Duration
}

// Worker drains persist_post jobs from the queue primary named by R/queue/sidekiq, in batches, and
// moves to a new primary without a restart.
type Worker struct {
	cfg    WorkerConfig
	k      keys
	handle func(ctx context.Context, posts []post.Post) []error
	log    *slog.Logger
	m      workerMetrics

	mu      sync.Mutex
	want    string // the primary the pool should run on
	cur     *poolRun
	started bool
	kick    chan struct{}
	stopC   chan struct{}
	done    chan struct{}
	stopOne sync.Once
}

type workerMetrics struct {
	jobs    *prometheus.CounterVec
	fetches prometheus.Histogram
}

// poolRun is one pool (in gocraft's sense: one heartbeat, one in-progress list) on one Redis.
type poolRun struct {
	addr    string
	ids     []string // one pool id per fetcher
	started time.Time
	rp      *redis.Pool
	gate    *dialGate
	stop    context.CancelFunc // stops fetching, the heartbeat, the reaper and the requeuer
	fetch   sync.WaitGroup     // the fetchers, which finish their batch after stop
	bg      sync.WaitGroup     // heartbeat, reaper, requeuer
}

// NewWorker returns a stopped worker that hands each post to h (the posts of a batch run
// concurrently, and each job succeeds or fails on its own). Its metric
// queue_jobs_total{result=done|retry|dead} goes on reg when it is not nil.
func NewWorker(cfg WorkerConfig, h Handler, log *slog.Logger, reg prometheus.Registerer) *Worker {
	return newWorker(cfg, func(ctx context.Context, posts []post.Post) []error {
		errs := make([]error, len(posts))
		var wg sync.WaitGroup
		for i, p := range posts {
			wg.Go(func() { errs[i] = h(ctx, p) })
		}
		wg.Wait()
		return errs
	}, log, reg)
}

// NewBatchWorker returns a stopped worker that hands each fetched batch to h in one call.
func NewBatchWorker(cfg WorkerConfig, h BatchHandler, log *slog.Logger, reg prometheus.Registerer) *Worker {
	return newWorker(cfg, func(ctx context.Context, posts []post.Post) []error {
		err := h(ctx, posts)
		if err == nil {
			return nil
		}
		errs := make([]error, len(posts))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}, log, reg)
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	c.Queue = c.Queue.withDefaults()
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.BatchMax <= 0 {
		c.BatchMax = min(c.Concurrency, 256)
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 30 * time.Second
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = 5 * time.Second
	}
	if c.ReapDeadAfter <= 0 {
		c.ReapDeadAfter = 10 * time.Second
	}
	if c.IdleBlock < time.Second {
		c.IdleBlock = time.Second // BRPOPLPUSH counts whole seconds
	}
	return c
}

func newWorker(cfg WorkerConfig, h func(context.Context, []post.Post) []error, log *slog.Logger, reg prometheus.Registerer) *Worker {
	cfg = cfg.withDefaults()
	w := &Worker{cfg: cfg, k: newKeys(cfg.Queue.Namespace), handle: h, log: log,
		kick: make(chan struct{}, 1), stopC: make(chan struct{}), done: make(chan struct{}),
		m: workerMetrics{jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "queue_jobs_total", Help: "Jobs handled by outcome: done, retry (failed, will be retried), dead.",
		}, []string{"result"}), fetches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "queue_fetch_jobs", Help: "Jobs taken per fetch round trip.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		})}}
	if reg != nil {
		reg.MustRegister(w.m.jobs, w.m.fetches)
	}
	return w
}

// SetEndpoints follows R/queue/sidekiq. When the primary changes, the running pool is stopped
// (its in-flight batches finish) and a new one starts on the new primary.
func (w *Worker) SetEndpoints(q discovery.QueueEndpoints) {
	w.mu.Lock()
	w.want = q.Primary
	w.mu.Unlock()
	w.poke()
}

func (w *Worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Start starts the worker: a pool runs whenever a primary is known.
func (w *Worker) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	go w.loop()
	w.poke()
}

// Stop stops the pool and waits until its in-flight batches have finished.
func (w *Worker) Stop() { _ = w.Shutdown(context.Background()) }

// Shutdown stops the pool like Stop but gives up waiting when ctx ends: it then cuts the pool
// off its Redis, so that the remaining calls (acknowledgements, heartbeat removal) fail at once
// instead of each waiting out dials to a dead server, and returns ctx's error. Jobs still in
// flight stay in the pool's in-progress list, where a reaper finds them: at worst a job runs
// twice, which the idempotent handler absorbs.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	w.stopOne.Do(func() { close(w.stopC) })
	if !started {
		return nil
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	w.mu.Lock()
	cur := w.cur
	w.mu.Unlock()
	if cur != nil {
		cur.gate.close()
		cur.rp.Close()
	}
	return fmt.Errorf("stopping queue worker: %w", ctx.Err())
}

// Addr returns the Redis the pool currently runs on ("" when none).
func (w *Worker) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return ""
	}
	return w.cur.addr
}

func (w *Worker) loop() {
	defer close(w.done)
	for {
		select {
		case <-w.stopC:
			w.swap("")
			return
		case <-w.kick:
		}
		w.mu.Lock()
		want := w.want
		w.mu.Unlock()
		w.swap(want)
	}
}

// swap stops the running pool unless it already runs on addr, then starts one on addr.
func (w *Worker) swap(addr string) {
	w.mu.Lock()
	cur := w.cur
	w.mu.Unlock()
	if cur != nil && cur.addr == addr {
		return
	}
	if cur != nil {
		w.retire(cur)
		w.mu.Lock()
		w.cur = nil
		w.mu.Unlock()
	}
	if addr == "" {
		return
	}
	run := w.startPool(addr)
	w.mu.Lock()
	w.cur = run
	w.mu.Unlock()
	w.log.Info("queue worker started", "redis", addr, "pools", run.ids, "concurrency", w.cfg.Concurrency, "batch_max", w.cfg.BatchMax)
}

// retire stops a pool: fetching stops, the batches in flight finish (their handlers run to the
// end), and the pool's heartbeat is removed. When its Redis no longer answers (a failover, or a
// shutdown with the queue down) the pool is cut off it first, so that acknowledgements fail at
// once instead of each waiting out the dial pause; those jobs stay in the old Redis's
// in-progress list for a reaper (the upsert absorbs the second run).
func (w *Worker) retire(cur *poolRun) {
	w.log.Info("queue worker stopping", "redis", cur.addr)
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Queue.DialTimeout+w.cfg.Queue.IOTimeout)
	err := ping(ctx, cur.rp)
	cancel()
	if err != nil {
		w.log.Warn("queue worker cut off unreachable redis", "redis", cur.addr, "err", err)
		cur.gate.close()
	}
	cur.stop()
	cur.fetch.Wait()
	cur.bg.Wait()
	ctx, cancel = context.WithTimeout(context.Background(), w.cfg.Queue.DialTimeout+w.cfg.Queue.IOTimeout)
	if c, err := cur.rp.GetContext(ctx); err == nil {
		_ = unregister(ctx, c, w.k, cur.ids)
		c.Close()
	}
	cancel()
	cur.rp.Close()
}

func (w *Worker) startPool(addr string) *poolRun {
	g := &dialGate{addr: addr, cfg: w.cfg.Queue, closed: make(chan struct{})}
	fetchers := max(1, w.cfg.Concurrency/w.cfg.BatchMax)
	// One connection per fetcher, plus the heartbeat, reaper, requeuer and stats.
	rp := newPool(addr, w.cfg.Queue, fetchers+8, g.dial)
	ctx, cancel := context.WithCancel(context.Background())
	run := &poolRun{addr: addr, started: time.Now(), rp: rp, gate: g, stop: cancel}
	for range fetchers {
		run.ids = append(run.ids, newPoolID())
	}
	w.beat(ctx, run) // listed before it fetches, so no reaper takes its in-progress list for an orphan's
	run.bg.Go(func() { w.every(ctx, 5*time.Second, func() { w.beat(ctx, run) }) })
	run.bg.Go(func() { w.every(ctx, time.Second, func() { w.requeue(ctx, run) }) })
	run.bg.Go(func() { w.reapLoop(ctx, run) })
	for _, id := range run.ids {
		run.fetch.Go(func() { w.drain(ctx, run, id) })
	}
	return run
}

// every runs f every d until ctx ends.
func (w *Worker) every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// conn runs f on a connection of the pool, bounded by the dial and I/O timeouts.
func (w *Worker) conn(ctx context.Context, run *poolRun, f func(ctx context.Context, c redis.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Queue.DialTimeout+w.cfg.Queue.IOTimeout)
	defer cancel()
	c, err := run.rp.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoConn, err)
	}
	defer c.Close()
	return f(ctx, c)
}

// errNoConn marks a failure to get a connection: the dial gate already paces those.
var errNoConn = errors.New("no queue connection")

func (w *Worker) beat(ctx context.Context, run *poolRun) {
	err := w.conn(ctx, run, func(ctx context.Context, c redis.Conn) error {
		return heartbeat(ctx, c, w.k, run.ids, run.started, w.cfg.BatchMax)
	})
	if err != nil && ctx.Err() == nil {
		w.log.Debug("queue heartbeat failed", "redis", run.addr, "err", err)
	}
}

func (w *Worker) requeue(ctx context.Context, run *poolRun) {
	err := w.conn(ctx, run, func(ctx context.Context, c redis.Conn) error {
		_, err := requeueDue(ctx, c, w.k, time.Now())
		return err
	})
	if err != nil && ctx.Err() == nil {
		w.log.Debug("queue requeue failed", "redis", run.addr, "err", err)
	}
}

// reapLoop re-queues dead and orphaned pools' jobs every ReapInterval (see reaper), the first
// time at once.
func (w *Worker) reapLoop(ctx context.Context, run *poolRun) {
	r := reaper{k: w.k, deadAfter: w.cfg.ReapDeadAfter, now: time.Now, self: run.ids}
	reap := func() {
		rctx, cancel := context.WithTimeout(ctx, 10*w.cfg.Queue.IOTimeout)
		n, err := r.reap(rctx, run.rp)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("queue reap failed", "redis", run.addr, "err", err)
		case n > 0:
			w.log.Info("queue reaped dead pools", "redis", run.addr, "jobs", n)
		}
	}
	reap()
	w.every(ctx, w.cfg.ReapInterval, reap)
}

// drain fetches and handles batches until ctx ends; a batch fetched is always handled and
// settled, even when ctx ends meanwhile.
func (w *Worker) drain(ctx context.Context, run *poolRun, pool string) {
	pause := time.Duration(0)
	var fetched time.Time
	for ctx.Err() == nil {
		w.linger(ctx, fetched)
		fetched = time.Now()
		var raws [][]byte
		err := w.conn(ctx, run, func(fctx context.Context, c redis.Conn) error {
			var err error
			raws, err = fetchBatch(fctx, c, w.k, pool, w.cfg.BatchMax, w.cfg.IdleBlock, w.cfg.Queue.IOTimeout)
			return err
		})
		if len(raws) > 0 {
			w.m.fetches.Observe(float64(len(raws)))
			w.process(run, pool, raws)
		}
		if len(raws) == 0 || len(raws) >= w.cfg.BatchMax {
			fetched = time.Time{} // nothing to wait for: the queue was empty, or is busy enough
		}
		if err == nil {
			pause = 0
			continue
		}
		if ctx.Err() == nil {
			w.log.Warn("queue fetch failed", "redis", run.addr, "err", err)
		}
		if errors.Is(err, errNoConn) {
			continue // the dial gate paused already
		}
		pause = min(gateMaxPause, max(gateMinPause, 2*pause))
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// linger waits until BatchLinger has passed since the fetch at last (zero: no wait), or ctx ends.
func (w *Worker) linger(ctx context.Context, last time.Time) {
	if last.IsZero() || w.cfg.BatchLinger <= 0 {
		return
	}
	wait := time.Until(last.Add(w.cfg.BatchLinger))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// process decodes a fetched batch, hands its posts to the handler and settles every job in one
// round trip: acknowledged when its post is stored, else retried or buried.
func (w *Worker) process(run *poolRun, pool string, raws [][]byte) {
	now := time.Now()
	var (
		jobs  []fetched
		posts []post.Post
		ss    = make([]settlement, 0, len(raws))
	)
	for _, raw := range raws {
		f := fetched{raw: raw}
		p, ok := decodeFast(raw) // its document is decoded only if it fails (failed)
		if !ok {
			if err := f.decode(); err != nil { // buried as it came: nothing to update
				ss = append(ss, settlement{raw: raw, action: "dead", score: now.Unix(), doc: raw})
				continue
			}
			var err error
			if p, err = decodeJob(f.doc.Args); err != nil {
				ss = append(ss, failed(f, Permanent(err), w.cfg.Retry, now))
				continue
			}
		}
		jobs, posts = append(jobs, f), append(posts, p)
	}
	if len(posts) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.JobTimeout)
		errs := w.handle(ctx, posts)
		cancel()
		for i, f := range jobs {
			if errs == nil || errs[i] == nil {
				ss = append(ss, settlement{raw: f.raw, action: "ack"})
				continue
			}
			ss = append(ss, failed(f, errs[i], w.cfg.Retry, time.Now()))
		}
	}
	for _, s := range ss {
		result := map[string]string{"ack": "done", "retry": "retry", "dead": "dead"}[s.action]
		w.m.jobs.WithLabelValues(result).Inc()
		if s.action == "dead" {
			w.log.Warn("queue job dead", "job", string(s.doc))
		}
	}
	w.settle(run, pool, ss)
}

// settle applies settlements, retrying while the Redis is unreachable, until it succeeds or the
// pool is cut off (the jobs then stay in progress for a reaper: at worst a post is written twice,
// which the upsert absorbs).
func (w *Worker) settle(run *poolRun, pool string, ss []settlement) {
	pause := gateMinPause
	for {
		err := w.conn(context.Background(), run, func(ctx context.Context, c redis.Conn) error {
			return settle(ctx, c, w.k, pool, ss)
		})
		if err == nil {
			return
		}
		w.log.Warn("queue acknowledgement failed", "redis", run.addr, "jobs", len(ss), "err", err)
		wait := pause
		if errors.Is(err, errNoConn) {
			wait = 0 // the dial gate paused already
		}
		select {
		case <-run.gate.closed:
			w.log.Warn("queue acknowledgement abandoned", "redis", run.addr, "jobs", len(ss), "err", err)
			return
		case <-time.After(wait):
		}
		pause = min(gateMaxPause, 2*pause)
	}
}

// decodeJob reads the post a job's arguments carry. Only the arguments matter: the job's id,
// timestamps and fail count belong to the queue.
func decodeJob(args map[string]any) (post.Post, error) {
	if args == nil {
		return post.Post{}, errors.New("decoding job: no arguments")
	}
	p, err := post.FromArgs(args)
	if err != nil {
		return post.Post{}, err
	}
	if p.ID == 0 || p.UserID == 0 {
		return post.Post{}, fmt.Errorf("decoding job: post_id %d, user_id %d: want both > 0", p.ID, p.UserID)
	}
	return p, nil
}

func (w *Worker) pool() (*redis.Pool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return nil, ErrNoQueue
	}
	return w.cur.rp, nil
}

// Stats reads the queue's depth, retry, scheduled and dead set sizes from the pool's Redis.
func (w *Worker) Stats(ctx context.Context) (Stats, error) {
	rp, err := w.pool()
	if err != nil {
		return Stats{}, err
	}
	return queueStats(ctx, rp, w.k)
}

// Ping checks the pool's Redis answers.
func (w *Worker) Ping(ctx context.Context) error {
	rp, err := w.pool()
	if err != nil {
		return err
	}
	return ping(ctx, rp)
}
