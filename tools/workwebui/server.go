package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/gocraft/work/webui"
	"github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/the-red/zkpost/internal/metrics"
)

// server fronts gocraft/work's UI, which it runs on an internal loopback port, and adds the
// health endpoints every daemon serves. The UI's Redis pool dials whatever primary ZooKeeper
// names at the time, and drops idle connections to a former primary.
type server struct {
	log     *slog.Logger
	primary func() string
	ln      net.Listener
	pool    *redis.Pool
	ui      *webui.Server
	uiAddr  string
	proxy   *httputil.ReverseProxy
	metrics http.Handler
	ready   prometheus.Gauge
	http    *metrics.HTTP
	auth    basicAuth
}

// addrConn remembers which server a pooled connection goes to.
type addrConn struct {
	redis.Conn
	addr string
}

var errMoved = errors.New("queue primary moved")

func newPool(primary func() string) *redis.Pool {
	return &redis.Pool{
		MaxIdle: 4, MaxActive: 32, IdleTimeout: time.Minute,
		Dial: func() (redis.Conn, error) {
			addr := primary()
			if addr == "" {
				return nil, errors.New("queue primary unknown (no R/queue/sidekiq in ZooKeeper yet)")
			}
			c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
			if err != nil {
				return nil, fmt.Errorf("dialing queue primary %s: %w", addr, err)
			}
			return &addrConn{Conn: c, addr: addr}, nil
		},
		TestOnBorrow: func(c redis.Conn, _ time.Time) error {
			if ac, ok := c.(*addrConn); ok && ac.addr != primary() {
				return errMoved
			}
			return nil
		},
	}
}

// newServer binds cfg.Listen and prepares the UI on a free internal port; reg gets its metrics.
func newServer(cfg config, primary func() string, log *slog.Logger, reg *prometheus.Registry) (*server, error) {
	auth, err := newBasicAuth(cfg.User, cfg.Password)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	uiAddr, err := freeLoopbackAddr()
	if err != nil {
		ln.Close()
		return nil, err
	}
	ready := prometheus.NewGauge(prometheus.GaugeOpts{Name: "workwebui_queue_reachable",
		Help: "1 when the queue primary answered the last readiness probe"})
	reg.MustRegister(ready)
	pool := newPool(primary)
	s := &server{
		log: log, primary: primary, ln: ln, pool: pool, uiAddr: uiAddr, auth: auth,
		ui:      webui.NewServer(cfg.Namespace, pool, uiAddr),
		proxy:   httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: uiAddr}),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		ready:   ready,
		http:    metrics.NewHTTP(reg),
	}
	s.proxy.ModifyResponse = s.envelopeUIErrors
	return s, nil
}

// freeLoopbackAddr returns a 127.0.0.1 address that was free a moment ago: webui.NewServer
// takes an address, not a listener.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a port for the UI: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Addr returns the address the server listens on.
func (s *server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then drains.
func (s *server) Run(ctx context.Context) error {
	s.ui.Start()
	if err := waitDialable(ctx, s.uiAddr, 10*time.Second); err != nil {
		return fmt.Errorf("starting the UI on %s: %w", s.uiAddr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(envelopeListener{s.ln}) }()
	s.log.Info("serving", "addr", s.Addr(), "ui", s.uiAddr)
	select {
	case err := <-errc:
		s.ui.Stop()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	s.ui.Stop()
	s.pool.Close()
	return err
}

// waitDialable polls addr until it accepts a connection: webui.Server.Start listens in the
// background and reports no error.
func waitDialable(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last dial: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := "ui"
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		route = r.URL.Path[1:]
	}
	observe(s.http, route, w, r, s.serve)
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed)
			return
		}
	default:
		if !s.auth.allows(r) {
			challenge(w)
			return
		}
	}
	switch r.URL.Path {
	case "/healthz":
		writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
	case "/readyz":
		if err := s.probe(); err != nil {
			s.ready.Set(0)
			writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "reasons": []string{err.Error()}})
			return
		}
		s.ready.Set(1)
		writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
	case "/metrics":
		s.metrics.ServeHTTP(w, r)
	default:
		s.proxy.ServeHTTP(w, r)
	}
}

// probe PINGs the queue primary through the UI's pool.
func (s *server) probe() error {
	c := s.pool.Get()
	defer c.Close()
	if _, err := c.Do("PING"); err != nil {
		return fmt.Errorf("queue primary %q: %w", s.primary(), err)
	}
	return nil
}

// writeStatus writes doc as JSON. The reasons carry error text naming addresses read from
// ZooKeeper, which Go quoting (%q) would not always escape as valid JSON.
func writeStatus(w http.ResponseWriter, status int, doc map[string]any) {
	b, err := json.Marshal(doc)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
