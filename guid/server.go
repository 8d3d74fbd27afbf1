package guid

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
	"github.com/the-red/zkpost/internal/metrics"
)

// API errors of guidd, in the shared envelope. Each 503 names its precise cause, so a client (and
// an operator reading metrics) can tell a lost lease from a bad clock.
var (
	APIErrBadCount = httpapi.InvalidArgument(fmt.Sprintf("count must be an integer from 1 to %d", MaxBatch))
	APIErrBadID    = httpapi.InvalidArgument("id must be a decimal Snowflake id below 2^63")

	APIErrNoLease = &httpapi.Error{Status: fasthttp.StatusServiceUnavailable, Code: -503, Name: "no_lease",
		Message: "this server holds no confirmed worker-id lease; try another server"}
	APIErrClockBehind = &httpapi.Error{Status: fasthttp.StatusServiceUnavailable, Code: -503, Name: "clock_behind",
		Message: "the clock is behind the timestamp stored for this worker id"}
	APIErrClockBackwards = &httpapi.Error{Status: fasthttp.StatusServiceUnavailable, Code: -503, Name: "clock_backwards",
		Message: "the clock moved backwards; try another server"}
	APIErrClockNotPersisted = &httpapi.Error{Status: fasthttp.StatusServiceUnavailable, Code: -503, Name: "clock_not_persisted",
		Message: "the clock bound could not be stored in ZooKeeper; try another server"}
	APIErrClockRange = &httpapi.Error{Status: fasthttp.StatusServiceUnavailable, Code: -503, Name: "clock_out_of_range",
		Message: "the clock is outside the range of the id layout"}
)

// apiError is the one table from generator errors to API errors.
func apiError(err error) *httpapi.Error {
	switch {
	case errors.Is(err, ErrClockBackwards):
		return APIErrClockBackwards
	case errors.Is(err, ErrNotPersisted):
		return APIErrClockNotPersisted
	case errors.Is(err, ErrTimeRange):
		return APIErrClockRange
	}
	return httpapi.ErrUnavailable
}

// Deps are what a Server needs from its daemon.
type Deps struct {
	Conn     *discovery.Conn
	Layout   discovery.Layout
	Registry *prometheus.Registry
	Log      *slog.Logger
	Now      func() time.Time // default time.Now
}

// Server is a guidd: it leases a worker id, keeps the stored clock bound ahead, registers itself
// and serves IDs over HTTP.
type Server struct {
	cfg       Config
	conn      *discovery.Conn
	layout    discovery.Layout
	log       *slog.Logger
	now       func() time.Time
	ln        net.Listener
	srv       *fasthttp.Server
	advertise string
	m         *serverMetrics
	registry  *prometheus.Registry
	counters  Counters
	mono0     time.Time

	cur        atomic.Pointer[lease] // nil while no lease is held
	prevWorker int                   // lease loop only

	clockMu sync.Mutex
	clocks  map[int]*clockState

	regMu     sync.Mutex
	reg       *discovery.Registration
	regWorker int
	closing   bool // set by deregister: no registering any more
}

// New checks cfg and opens the listener; Run serves.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
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
	s := &Server{
		cfg: cfg, conn: deps.Conn, layout: deps.Layout, log: deps.Log, now: deps.Now,
		ln: ln, advertise: adv, registry: deps.Registry, mono0: time.Now(), prevWorker: -1, regWorker: -1,
		clocks: map[int]*clockState{},
	}
	s.m = newServerMetrics(deps.Registry, s)
	s.srv = &fasthttp.Server{
		Handler:               s.Handler(),
		Name:                  "guidd",
		ErrorHandler:          httpapi.TransportError,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		Logger:                fasthttpLogger{deps.Log},
	}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Advertised returns the host:port registered in ZooKeeper.
func (s *Server) Advertised() string { return s.advertise }

// Run serves until ctx ends, then shuts down in the order every daemon follows: deregister and
// release the lease (so clients stop coming and no ID is issued any more), stop accepting, drain
// in-flight requests with a deadline.
func (s *Server) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.srv.Serve(httpapi.BareLFListener(s.ln)) }()
	leaseCtx, stopLease := context.WithCancel(context.Background())
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		s.leaseLoop(leaseCtx)
	}()
	s.log.Info("serving", "addr", s.ln.Addr().String(), "advertise", s.advertise, "dc", s.cfg.Datacenter)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving HTTP: %w", err)
	}
	s.log.Info("shutting down")
	s.deregister()
	stopLease()
	<-leaseDone
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if e := s.srv.ShutdownWithContext(sctx); e != nil {
		s.log.Warn("draining timed out", "err", e)
	}
	s.log.Info("stopped")
	return err
}

