package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	postqueue "github.com/the-red/zkpost/post/queue"
)

// backlogInterval is how often the leader samples the queue's backlog.
const backlogInterval = 2 * time.Second

// backlog samples the write-back queue's depth and the age of its oldest job from the current
// queue primary, while this instance leads. writebackd samples depth too, but only while it runs:
// from here the backlog stays visible when every writer is down (docs/monitoring.md). Only the
// leader exports the gauges, so there is one series however many instances run.
type backlog struct {
	conn      *discovery.Conn
	path      string // the queue node
	namespace string
	log       *slog.Logger

	reader  *postqueue.BacklogReader // for primary; replaced when the primary changes
	primary string

	mu     sync.Mutex
	sample postqueue.Backlog
	valid  bool
}

var (
	descBacklog = prometheus.NewDesc("queue_backlog_jobs",
		"Write-back queue jobs by state (queued, retry, scheduled, dead), sampled by the redismon leader.", []string{"state"}, nil)
	descOldest = prometheus.NewDesc("queue_oldest_job_age_seconds",
		"Age of the oldest queued write-back job (0 when none waits), sampled by the redismon leader.", nil, nil)
)

// run samples every backlogInterval until ctx (the leadership term) ends.
func (b *backlog) run(ctx context.Context) {
	defer b.reset()
	every(ctx, backlogInterval, b.tick)
}

func (b *backlog) tick(ctx context.Context) {
	data, _, err := b.conn.Get(b.path)
	if err != nil {
		b.set(postqueue.Backlog{}, false)
		return
	}
	eps, err := discovery.ParseQueue(data)
	if err != nil {
		b.set(postqueue.Backlog{}, false)
		return
	}
	if eps.Primary != b.primary {
		b.closeReader()
		b.primary = eps.Primary
		b.reader = postqueue.NewBacklogReader(eps.Primary, postqueue.Config{Namespace: b.namespace})
	}
	ctx, cancel := context.WithTimeout(ctx, backlogInterval)
	defer cancel()
	s, err := b.reader.Read(ctx)
	if err != nil {
		b.log.Debug("queue backlog unreadable", "primary", eps.Primary, "err", err)
	}
	b.set(s, err == nil)
}

func (b *backlog) set(s postqueue.Backlog, valid bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sample, b.valid = s, valid
}

// reset ends a leadership term: no gauges until the next one samples.
func (b *backlog) reset() {
	b.set(postqueue.Backlog{}, false)
	b.closeReader()
	b.primary = ""
}

func (b *backlog) closeReader() {
	if b.reader != nil {
		b.reader.Close()
		b.reader = nil
	}
}

// Describe and Collect make backlog a collector: its series exist only while a sample is valid.
func (b *backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklog
	ch <- descOldest
}

func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	s, valid := b.sample, b.valid
	b.mu.Unlock()
	if !valid {
		return
	}
	for state, n := range map[string]int64{"queued": s.Queued, "retry": s.Retry, "scheduled": s.Scheduled, "dead": s.Dead} {
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, s.OldestAge.Seconds())
}
