package postdb

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
// MaxLag, round robin, falling back to the primary. Endpoints come from SetEndpoints; health
// comes from a background loop, so Primary and Reader never wait on the network.
type Router struct {
	cfg  Config
	log  *slog.Logger
	open func(dsn string) (*sql.DB, error)

	mu       sync.RWMutex
	primary  *endpoint
	replicas []*endpoint
	pools    map[string]*endpoint // every open endpoint by host:port
	closed   bool

	rr     atomic.Uint64
	checkC chan struct{} // asks the loop for a check now
	stop   chan struct{}
	done   chan struct{}

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
	showCmd atomic.Pointer[string] // the replica status statement this server understands
}

// EndpointStatus is the last measured state of one endpoint, for /readyz and tests.
type EndpointStatus struct {
	Addr    string
	Role    string // "primary" or "replica"
	Checked bool   // at least one health check finished
	Healthy bool
	Lag     time.Duration // replicas only; -1 when unknown (Seconds_Behind_Master NULL)
	Err     string        // why it is unhealthy
}

type routerMetrics struct {
	reads   *prometheus.CounterVec
	healthy *prometheus.GaugeVec
	lag     *prometheus.GaugeVec
}

// NewRouter returns a router with no endpoints; give it some with SetEndpoints. Its metrics
// (db_reads_total by target, db_endpoint_healthy and db_replica_lag_seconds by addr) go on reg
// when it is not nil.
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
				Name: "db_reads_total", Help: "Reader() choices by target (replica or primary).",
			}, []string{"target"}),
			healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "db_endpoint_healthy", Help: "1 when the endpoint passed its last health check.",
			}, []string{"addr", "role"}),
			lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "db_replica_lag_seconds", Help: "Seconds_Behind_Master of each replica (-1: NULL).",
			}, []string{"addr"}),
		},
	}
	if reg != nil {
		reg.MustRegister(r.m.reads, r.m.healthy, r.m.lag)
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

// Reader returns a healthy replica's store, round robin, or else the primary's.
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
	if r.primary == nil {
		return nil, ErrNoDatabase
	}
	r.m.reads.WithLabelValues("primary").Inc()
	return r.primary.store, nil
}

// Status returns the last measured state of the primary (first) and each replica.
func (r *Router) Status() []EndpointStatus {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []EndpointStatus
	if r.primary != nil {
		out = append(out, r.primary.status("primary"))
	}
	for _, ep := range r.replicas {
		out = append(out, ep.status("replica"))
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
}

func (r *Router) checkPrimary(ctx context.Context, ep *endpoint) {
	err := ep.store.db.PingContext(ctx)
	r.record(ep, "primary", err == nil, err)
}

func (r *Router) checkReplica(ctx context.Context, ep *endpoint) {
	lag, known, err := ep.replicaLag(ctx)
	switch {
	case err != nil:
		ep.lag.Store(-1)
		r.record(ep, "replica", false, err)
	case !known:
		ep.lag.Store(-1)
		r.record(ep, "replica", false, errors.New("not replicating (Seconds_Behind_Master is NULL)"))
	case lag > r.cfg.MaxLag:
		ep.lag.Store(int64(lag / time.Second))
		r.record(ep, "replica", false, fmt.Errorf("lag %s exceeds %s", lag, r.cfg.MaxLag))
	default:
		ep.lag.Store(int64(lag / time.Second))
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