// issuer returns the generator of the held lease if IDs may be issued now.
func (s *Server) issuer() (*Generator, *httpapi.Error) {
	l := s.cur.Load()
	if l == nil {
		return nil, APIErrNoLease
	}
	if !l.clockOK.Load() {
		if l.behindUntil.Load() != 0 {
			return nil, APIErrClockBehind
		}
		return nil, APIErrNoLease
	}
	if id, ok := s.conn.Session(); !ok || id != l.session {
		return nil, APIErrNoLease
	}
	if s.mono()-l.confirmed.Load() >= int64(s.cfg.SessionTimeout/2) {
		return nil, APIErrNoLease
	}
	return l.gen, nil
}

// mono returns nanoseconds on the monotonic clock, which runs on through SIGSTOP.
func (s *Server) mono() int64 { return int64(time.Since(s.mono0)) }

// register puts the serverset node in place with shard = worker, re-registering when the worker
// id changed.
func (s *Server) register(worker int) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if s.closing || (s.reg != nil && s.regWorker == worker) {
		return
	}
	if s.reg != nil {
		if err := s.reg.Close(); err != nil {
			s.log.Warn("deregistering failed", "err", err)
		}
	}
	data, err := discovery.NewServerSet(s.advertise, worker)
	if err != nil {
		s.log.Error("serverset", "err", err) // unreachable: advertise was validated in New
		return
	}
	s.reg = s.conn.Register(s.layout.Nodes("guid"), s.advertise, data)
	s.regWorker = worker
}

func (s *Server) deregister() {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.closing = true
	if s.reg == nil {
		return
	}
	if err := s.reg.Close(); err != nil {
		s.log.Warn("deregistering failed", "err", err)
	}
	s.reg = nil
	s.regWorker = -1
}

func (s *Server) registered() bool {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	return s.reg != nil && s.reg.Registered()
}

// Readiness is the /readyz document.
type Readiness struct {
	Status     string   `json:"status"` // "ready" or "unready"
	Reasons    []string `json:"reasons,omitempty"`
	Datacenter int      `json:"datacenter"`
	Worker     int      `json:"worker"` // -1 without a lease
}

// Ready reports whether the server can issue IDs and is registered, and why not.
func (s *Server) Ready() Readiness {
	r := Readiness{Datacenter: s.cfg.Datacenter, Worker: -1}
	if _, ok := s.conn.Session(); !ok {
		r.Reasons = append(r.Reasons, "no_zk_session")
	}
	if l := s.cur.Load(); l != nil {
		r.Worker = l.worker
		if until := l.behindUntil.Load(); until != 0 && !l.clockOK.Load() {
			r.Reasons = append(r.Reasons, "clock_behind_stored_until_"+time.UnixMilli(until).UTC().Format(timeFormat))
		}
	}
	if _, err := s.issuer(); err != nil && err != APIErrClockBehind {
		r.Reasons = append(r.Reasons, err.Name)
	}
	if !s.registered() {
		r.Reasons = append(r.Reasons, "not_registered")
	}
	r.Status = "ready"
	if len(r.Reasons) > 0 {
		r.Status = "unready"
	}
	return r
}

// serverMetrics are guidd's own metrics, besides the HTTP ones.
type serverMetrics struct {
	http          *metrics.HTTP
	issued        prometheus.Counter
	leaseFailures prometheus.Counter
	leaseChanges  prometheus.Counter
}

func newServerMetrics(reg *prometheus.Registry, s *Server) *serverMetrics {
	m := &serverMetrics{
		http:          metrics.NewHTTP(reg),
		issued:        prometheus.NewCounter(prometheus.CounterOpts{Name: "guid_ids_issued_total", Help: "IDs issued."}),
		leaseFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "guid_lease_failures_total", Help: "Failed attempts to lease a worker id."}),
		leaseChanges:  prometheus.NewCounter(prometheus.CounterOpts{Name: "guid_leases_acquired_total", Help: "Worker-id leases acquired (one per ZooKeeper session or reconnect)."}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, c *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(c.Load()) })
	}
	reg.MustRegister(m.issued, m.leaseFailures, m.leaseChanges,
		gauge("guid_lease_held", "1 while a confirmed worker-id lease allows issuing IDs.", func() float64 {
			if _, err := s.issuer(); err != nil {
				return 0
			}
			return 1
		}),
		gauge("guid_worker_id", "Leased worker id, -1 without a lease.", func() float64 {
			if l := s.cur.Load(); l != nil {
				return float64(l.worker)
			}
			return -1
		}),
		gauge("guid_datacenter_id", "Configured datacenter id.", func() float64 { return float64(s.cfg.Datacenter) }),
		counter("guid_clock_backwards_errors_total", "Requests refused because the clock moved back too far.", &s.counters.BackwardsErrors),
		counter("guid_clock_backwards_waits_total", "Small backwards clock steps waited out.", &s.counters.BackwardsWaits),
		counter("guid_sequence_overflow_waits_total", "Waits for the next millisecond after 4096 IDs in one.", &s.counters.OverflowWaits),
	)
	return m
}

// fasthttpLogger sends fasthttp's own messages to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("http server", "msg", fmt.Sprintf(format, args...))
}
