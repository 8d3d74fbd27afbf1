package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/gocraft/work"
	"github.com/gomodule/redigo/redis"
)

// Backlog is what waits in one queue Redis: the set sizes of Stats and the age of the oldest
// persist_post job not yet taken by a worker.
type Backlog struct {
	Stats
	// OldestAge is how long the oldest queued job has waited (whole seconds, as gocraft/work
	// counts it); 0 when none waits.
	OldestAge time.Duration
}

// BacklogReader reads the Backlog of the queue Redis at one address. It needs no worker and no
// enqueuer, so a monitor can watch the queue while every writer is down (docs/monitoring.md).
type BacklogReader struct {
	pool   *redis.Pool
	client *work.Client
	k      keys
}

// NewBacklogReader returns a reader of the queue Redis at addr; it connects on first use.
func NewBacklogReader(addr string, cfg Config) *BacklogReader {
	cfg = cfg.withDefaults()
	pool := newPool(addr, cfg, 1, nil)
	return &BacklogReader{pool: pool, client: work.NewClient(cfg.Namespace, pool), k: newKeys(cfg.Namespace)}
}

// Read samples the backlog. The age comes from gocraft/work's Client.Queues, whose Latency is
// the age of the job at the tail of the list: the next one a worker takes, so the oldest.
func (b *BacklogReader) Read(ctx context.Context) (Backlog, error) {
	st, err := queueStats(ctx, b.pool, b.k)
	if err != nil {
		return Backlog{}, err
	}
	out := Backlog{Stats: st}
	if st.Queued == 0 {
		return out, nil
	}
	// Queues takes no context; the pool's dial, read and write timeouts bound it.
	queues, err := b.client.Queues()
	if err != nil {
		return Backlog{}, fmt.Errorf("reading queue latency: %w", err)
	}
	for _, q := range queues {
		if q.JobName == JobName {
			out.OldestAge = time.Duration(q.Latency) * time.Second
		}
	}
	return out, nil
}

// Close releases the reader's connection.
func (b *BacklogReader) Close() error { return b.pool.Close() }
