package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
)

// ErrNoDatabase means no database endpoint is known yet (the R/db node was not read).
var ErrNoDatabase = errors.New("no database endpoint known")

// Router sends writes to the primary and reads to a healthy replica whose lag is within
// MaxLag, round robin, falling back to the primary (docs/architecture.md#the-database). Endpoints come from
// SetEndpoints; health comes from a background loop, so Primary and Reader never wait on the
// network.
//
// Degraded reads. When the primary itself failed its last health check, falling back to it
// would fail every read, yet its replicas are then all "unhealthy" too: their IO threads cannot
// reach the dead primary, so Seconds_Behind_Master is NULL. In that state alone — primary
// unreachable and no healthy replica — Reader returns the best reachable replica instead: one
// that answered its last check and has replication configured, preferring the one that applied
// the furthest into the primary's binary log, then a running SQL thread, then the smallest lag
// last measured. The db_read_degraded gauge is 1 and Status marks that replica ReadFallback.
// As soon as the primary answers again the normal rule applies unchanged (the primary until a
// replica has reconnected and caught up). Writes (Primary) are never redirected.
//
// What degraded reads may miss: a replica stops where the primary died, holding everything the
// primary committed except what replication had not yet shipped at that moment (asynchronous
// replication: up to the lag then, normally well under a second; the primary still has those
// rows and serves them again once back). Nothing is committed after the primary died, so nothing
// newer is missing from the database side. Posts acknowledged but not yet persisted stay in the
// write-back queue (writebackd holds them until the primary returns) and in the author's cache
// list, so a page merged from the cache and the replica shows them; only a post both in the last
// un-shipped replication window and no longer in the cache (trimmed or expired) is briefly
// missing, and reappears when the primary is back.
type Router struct {
	cfg  Config
	log  *slog.Logger
	open func(dsn string) (*sql.DB, error)

	mu       sync.RWMutex
	primary  *endpoint
	replicas []*endpoint
	pools    map[string]*endpoint // every open endpoint by host:port
	closed   bool

	rr       atomic.Uint64
	degraded atomic.Bool   // the last check found reads degraded (for logging transitions)
	checkC   chan struct{} // asks the loop for a check now
	stop     chan struct{}
	done     chan struct{}

	m routerMetrics
}

// endpoint is one server's pool and its last measured health.
type endpoint struct {
	addr  string
	store *Store
	// healthy: for a replica, replicating with lag <= MaxLag; for the primary, answering.
	healthy atomic.Bool
	checked atomic.Bool // at least one check finished
	lag     atomic.Int64
	lastErr atomic.Pointer[string]
	// For a replica, what degraded reads choose by (see Router): reachable means it answered its
	// last check with a replica status row; lastLag is the last lag it reported that was not NULL
	// (seconds, -1 never); applied is how far it applied the primary's binary log.
	reachable  atomic.Bool
	sqlRunning atomic.Bool
	lastLag    atomic.Int64
	applied    atomic.Pointer[binlogPos]
	showCmd    atomic.Pointer[string] // the replica status statement this server understands
}

// EndpointStatus is the last measured state of one endpoint, for /readyz and tests.
type EndpointStatus struct {
	Addr    string
	Role    string // "primary" or "replica"
	Checked bool   // at least one health check finished
	Healthy bool
	Lag     time.Duration // replicas only; -1 when unknown (Seconds_Behind_Master NULL)
	Err     string        // why it is unhealthy
	// Reachable (replicas only): the replica answered its last check, even if unhealthy.
	Reachable bool
	// ReadFallback (replicas only): the primary is unreachable and no replica is healthy, so this
	// replica takes the reads as a degraded last resort (see Router).
	ReadFallback bool
}

type routerMetrics struct {
	reads    *prometheus.CounterVec
	healthy  *prometheus.GaugeVec
	lag      *prometheus.GaugeVec
	degraded prometheus.Gauge
}

// NewRouter returns a router with no endpoints; give it some with SetEndpoints. Its metrics
// (db_reads_total by target, db_endpoint_healthy and db_replica_lag_seconds by addr,
// db_read_degraded) go on reg when it is not nil.
func NewRouter(cfg Config, log *slog.Logger, reg prometheus.Registerer) *Router {
	r := &Router{
		cfg:    cfg.withDefaults(),
		log:    log,
		open:   func(dsn string) (*sql.DB, error) { return sql.Open("mysql", dsn) },
		pools:  map[string]*endpoint{},
		checkC: make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		m: routerMetrics{
			reads: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "db_reads_total", Help: "Reader() choices by target (replica, primary, or degraded: an unhealthy but reachable replica while the primary is unreachable).",
			}, []string{"target"}),
			healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "db_endpoint_healthy", Help: "1 when the endpoint passed its last health check.",
			}, []string{"addr", "role"}),
			lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "db_replica_lag_seconds", Help: "Seconds_Behind_Master of each replica (-1: NULL).",
			}, []string{"addr"}),
			degraded: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "db_read_degraded",
				Help: "1 while reads go to a reachable but unhealthy replica because the primary is unreachable and no replica is healthy.",
			}),
		},
	}
	if reg != nil {
		reg.MustRegister(r.m.reads, r.m.healthy, r.m.lag, r.m.degraded)
	}
	go r.loop()
	return r
}

