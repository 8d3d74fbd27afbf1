package writeback

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/queue"
)

type wbMetrics struct {
	batches    *prometheus.CounterVec
	batchSize  prometheus.Histogram
	rows       prometheus.Counter
	latency    prometheus.Histogram
	queueDepth *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *wbMetrics {
	m := &wbMetrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writeback_batches_total", Help: "Upsert statements (group commits) by result.",
		}, []string{"result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writeback_batch_size", Help: "Posts per upsert statement.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writeback_rows_committed_total", Help: "Posts written by committed statements (redeliveries included).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "writeback_queue_latency_seconds",
			Help:    "Time from a post's timestamp (its id's) to the commit of its row.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "writeback_queue_jobs", Help: "Jobs in the queue Redis by state (queued, retry, scheduled, dead), sampled.",
		}, []string{"state"}),
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.batchSize, m.rows, m.latency, m.queueDepth)
	}
	return m
}

func (m *wbMetrics) observeBatch(posts []post.Post, at time.Time, err error) {
	if err != nil {
		m.batches.WithLabelValues("error").Inc()
		return
	}
	m.batches.WithLabelValues("ok").Inc()
	m.batchSize.Observe(float64(len(posts)))
	m.rows.Add(float64(len(posts)))
	for _, p := range posts {
		m.latency.Observe(at.Sub(p.CreatedAt).Seconds())
	}
}

func (m *wbMetrics) observeQueue(s queue.Stats) {
	m.queueDepth.WithLabelValues("queued").Set(float64(s.Queued))
	m.queueDepth.WithLabelValues("retry").Set(float64(s.Retry))
	m.queueDepth.WithLabelValues("scheduled").Set(float64(s.Scheduled))
	m.queueDepth.WithLabelValues("dead").Set(float64(s.Dead))
}
