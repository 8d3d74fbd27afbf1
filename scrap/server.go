package scrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/metrics"
)

// Server is scrapd's HTTP API: /api/v1/scrap, /healthz, /readyz and /metrics.
type Server struct {
	scrap    scrapFunc
	wait     time.Duration // how long a request may wait for its scrap
	log      *slog.Logger
	ln       net.Listener
	srv      *fasthttp.Server
	draining atomic.Bool
}

// ServerConfig holds the listener settings.
type ServerConfig struct {
	Listen string        // host:port to bind
	Wait   time.Duration // per-request wait for a scrap; the service deadline plus a margin
}

// NewServer binds cfg.Listen and returns a server for svc; reg gets the HTTP metrics and serves
// /metrics.
func NewServer(cfg ServerConfig, svc *Service, log *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	return newServer(cfg, svc.Scrap, log, reg)
}

// scrapFunc is what the server needs of a Service; tests give it others.
type scrapFunc func(ctx context.Context, rawURL string) (json.RawMessage, error)

func newServer(cfg ServerConfig, scrap scrapFunc, log *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 6 * time.Second
	}
	s := &Server{scrap: scrap, wait: cfg.Wait, log: log, ln: ln}
	s.srv = &fasthttp.Server{
		Handler:               s.routes(metrics.NewHTTP(reg), reg),
		Name:                  "scrapd",
		ErrorHandler:          httpapi.TransportError,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          cfg.Wait + 5*time.Second,
		IdleTimeout:           60 * time.Second,
		MaxRequestBodySize:    64 << 10,
		NoDefaultServerHeader: true,
	}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then stops accepting and drains in-flight requests for up to drain.
// The caller deregisters from ZooKeeper before cancelling ctx.
func (s *Server) Run(ctx context.Context, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(httpapi.BareLFListener(s.ln)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := s.srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

func (s *Server) routes(m *metrics.HTTP, reg *prometheus.Registry) fasthttp.RequestHandler {
	api := m.Route("scrap", s.handleScrap)
	health := m.Route("healthz", s.handleHealth)
	ready := m.Route("readyz", s.handleReady)
	metricsH := metrics.Handler(reg)
	notFound := m.Route("other", func(ctx *fasthttp.RequestCtx) { httpapi.WriteError(ctx, httpapi.ErrNotFound) })
	return httpapi.ReadOnly(func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/api/v1/scrap":
			api(ctx)
		case "/healthz":
			health(ctx)
		case "/readyz":
			ready(ctx)
		case "/metrics":
			metricsH(ctx)
		default:
			notFound(ctx)
		}
	})
}

// handleScrap serves GET /api/v1/scrap?url=<percent-encoded URL>.
func (s *Server) handleScrap(ctx *fasthttp.RequestCtx) {
	param, err := httpapi.QueryParam(ctx.QueryArgs(), "url")
	var bad *httpapi.Error
	if errors.As(err, &bad) {
		httpapi.WriteError(ctx, ErrInvalidURL.WithMessage(bad.Message))
		return
	}
	if param == nil {
		httpapi.WriteError(ctx, ErrInvalidURL.WithMessage("url is required"))
		return
	}
	raw := string(param)
	wctx, cancel := context.WithTimeout(context.Background(), s.wait)
	defer cancel()
	preview, err := s.scrap(wctx, raw)
	if err != nil {
		var api *httpapi.Error
		if !errors.As(err, &api) {
			s.log.Error("scrap internal error", "url", raw, "err", err)
		}
		httpapi.WriteError(ctx, classify(err))
		return
	}
	body := make([]byte, 0, len(preview)+20)
	body = append(append(append(body, `{"code":0,"scrap":`...), preview...), '}')
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(body)
}

func (s *Server) handleHealth(ctx *fasthttp.RequestCtx) {
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

// handleReady answers 200 while serving. scrapd needs nothing but the network to do its job, so
// only draining makes it unready (ZooKeeper trouble does not: callers that know it keep using it).
func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		httpapi.WriteJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"status": "unready", "reasons": []string{"shutting down"}})
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "ready", "reasons": []string{}})
}