// SetEndpoints applies the R/db node: it opens pools for new endpoints, closes pools of endpoints
// no longer listed, and triggers an immediate health check. New replicas take no reads until
// their first check passes.
func (r *Router) SetEndpoints(e discovery.DBEndpoints) {
	toClose, changed, ok := r.swapEndpoints(e)
	if !ok {
		return // closed
	}
	for _, ep := range toClose {
		r.m.healthy.DeletePartialMatch(prometheus.Labels{"addr": ep.addr})
		r.m.lag.DeleteLabelValues(ep.addr)
		ep.store.db.Close()
	}
	if changed {
		r.log.Info("db endpoints", "primary", e.Primary, "replicas", e.Replicas)
	}
	select {
	case r.checkC <- struct{}{}:
	default:
	}
}

// swapEndpoints installs e's primary and replicas, reusing open pools, and returns the pools no
// longer listed, for the caller to close outside the lock; ok is false once the router is closed.
func (r *Router) swapEndpoints(e discovery.DBEndpoints) (toClose []*endpoint, changed, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false, false
	}
	want := map[string]bool{}
	get := func(addr string) *endpoint {
		want[addr] = true
		if ep := r.pools[addr]; ep != nil {
			return ep
		}
		ep := r.newEndpoint(addr)
		if ep != nil {
			r.pools[addr] = ep
		}
		return ep
	}
	var primary *endpoint
	if e.Primary != "" {
		primary = get(e.Primary)
	}
	var replicas []*endpoint
	for _, a := range e.Replicas {
		if a == "" || want[a] {
			continue // the primary listed as a replica too, or a duplicate
		}
		if ep := get(a); ep != nil {
			replicas = append(replicas, ep)
		}
	}
	for addr, ep := range r.pools {
		if !want[addr] {
			delete(r.pools, addr)
			toClose = append(toClose, ep)
		}
	}
	changed = r.primary != primary || !slices.Equal(r.replicas, replicas)
	r.primary, r.replicas = primary, replicas
	return toClose, changed, true
}

func (r *Router) newEndpoint(addr string) *endpoint {
	db, err := r.open(DSN(r.cfg, addr))
	if err != nil { // only a malformed DSN fails here
		r.log.Error("db open failed", "addr", addr, "err", err)
		return nil
	}
	db.SetMaxOpenConns(r.cfg.MaxOpenConns)
	db.SetMaxIdleConns(r.cfg.MaxOpenConns)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	ep := &endpoint{addr: addr, store: &Store{db: db, addr: addr}}
	ep.lag.Store(-1)
	ep.lastLag.Store(-1)
	return ep
}

// Primary returns the store for writes, or ErrNoDatabase.
func (r *Router) Primary() (*Store, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.primary == nil {
		return nil, ErrNoDatabase
	}
	return r.primary.store, nil
}

// Reader returns a healthy replica's store, round robin, or else the primary's — unless the
// primary failed its last health check, when the best reachable replica's store is returned
// instead (degraded reads, see Router).
func (r *Router) Reader() (*Store, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := len(r.replicas); n > 0 {
		start := r.rr.Add(1)
		for i := range n {
			ep := r.replicas[(start+uint64(i))%uint64(n)]
			if ep.healthy.Load() {
				r.m.reads.WithLabelValues("replica").Inc()
				return ep.store, nil
			}
		}
	}
	if ep := r.fallbackLocked(); ep != nil {
		r.m.reads.WithLabelValues("degraded").Inc()
		return ep.store, nil
	}
	if r.primary == nil {
		return nil, ErrNoDatabase
	}
	r.m.reads.WithLabelValues("primary").Inc()
	return r.primary.store, nil
}

// ReadDegraded reports whether Reader now returns an unhealthy replica because the primary is
// unreachable (see Router).
func (r *Router) ReadDegraded() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.fallbackLocked() != nil
}

// fallbackLocked returns the replica for degraded reads, or nil when reads are not degraded:
// the primary is known and not known to be down, a replica is healthy, or none is reachable.
// It reads only in-memory state. The caller holds r.mu.
func (r *Router) fallbackLocked() *endpoint {
	if r.primary != nil && (r.primary.healthy.Load() || !r.primary.checked.Load()) {
		return nil
	}
	var best *endpoint
	for _, ep := range r.replicas {
		if ep.healthy.Load() {
			return nil
		}
		if ep.reachable.Load() && (best == nil || ep.betterFallback(best)) {
			best = ep
		}
	}
	return best
}

// betterFallback reports whether ep is a better degraded-read replica than o: it applied further
// into the primary's binary log, or as far (or incomparably) and its SQL thread runs while o's
// does not, or else it reported a smaller lag when it last could.
func (ep *endpoint) betterFallback(o *endpoint) bool {
	a, b := ep.appliedPos(), o.appliedPos()
	if a.after(b) {
		return true
	}
	if b.after(a) {
		return false
	}
	if x, y := ep.sqlRunning.Load(), o.sqlRunning.Load(); x != y {
		return x
	}
	x, y := ep.lastLag.Load(), o.lastLag.Load()
	return x >= 0 && (y < 0 || x < y)
}

