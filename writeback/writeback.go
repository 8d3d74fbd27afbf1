// Package writeback is the write-back worker: it consumes persist_post jobs from the queue Redis
// (gocraft/work, through post/queue) and writes the posts to the MySQL primary
// (through post/mysql), so that every acknowledged post lands in MySQL exactly once.
//
// Exactly once is at-least-once delivery plus an idempotent write. A job is acknowledged
// (its handler returns nil and gocraft removes it from the in-progress list) only after the
// statement carrying its row committed; a crash before that leaves the job in the in-progress
// list, and a restarted pool's reaper re-queues it; the upsert on post_id makes the second write
// a no-op rather than a duplicate or a unique-key failure.
//
// Batches: the worker (post/queue) takes up to BatchMax jobs from the queue in one round
// trip, this package writes their posts in one multi-row statement, and the worker acknowledges
// the whole batch in one round trip after the commit. Concurrency/BatchMax batches are in flight
// at once; under load the batches fill from the backlog, idle the worker blocks on the queue.
//
// Retries: a failed statement fails every job of its batch, and the worker retries each after
// min(RetryCap, RetryBase·2^(fails-1)) (+≤20 % jitter). With the defaults (1 s, 30 s) a job
// fails about 5 + 3600/30 ≈ 125 times in an hour of database outage; MaxFails defaults to
// 100,000, which at 30 s a failure is about 34 days before anything reaches the dead set. The
// fail count lives in the job document in the retry set, so it survives restarts. A job whose
// arguments do not decode cannot succeed on any retry: it goes to the dead set at once.
//
// Reaping: a killed process's in-flight jobs stay in its pool's in-progress list until a reaper
// (post/queue's, in every writebackd) sees the pool's heartbeat older than 10 s; reapers run at
// start and every 5 s, so the jobs are re-queued within about 15 s, by a restarted process or
// by any other instance.
//
// Pickup latency: an idle worker blocks on the queue (BRPOPLPUSH), so a lone post is taken as
// soon as it is pushed; there is no polling and no keep-warm job.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
	"github.com/the-red/zkpost/post/queue"
)

// Service is one write-back worker with its health and metrics server.
type Service struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	now    func() time.Time
	router *mysql.Router
	worker *queue.Worker
	m      *wbMetrics
	// onCommit, when set, sees every committed batch and the commit time (benchmarks).
	onCommit func(posts []post.Post, at time.Time)
	batches  atomic.Int64 // statements issued
	// base parents every statement's context; abort cancels it (shutdown past its deadline).
	base  context.Context
	abort context.CancelFunc
	ln    net.Listener
	srv   *fasthttp.Server

	// registered reports the ZooKeeper registration, shown by /readyz. It is no readiness
	// condition: the registration only lets Prometheus find us, and the worker persists posts
	// just as well while ZooKeeper is away.
	registered atomic.Pointer[func() bool]

	mu          sync.Mutex
	migrated    string // primary the schema was last applied to
	migrateErr  error
	queueErr    error
	queueSample bool // at least one queue sample was taken
	workerOn    bool

	runOnce   sync.Once
	closeOnce sync.Once
	bgCtx     context.Context // ends at shutdown: the migrate and stats loops and their I/O
	stopBG    context.CancelFunc
	bg        sync.WaitGroup
}

// New builds the service and opens its listener; nothing runs until Run.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Service, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	s := &Service{cfg: cfg, log: log, reg: reg, now: time.Now, ln: ln}
	s.bgCtx, s.stopBG = context.WithCancel(context.Background())
	s.m = newMetrics(reg)
	s.router = mysql.NewRouter(cfg.DB, log, reg)
	s.base, s.abort = context.WithCancel(context.Background())
	s.worker = queue.NewBatchWorker(queue.WorkerConfig{
		Queue:       cfg.Queue,
		Concurrency: cfg.Concurrency,
		BatchMax:    cfg.BatchMax,
		BatchLinger: cfg.BatchLinger,
		Retry:       queue.RetryPolicy{MaxFails: cfg.MaxFails, Base: cfg.RetryBase, Cap: cfg.RetryCap},
		JobTimeout:  cfg.CommitTimeout + 5*time.Second,
	}, s.commitBatch, log, reg)
	s.srv = s.newHTTP()
	return s, nil
}

// Addr returns the metrics and health server's bound address.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// SetDBEndpoints applies the R/db node.
func (s *Service) SetDBEndpoints(e discovery.DBEndpoints) { s.router.SetEndpoints(e) }

// SetQueueEndpoints applies the R/queue/sidekiq node.
func (s *Service) SetQueueEndpoints(q discovery.QueueEndpoints) { s.worker.SetEndpoints(q) }

// SetRegistered makes /readyz show the ZooKeeper registration through f.
func (s *Service) SetRegistered(f func() bool) { s.registered.Store(&f) }

// OnCommit sets a hook that sees every committed batch and its commit time. Set it before Run.
func (s *Service) OnCommit(f func(posts []post.Post, at time.Time)) { s.onCommit = f }

// Batches returns the number of upsert statements issued so far.
func (s *Service) Batches() int64 { return s.batches.Load() }

