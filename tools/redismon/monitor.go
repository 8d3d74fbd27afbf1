package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/tools/redismon/clusterview"
)

// Config tunes the monitor.
type Config struct {
	Listen string
	// ViewDatacenter is the guid datacenter whose worker leases /cluster shows.
	ViewDatacenter int
	Advertise      string
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	FailThreshold  int
	RiseThreshold  int
	// QueueNamespace is the gocraft/work namespace of the queue whose backlog the leader samples.
	QueueNamespace string
}

// RegisterFlags adds redismon's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "0.0.0.0:8040", "host:port for /healthz, /readyz, /metrics and the cluster view /cluster (a second instance: 8041)")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port written to the election node and to R/redismon/nodes (default: the bound address)")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", 500*time.Millisecond, "how often the leader probes every shard and the queue primary")
	fs.DurationVar(&c.ProbeTimeout, "probe-timeout", 250*time.Millisecond, "how long one probe may take")
	fs.IntVar(&c.FailThreshold, "fail-threshold", 3, "consecutive failed probes before a shard is DOWN or the queue fails over")
	fs.IntVar(&c.RiseThreshold, "rise-threshold", 2, "consecutive good probes before a DOWN shard is flushed and ALIVE again")
	fs.IntVar(&c.ViewDatacenter, "view-dc", 0, "guid datacenter whose worker ids the cluster view (/cluster) shows")
	fs.StringVar(&c.QueueNamespace, "queue-namespace", "the_red", "gocraft/work namespace of the write-back queue (for its backlog gauges)")
}

func (c Config) validate() error {
	switch {
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0:
		return errors.New("--probe-interval and --probe-timeout must be positive")
	case c.FailThreshold < 1 || c.RiseThreshold < 1:
		return errors.New("--fail-threshold and --rise-threshold must be at least 1")
	}
	return nil
}

// Monitor is one redismon instance: a candidate in the election that, while it leads, watches the
// cache shards and the queue Redis. Standbys only serve their HTTP endpoints.
type Monitor struct {
	cfg      Config
	conn     *discovery.Conn
	layout   discovery.Layout
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *monitorMetrics
	redis    *clients
	election *election
	backlog  *backlog
	ln       net.Listener
	srv      *fasthttp.Server
	now      func() time.Time

	advertise    string
	serverSet    []byte                  // the serverset node's data
	registration *discovery.Registration // set by Run before it serves
	view         *clusterview.View       // the live cluster view (/cluster), on every instance
}

