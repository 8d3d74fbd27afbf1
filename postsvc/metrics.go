package postsvc

import "github.com/prometheus/client_golang/prometheus"

// serviceMetrics are postsvc's own counters, beside the per-route HTTP metrics.
type serviceMetrics struct {
	cache        *prometheus.CounterVec // by kind (list, post, url, write, fill) and result (hit, miss, error)
	listKept     prometheus.Counter     // cache{kind="list",result="kept"}, looked up once: a warm page's only count
	writeOK      prometheus.Counter     // cache{kind="write",result="ok"}, looked up once: every write counts it
	dbFallbacks  *prometheus.CounterVec // by reason
	scrap        *prometheus.CounterVec // by result (ok, cached, error, timeout)
	enqueueFails prometheus.Counter
	// writeThroughFails counts write-through mode's refused writes (its database upsert failed).
	writeThroughFails prometheus.Counter
	// published counts posts published to their author's streams, by result (ok, error,
	// no_shard); the publish is part of the post's cache write (coverage.go's addPost).
	published   *prometheus.CounterVec
	publishedOK prometheus.Counter // published{result="ok"}, looked up once
	ringMembers prometheus.Gauge
	ringVersion prometheus.Gauge
	// coverageRepairs counts deletions of coverage markers after failed cache writes, by result
	// (scheduled, done, dropped).
	coverageRepairs *prometheus.CounterVec
	// refreshes counts background renewals of coverage markers (refresh.go), by result (done, error).
	refreshes *prometheus.CounterVec
	// writeStage times the steps of a write (Service.Write), failed ones included: where a slow
	// write spent its time (docs/monitoring.md, "Write stages").
	writeStage                                    *prometheus.HistogramVec
	stageID, stagePreview, stageStore, stageCache prometheus.Observer
}

// writeStageBuckets run from 100 µs to 0.8 s, doubling: a write's steps take from tens of µs (an
// id from a block) to the store's timeout.
var writeStageBuckets = prometheus.ExponentialBuckets(0.0001, 2, 14)

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postsvc_cache_ops_total", Help: "Cache operations by kind and result (hit, miss, error).",
		}, []string{"kind", "result"}),
		dbFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postsvc_db_fallbacks_total", Help: "Reads served with the database's help, by reason.",
		}, []string{"reason"}),
		scrap: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postsvc_scrap_total", Help: "Link previews by result (ok, cached, error, timeout).",
		}, []string{"result"}),
		enqueueFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postsvc_enqueue_failures_total", Help: "Writes refused because the queue did not take the job.",
		}),
		writeThroughFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postsvc_write_through_failures_total", Help: "Writes refused in write-through mode because the database primary did not store the post.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postsvc_stream_published_total",
			Help: "Acknowledged posts published for streams, by result (ok, error, no_shard)."}, []string{"result"}),
		ringMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postsvc_cache_ring_members", Help: "ALIVE cache shards on the hash ring.",
		}),
		ringVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postsvc_cache_ring_version", Help: "ZooKeeper zxid of the cache shard list the ring was built from.",
		}),
		coverageRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postsvc_coverage_repairs_total", Help: "Coverage markers dropped after failed cache writes, by result (scheduled, done, dropped).",
		}, []string{"result"}),
	}
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postsvc_coverage_refreshes_total", Help: "Coverage markers renewed in the background before they expired, by result (done, error).",
	}, []string{"result"})
	m.writeStage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "postsvc_write_stage_seconds",
		Help:    "Time a write spent in each step: id (from guid), preview (link preview, posts with a URL), store (the job durably queued, or in write-through mode the row committed), cache (the cache write and publish).",
		Buckets: writeStageBuckets,
	}, []string{"stage"})
	m.stageID, m.stagePreview = m.writeStage.WithLabelValues("id"), m.writeStage.WithLabelValues("preview")
	m.stageStore, m.stageCache = m.writeStage.WithLabelValues("store"), m.writeStage.WithLabelValues("cache")
	m.listKept, m.writeOK = m.cache.WithLabelValues("list", "kept"), m.cache.WithLabelValues("write", "ok")
	m.publishedOK = m.published.WithLabelValues("ok")
	reg.MustRegister(m.cache, m.dbFallbacks, m.scrap, m.enqueueFails, m.writeThroughFails, m.published, m.ringMembers, m.ringVersion, m.coverageRepairs, m.refreshes, m.writeStage)
	return m
}

func (m *serviceMetrics) cacheOp(kind, result string) { m.cache.WithLabelValues(kind, result).Inc() }
