package writeback

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/metrics"
)

// notReady lists why the worker cannot do its job now; empty means ready.
func (s *Service) notReady() []string {
	var out []string
	st := s.router.Status()
	switch {
	case len(st) == 0 || st[0].Role != "primary":
		out = append(out, "database: no endpoint known (R/db not read)")
	case !st[0].Healthy:
		out = append(out, fmt.Sprintf("database: primary %s unreachable: %s", st[0].Addr, st[0].Err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.migrateErr != nil {
		out = append(out, "database: schema not applied: "+s.migrateErr.Error())
	}
	switch {
	case !s.workerOn:
		out = append(out, "queue: worker not started (waiting for the schema)")
	case s.queueErr != nil:
		out = append(out, "queue: "+s.queueErr.Error())
	}
	return out
}

func (s *Service) newHTTP() *fasthttp.Server {
	hm := metrics.NewHTTP(s.reg)
	healthz := hm.Route("healthz", func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	})
	readyz := hm.Route("readyz", s.handleReadyz)
	metricsH := metrics.Handler(s.reg)
	notFound := hm.Route("not_found", func(ctx *fasthttp.RequestCtx) { httpapi.WriteError(ctx, httpapi.ErrNotFound) })
	return &fasthttp.Server{
		Handler: httpapi.ReadOnly(func(ctx *fasthttp.RequestCtx) {
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
		}),
		Name:                  "writebackd",
		ErrorHandler:          httpapi.TransportError,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           time.Minute,
		NoDefaultServerHeader: true,
	}
}

// handleReadyz answers 200 while the worker can persist posts, else 503 with the reasons.
func (s *Service) handleReadyz(ctx *fasthttp.RequestCtx) {
	doc := map[string]any{"status": "ok"}
	if f := s.registered.Load(); f != nil {
		doc["registered"] = (*f)()
	}
	status := fasthttp.StatusOK
	if reasons := s.notReady(); len(reasons) > 0 {
		doc["status"], doc["reasons"] = "unavailable", reasons
		status = fasthttp.StatusServiceUnavailable
	}
	httpapi.WriteJSON(ctx, status, doc)
}