// New opens the HTTP listener and prepares the monitor; Run starts it.
func New(cfg Config, conn *discovery.Conn, layout discovery.Layout, log *slog.Logger, reg *prometheus.Registry) (*Monitor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	adv, err := discovery.AdvertiseAddr(cfg.Advertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	serverSet, err := discovery.NewServerSet(adv, 0)
	if err != nil {
		ln.Close()
		return nil, err
	}
	m := &Monitor{cfg: cfg, conn: conn, layout: layout, log: log, reg: reg, metrics: newMonitorMetrics(reg),
		redis: newClients(cfg.ProbeTimeout), ln: ln, now: time.Now, advertise: adv, serverSet: serverSet}
	m.election = &election{conn: conn, dir: layout.RedismonLeader(), data: []byte(adv), log: log}
	m.view = clusterview.New(conn, layout, clusterview.Config{Datacenter: cfg.ViewDatacenter}, log)
	m.backlog = &backlog{zk: conn.ZK(), path: layout.Queue(), namespace: cfg.QueueNamespace, log: log}
	reg.MustRegister(m.backlog)
	m.srv = &fasthttp.Server{Handler: m.routes(), Name: "redismon", ReadTimeout: 10 * time.Second, ErrorHandler: httpapi.TransportError,
		WriteTimeout: 10 * time.Second, NoDefaultServerHeader: true}
	return m, nil
}

// Addr returns the HTTP listener's address.
func (m *Monitor) Addr() net.Addr { return m.ln.Addr() }

// IsLeader reports whether this instance leads now.
func (m *Monitor) IsLeader() bool { return m.election.leader.Load() }

// Run registers the instance under R/redismon/nodes (a serverset node, so Prometheus discovers it
// like the services), serves HTTP and takes part in the election until ctx ends; then it leaves
// the election (so a standby takes over at once), deregisters, and stops the HTTP server.
func (m *Monitor) Run(ctx context.Context) error {
	m.registration = m.conn.Register(m.layout.RedismonNodes(), m.advertise, m.serverSet)
	served := make(chan error, 1)
	go func() { served <- m.srv.Serve(m.ln) }()
	gauges := m.conn.WatchChildren(m.layout.CacheNodes(), discovery.WatchOptions{WithData: true, OnChange: m.setShardGauges})
	m.election.run(ctx, m.lead)
	if err := m.registration.Close(); err != nil {
		m.log.Warn("zk deregister failed", "err", err)
	}
	gauges.Stop()
	m.redis.close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.view.Close(sctx); err != nil {
		m.log.Warn("closing the cluster view", "err", err)
	}
	if err := m.srv.ShutdownWithContext(sctx); err != nil {
		return fmt.Errorf("stopping HTTP server: %w", err)
	}
	return <-served
}

// lead is one leadership term: fresh counters, probes every ProbeInterval until ctx ends.
func (m *Monitor) lead(ctx context.Context) {
	m.metrics.isLeader.Set(1)
	defer m.metrics.isLeader.Set(0)
	sh := &shards{cfg: m.cfg, zk: m.conn, dir: m.layout.CacheNodes(), redis: m.redis, log: m.log,
		metrics: m.metrics, now: m.now, counts: map[string]*shardCounts{}, queuePath: m.layout.Queue()}
	q := &queue{cfg: m.cfg, zk: m.conn, path: m.layout.Queue(), redis: m.redis, log: m.log,
		metrics: m.metrics, cacheDir: m.layout.CacheNodes()}
	var wg sync.WaitGroup
	wg.Go(func() { every(ctx, m.cfg.ProbeInterval, sh.tick) })
	wg.Go(func() { every(ctx, m.cfg.ProbeInterval, q.tick) })
	wg.Go(func() { m.backlog.run(ctx) })
	wg.Wait()
}

// every calls f at once and then every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for ctx.Err() == nil {
		f(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

func (m *Monitor) setShardGauges(s discovery.Snapshot) {
	m.metrics.shardUp.Reset()
	m.metrics.shardEpoch.Reset()
	for node, data := range s.Children {
		n, err := discovery.ParseCacheNode(node, data)
		if err != nil {
			continue
		}
		up := 0.0
		if n.Status == discovery.StatusAlive {
			up = 1
		}
		m.metrics.shardUp.WithLabelValues(n.Name).Set(up)
		m.metrics.shardEpoch.WithLabelValues(n.Name).Set(float64(n.Epoch))
	}
}

func (m *Monitor) routes() fasthttp.RequestHandler {
	h := metrics.NewHTTP(m.reg)
	healthz := h.Route("healthz", func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	})
	readyz := h.Route("readyz", m.readyz)
	metricsH := h.Route("metrics", metrics.Handler(m.reg))
	notFound := h.Route("not_found", func(ctx *fasthttp.RequestCtx) { httpapi.WriteError(ctx, httpapi.ErrNotFound) })
	view := map[string]fasthttp.RequestHandler{"/cluster": h.Route("cluster", m.view.ServePage),
		"/cluster/events": h.Route("cluster_events", m.view.ServeEvents), "/cluster/state": h.Route("cluster_state", m.view.ServeState)}
	return func(ctx *fasthttp.RequestCtx) {
		if v := view[string(ctx.Path())]; v != nil {
			v(ctx)
			return
		}
		switch string(ctx.Path()) {
		case "/healthz":
			healthz(ctx)
		case "/readyz":
			readyz(ctx)
		case "/metrics":
			metricsH(ctx)
		default:
			notFound(ctx)
		}
	}
}

// readyz answers 200 while the instance is a candidate in the election with a live session: a
// standby is ready too, since standing by is its job.
func (m *Monitor) readyz(ctx *fasthttp.RequestCtx) {
	var reasons []string
	if _, ok := m.conn.Session(); !ok {
		reasons = append(reasons, "no ZooKeeper session")
	} else {
		if !m.election.joined.Load() {
			reasons = append(reasons, "not in the leader election yet")
		}
		if r := m.registration; r == nil || !r.Registered() {
			reasons = append(reasons, "not registered in ZooKeeper yet")
		}
	}
	if len(reasons) > 0 {
		httpapi.WriteJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": reasons})
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "ready", "leader": m.IsLeader()})
}