// commitBatch writes one fetched batch in one statement; the worker acknowledges its jobs only
// when it returns nil.
func (s *Service) commitBatch(ctx context.Context, posts []post.Post) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommitTimeout)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	err := s.commit(ctx, posts)
	s.batches.Add(1)
	at := s.now()
	s.m.observeBatch(posts, at, err)
	if err == nil && s.onCommit != nil {
		s.onCommit(posts, at)
	}
	return err
}

func (s *Service) commit(ctx context.Context, posts []post.Post) error {
	s.awaitPrimary(ctx)
	store, err := s.router.Primary()
	if err != nil {
		return err
	}
	return store.Upsert(ctx, posts)
}

// awaitPrimary holds a batch while the primary failed its last health check, for up to half the
// commit timeout, and then lets it try anyway (the check may be stale). During an outage this
// turns a flood of instantly failing jobs — each one a retry-set round trip and a spent fail —
// into a few held batches, while the queue keeps the jobs safe.
func (s *Service) awaitPrimary(ctx context.Context) {
	healthy := func() bool {
		st := s.router.Status()
		return len(st) == 0 || st[0].Role != "primary" || !st[0].Checked || st[0].Healthy
	}
	if healthy() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CommitTimeout/2)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !healthy() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Run serves health and metrics, applies the schema to the primary (retrying while the database
// is down), then consumes the queue, until ctx ends. Call Close afterwards to drain.
func (s *Service) Run(ctx context.Context) error {
	started := false
	s.runOnce.Do(func() { started = true })
	if !started {
		return errors.New("writeback: Run called twice")
	}
	s.bg.Add(2)
	go func() { defer s.bg.Done(); s.migrateLoop() }()
	go func() { defer s.bg.Done(); s.statsLoop() }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(httpapi.BareLFListener(s.ln)) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-serveErr:
		return fmt.Errorf("serving http: %w", err)
	}
}

// ShutdownTimeout is the configured bound on the whole shutdown (--shutdown-timeout).
func (s *Service) ShutdownTimeout() time.Duration { return s.cfg.ShutdownTimeout }

// Close is Shutdown within the configured ShutdownTimeout.
func (s *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown drains and releases everything, in order: the worker stops taking jobs and waits for
// its in-flight batches to commit and be acknowledged, then the database pools and the HTTP
// server. Every step gives up when ctx ends, so a shutdown with the queue, the database
// and ZooKeeper all dead still ends by the deadline: unfinished jobs stay in the queue's
// in-progress list and run again after a restart (the upsert makes that harmless). Deregister
// from ZooKeeper before calling it.
func (s *Service) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		// Past the deadline, a statement in flight is canceled so its handlers return.
		defer context.AfterFunc(ctx, s.abort)()
		s.stopBG()
		err = errors.Join(
			waitWithin(ctx, "background loops", s.bg.Wait),
			s.worker.Shutdown(ctx),
			waitWithin(ctx, "database pools", func() { _ = s.router.Close() }),
			s.srv.ShutdownWithContext(ctx),
		)
		s.ln.Close()
	})
	return err
}

// waitWithin runs f and waits for it until ctx ends; f then finishes in the background.
func waitWithin(ctx context.Context, what string, f func()) error {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing %s: %w", what, ctx.Err())
	}
}

// migrateLoop applies the schema to every new primary, retrying while it fails, and starts the
// worker after the first success: jobs consumed before the table exists would only fail.
func (s *Service) migrateLoop() {
	delay := 200 * time.Millisecond
	for {
		ok := s.migrateOnce()
		if ok {
			delay = time.Second
		} else {
			delay = min(5*time.Second, 2*delay)
		}
		select {
		case <-s.bgCtx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (s *Service) migrateOnce() bool {
	store, err := s.router.Primary()
	if err != nil {
		s.setMigrate("", err)
		return false
	}
	s.mu.Lock()
	done := s.migrated == store.Addr()
	s.mu.Unlock()
	if done {
		return true
	}
	ctx, cancel := context.WithTimeout(s.bgCtx, s.cfg.CommitTimeout)
	err = mysql.Migrate(ctx, store.DB())
	cancel()
	if err != nil {
		s.setMigrate("", err)
		return false
	}
	s.log.Info("schema applied", "db", store.Addr())
	s.setMigrate(store.Addr(), nil)
	s.mu.Lock()
	start := !s.workerOn
	s.workerOn = true
	s.mu.Unlock()
	if start {
		s.worker.Start()
	}
	return true
}

func (s *Service) setMigrate(addr string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && (s.migrateErr == nil || s.migrateErr.Error() != err.Error()) {
		s.log.Warn("schema not applied", "err", err)
	}
	if addr != "" {
		s.migrated = addr
	}
	s.migrateErr = err
}

// statsLoop samples queue depth for /metrics and queue reachability for /readyz, so neither
// does I/O while serving.
func (s *Service) statsLoop() {
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.bgCtx, s.cfg.StatsInterval)
		st, err := s.worker.Stats(ctx)
		cancel()
		if err == nil {
			s.m.observeQueue(st)
		}
		s.mu.Lock()
		s.queueErr, s.queueSample = err, true
		s.mu.Unlock()
		select {
		case <-s.bgCtx.Done():
			return
		case <-t.C:
		}
	}
}
