package postqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gocraft/work"
	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/post"
)

// Handler persists one post. It returns nil only when the post is stored; an error wrapping
// ErrPermanent sends the job to the dead set, any other error schedules a retry.
type Handler func(ctx context.Context, p post.Post) error

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
	// Concurrency is the number of gocraft worker goroutines: jobs in flight at once.
	Concurrency int
	Retry       RetryPolicy
	// JobTimeout bounds one handler call (its context's deadline).
	JobTimeout time.Duration
	// ReapInterval is how often dead pools' in-progress jobs are re-queued (default 1 min);
	// ReapDeadAfter is how old a heartbeat must be for its pool to count as dead (default 30 s).
	ReapInterval  time.Duration
	ReapDeadAfter time.Duration
	// KeepWarm, when positive, is how often the worker queues a no-op job for itself, so that
	// some worker goroutine always polls at gocraft's fast steps (10 ms, 100 ms) instead of
	// every goroutine backing off to 5 s when the queue is idle. 0 disables it. See keepwarm.go.
	KeepWarm time.Duration
}

// Worker runs a gocraft/work worker pool for persist_post on the queue primary named by
// R/queue/sidekiq, and moves to a new primary without a restart.
type Worker struct {
	cfg WorkerConfig
	k   keys
	h   Handler
	log *slog.Logger
	m   workerMetrics

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
	jobs *prometheus.CounterVec
}

// poolRun is one gocraft pool on one Redis.
type poolRun struct {
	addr       string
	rp         *redis.Pool
	gate       *dialGate
	wp         *work.WorkerPool
	stopReaper context.CancelFunc // also stops the keep-warm loop
	reaperDone chan struct{}
	bg         sync.WaitGroup // the keep-warm loop
}

// NewWorker returns a stopped worker. Its metric queue_jobs_total{result=done|retry|dead} goes
// on reg when it is not nil.
func NewWorker(cfg WorkerConfig, h Handler, log *slog.Logger, reg prometheus.Registerer) *Worker {
	cfg.Queue = cfg.Queue.withDefaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 30 * time.Second
	}
	if cfg.ReapInterval <= 0 {
		cfg.ReapInterval = time.Minute
	}
	if cfg.ReapDeadAfter <= 0 {
		cfg.ReapDeadAfter = 30 * time.Second
	}
	w := &Worker{cfg: cfg, k: newKeys(cfg.Queue.Namespace), h: h, log: log,
		kick: make(chan struct{}, 1), stopC: make(chan struct{}), done: make(chan struct{}),
		m: workerMetrics{jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "queue_jobs_total", Help: "Jobs handled by outcome: done, retry (failed, will be retried), dead.",
		}, []string{"result"})}}
	if reg != nil {
		reg.MustRegister(w.m.jobs)
	}
	return w
}

// SetEndpoints follows R/queue/sidekiq. When the primary changes, the running pool is stopped
// (its in-flight jobs finish) and a new one starts on the new primary.
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

// Stop stops the pool and waits until its in-flight jobs have finished (gocraft's Stop).
func (w *Worker) Stop() { _ = w.Shutdown(context.Background()) }

// Shutdown stops the pool like Stop but gives up waiting when ctx ends: it then cuts the pool
// off its Redis, so that the library's remaining calls (heartbeat removal, requeuers, retry
// writes) fail at once instead of each waiting out dials to a dead server, and returns ctx's
// error. Jobs still in flight stay in the pool's in-progress list, where a later pool's reaper
// finds them: at worst a job runs twice, which the idempotent handler absorbs.
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
	w.log.Info("queue worker started", "redis", addr, "concurrency", w.cfg.Concurrency)
}

// retire stops a pool. When its Redis no longer answers (a failover, or a shutdown with the
// queue down), the pool is cut off it first: the library's stop makes a Redis call per step
// (heartbeat removal, requeuers, in-flight acknowledgements), and each would otherwise wait out
// the dial pause, up to 5 s, keeping the next pool from starting for tens of seconds. Handlers
// in flight still run to the end; their acknowledgements then fail, leaving the jobs in the old
// Redis's in-progress list for a reaper (the upsert absorbs the second run).
func (w *Worker) retire(cur *poolRun) {
	w.log.Info("queue worker stopping", "redis", cur.addr)
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Queue.DialTimeout+w.cfg.Queue.IOTimeout)
	err := ping(ctx, cur.rp)
	cancel()
	if err != nil {
		w.log.Warn("queue worker cut off unreachable redis", "redis", cur.addr, "err", err)
		cur.gate.close()
	}
	cur.stopReaper()
	<-cur.reaperDone
	cur.bg.Wait()
	cur.wp.Stop()
	cur.rp.Close()
}