func (ep *endpoint) appliedPos() binlogPos {
	if p := ep.applied.Load(); p != nil {
		return *p
	}
	return binlogPos{}
}

// Status returns the last measured state of the primary (first) and each replica.
func (r *Router) Status() []EndpointStatus {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []EndpointStatus
	if r.primary != nil {
		out = append(out, r.primary.status("primary"))
	}
	fallback := r.fallbackLocked()
	for _, ep := range r.replicas {
		s := ep.status("replica")
		s.Reachable = ep.reachable.Load()
		s.ReadFallback = ep == fallback
		out = append(out, s)
	}
	return out
}

func (ep *endpoint) status(role string) EndpointStatus {
	s := EndpointStatus{Addr: ep.addr, Role: role, Checked: ep.checked.Load(), Healthy: ep.healthy.Load(), Lag: -1}
	if role == "replica" && ep.lag.Load() >= 0 {
		s.Lag = time.Duration(ep.lag.Load()) * time.Second
	}
	if e := ep.lastErr.Load(); e != nil && !s.Healthy {
		s.Err = *e
	}
	return s
}

// Close stops the health loop and closes every pool.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	pools := r.pools
	r.pools, r.primary, r.replicas = map[string]*endpoint{}, nil, nil
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	var errs []error
	for _, ep := range pools {
		errs = append(errs, ep.store.db.Close())
	}
	return errors.Join(errs...)
}

func (r *Router) loop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.checkC:
		}
		r.checkAll()
	}
}

// checkAll checks every endpoint concurrently, each bounded by the check interval (at least 1 s),
// so one hung server delays nobody else's verdict.
func (r *Router) checkAll() {
	r.mu.RLock()
	primary, replicas := r.primary, slices.Clone(r.replicas)
	r.mu.RUnlock()
	timeout := max(r.cfg.CheckInterval, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	if primary != nil {
		wg.Go(func() { r.checkPrimary(ctx, primary) })
	}
	for _, ep := range replicas {
		wg.Go(func() { r.checkReplica(ctx, ep) })
	}
	wg.Wait()
	r.noteDegraded()
}

// noteDegraded updates db_read_degraded and logs when degraded reads start or end.
func (r *Router) noteDegraded() {
	r.mu.RLock()
	ep := r.fallbackLocked()
	r.mu.RUnlock()
	now := ep != nil
	if now {
		r.m.degraded.Set(1)
	} else {
		r.m.degraded.Set(0)
	}
	switch was := r.degraded.Swap(now); {
	case now && !was:
		r.log.Warn("db reads degraded", "replica", ep.addr,
			"reason", "primary unreachable and no replica healthy; reading a replica that may miss the last writes before the primary failed")
	case !now && was:
		r.log.Info("db reads no longer degraded")
	}
}

func (r *Router) checkPrimary(ctx context.Context, ep *endpoint) {
	err := ep.store.db.PingContext(ctx)
	r.record(ep, "primary", err == nil, err)
}

func (r *Router) checkReplica(ctx context.Context, ep *endpoint) {
	st, err := ep.replicaStatus(ctx)
	ep.reachable.Store(err == nil && st.configured)
	ep.sqlRunning.Store(err == nil && st.sqlRunning)
	if err == nil && st.applied.file != "" {
		ep.applied.Store(&st.applied)
	}
	if err == nil && st.lagKnown {
		ep.lastLag.Store(int64(st.lag / time.Second))
	}
	switch {
	case err != nil:
		ep.lag.Store(-1)
		r.record(ep, "replica", false, err)
	case !st.configured:
		ep.lag.Store(-1)
		r.record(ep, "replica", false, errors.New("not a replica (no replica status)"))
	case !st.lagKnown:
		ep.lag.Store(-1)
		r.record(ep, "replica", false, errors.New("not replicating (Seconds_Behind_Master is NULL)"))
	case st.lag > r.cfg.MaxLag:
		ep.lag.Store(int64(st.lag / time.Second))
		r.record(ep, "replica", false, fmt.Errorf("lag %s exceeds %s", st.lag, r.cfg.MaxLag))
	default:
		ep.lag.Store(int64(st.lag / time.Second))
		r.record(ep, "replica", true, nil)
	}
	r.m.lag.WithLabelValues(ep.addr).Set(float64(ep.lag.Load()))
}

func (r *Router) record(ep *endpoint, role string, healthy bool, err error) {
	was := ep.healthy.Swap(healthy)
	first := !ep.checked.Swap(true)
	if err != nil {
		s := err.Error()
		ep.lastErr.Store(&s)
	}
	v := 0.0
	if healthy {
		v = 1
	}
	r.m.healthy.WithLabelValues(ep.addr, role).Set(v)
	switch {
	case healthy && (!was || first):
		r.log.Info("db endpoint healthy", "addr", ep.addr, "role", role)
	case !healthy && (was || first):
		r.log.Warn("db endpoint unhealthy", "addr", ep.addr, "role", role, "err", err)
	}
}
