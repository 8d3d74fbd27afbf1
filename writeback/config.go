package writeback

import (
	"flag"
	"time"

	"github.com/the-red/zkpost/post/mysql"
	"github.com/the-red/zkpost/post/queue"
)

// Config configures the write-back worker.
type Config struct {
	Listen string // host:port of the metrics and health server
	DB     mysql.Config
	Queue  queue.Config

	Concurrency   int           // jobs in flight: Concurrency/BatchMax batches at once
	BatchMax      int           // jobs per fetch and posts per statement at most
	BatchLinger   time.Duration // least time between a fetcher's fetches while batches come back short
	CommitTimeout time.Duration // bound on one statement
	RetryBase     time.Duration
	RetryCap      time.Duration
	MaxFails      uint
	// StatsInterval is how often queue depth is sampled for /metrics and /readyz.
	StatsInterval time.Duration
	// ShutdownTimeout bounds the whole shutdown: deregistration, draining in-flight jobs, the
	// last batch, closing the pools.
	ShutdownTimeout time.Duration
}

// RegisterFlags adds the worker's flags, with the database and queue flags, to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "0.0.0.0:8030", "host:port of the metrics and health server")
	c.DB.RegisterFlags(fs)
	c.Queue.RegisterFlags(fs)
	fs.IntVar(&c.Concurrency, "concurrency", 512, "jobs in flight: concurrency/batch-max batches are fetched and committed at once")
	fs.IntVar(&c.BatchMax, "batch-max", 256, "jobs taken per queue round trip and posts per upsert statement at most")
	fs.DurationVar(&c.BatchLinger, "batch-linger", 50*time.Millisecond,
		"least time between two fetches of one fetcher while batches come back short of batch-max (larger batches, at most this much more ack-to-commit latency); 0: fetch at once")
	fs.DurationVar(&c.CommitTimeout, "commit-timeout", 10*time.Second, "bound on one upsert statement")
	fs.DurationVar(&c.RetryBase, "retry-base", time.Second, "backoff after a job's first failure")
	fs.DurationVar(&c.RetryCap, "retry-cap", 30*time.Second, "backoff cap")
	fs.UintVar(&c.MaxFails, "max-fails", 100_000, "failures before a job goes to the dead set")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second,
		"bound on the whole shutdown; jobs still in flight then stay queued and run again after a restart")
}

func (c Config) withDefaults() Config {
	def := Config{Concurrency: 512, BatchMax: 256, CommitTimeout: 10 * time.Second,
		RetryBase: time.Second, RetryCap: 30 * time.Second, MaxFails: 100_000, StatsInterval: 2 * time.Second,
		ShutdownTimeout: 10 * time.Second}
	if c.Concurrency <= 0 {
		c.Concurrency = def.Concurrency
	}
	if c.BatchMax <= 0 {
		c.BatchMax = def.BatchMax
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = def.CommitTimeout
	}
	if c.RetryBase <= 0 {
		c.RetryBase = def.RetryBase
	}
	if c.RetryCap < c.RetryBase {
		c.RetryCap = max(def.RetryCap, c.RetryBase)
	}
	if c.MaxFails == 0 {
		c.MaxFails = def.MaxFails
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = def.StatsInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = def.ShutdownTimeout
	}
	return c
}