func (w *Worker) startPool(addr string) *poolRun {
	g := &dialGate{addr: addr, cfg: w.cfg.Queue, closed: make(chan struct{})}
	// Each worker goroutine may hold a fetch and an observer connection; plus the heartbeater,
	// requeuers and reaper.
	rp := newPool(addr, w.cfg.Queue, 2*w.cfg.Concurrency+16, g.dial)
	run := &poolRun{addr: addr, rp: rp, gate: g}
	wp := work.NewWorkerPool(struct{}{}, uint(w.cfg.Concurrency), w.cfg.Queue.Namespace, rp)
	retry := w.cfg.Retry
	wp.JobWithOptions(JobName, work.JobOptions{
		Priority: 100, // sampled before the keep-warm job on nearly every fetch
		MaxFails: retry.MaxFails,
		Backoff:  func(j *work.Job) int64 { return int64(retry.Backoff(j.Fails).Round(time.Second) / time.Second) },
	}, func(j *work.Job) error { return w.handle(rp, j) })
	if w.cfg.KeepWarm > 0 {
		wp.JobWithOptions(keepWarmJob, work.JobOptions{Priority: 1, MaxFails: 1, SkipDead: true},
			func(*work.Job) error { return nil })
	}
	wp.Start()
	run.wp = wp
	ctx, cancel := context.WithCancel(context.Background())
	run.stopReaper, run.reaperDone = cancel, make(chan struct{})
	go w.reapLoop(ctx, run)
	if w.cfg.KeepWarm > 0 {
		run.bg.Go(func() { w.keepWarm(ctx, run) })
	}
	return run
}

// reapLoop re-queues dead pools' jobs every ReapInterval (see reaper).
func (w *Worker) reapLoop(ctx context.Context, run *poolRun) {
	defer close(run.reaperDone)
	r := reaper{k: w.k, deadAfter: w.cfg.ReapDeadAfter, now: time.Now}
	t := time.NewTicker(w.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
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
}

// handle runs one job. A job that cannot be decoded, or whose handler fails permanently, is put
// on the dead set here and acknowledged: gocraft/work would otherwise retry it MaxFails times.
func (w *Worker) handle(rp *redis.Pool, j *work.Job) error {
	p, err := decodeJob(j)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.JobTimeout)
		err = w.h(ctx, p)
		cancel()
		if err == nil {
			w.m.jobs.WithLabelValues("done").Inc()
			return nil
		}
		if !errors.Is(err, ErrPermanent) {
			w.m.jobs.WithLabelValues("retry").Inc()
			return err
		}
	} else {
		err = Permanent(err)
	}
	if buryErr := w.bury(rp, j, err); buryErr != nil {
		w.log.Error("queue job bury failed", "job", j.ID, "err", buryErr)
		w.m.jobs.WithLabelValues("retry").Inc()
		return err // retried; buried on a later attempt
	}
	w.log.Warn("queue job dead", "job", j.ID, "err", err)
	w.m.jobs.WithLabelValues("dead").Inc()
	return nil
}

// decodeJob reads the post a job carries. Only the arguments matter: the job's name was matched
// by the pool, and its id, timestamps and fail count belong to the library.
func decodeJob(j *work.Job) (post.Post, error) {
	if j.Args == nil {
		return post.Post{}, errors.New("decoding job: no arguments")
	}
	p, err := post.FromArgs(j.Args)
	if err != nil {
		return post.Post{}, err
	}
	if p.ID == 0 || p.UserID == 0 {
		return post.Post{}, fmt.Errorf("decoding job: post_id %d, user_id %d: want both > 0", p.ID, p.UserID)
	}
	return p, nil
}

func (w *Worker) bury(rp *redis.Pool, j *work.Job, cause error) error {
	now := time.Now()
	b, err := json.Marshal(job{Name: j.Name, ID: j.ID, EnqueuedAt: j.EnqueuedAt, Args: j.Args,
		Fails: j.Fails + 1, LastErr: cause.Error(), FailedAt: now.Unix()})
	if err != nil {
		return fmt.Errorf("encoding dead job: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Queue.IOTimeout)
	defer cancel()
	c, err := rp.GetContext(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = redis.DoContext(c, ctx, "ZADD", w.k.dead(), now.Unix(), b)
	return err
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
