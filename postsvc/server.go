package postsvc

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/metrics"
)

// Server is postsvcd's HTTP API over a Service.
type Server struct {
	svc     *Service
	cfg     Config
	rules   inputRules
	ready   []Check
	log     *slog.Logger
	ln      net.Listener
	http    *fasthttp.Server
	demo    *template.Template
	handler fasthttp.RequestHandler
	routes  map[string]fasthttp.RequestHandler
	streams *hub
}

// New validates cfg, opens the listener and builds the server; Run serves.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.IDs == nil || d.Previewer == nil || d.Queue == nil || d.Store == nil || d.Log == nil || d.Registry == nil {
		return nil, errors.New("postsvc: every dependency is required")
	}
	if cfg.WriteMode == WriteThrough && d.Primary == nil {
		return nil, errors.New("postsvc: --write-mode=through needs a database primary")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	m := newServiceMetrics(d.Registry)
	s := &Server{
		svc:   newService(cfg, d, m),
		cfg:   cfg,
		rules: inputRules{maxContents: cfg.MaxContents, maxBody: cfg.maxBodyBytes()},
		ready: d.Ready,
		log:   d.Log,
		ln:    ln,
		demo:  template.Must(template.New("demo").Parse(demoHTML)),
	}
	s.streams = newHub(s.svc.cache, cfg, d.Log, d.Registry)
	s.routes = s.buildRoutes(metrics.NewHTTP(d.Registry), metrics.Handler(d.Registry))
	s.http = &fasthttp.Server{
		Handler:            s.route,
		Name:               "postsvcd",
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        time.Minute,
		MaxRequestBodySize: s.rules.maxBody,
		// The reference's GET form carries the contents in the query string.
		ReadBufferSize: 3*(cfg.MaxContents+MaxURLBytes) + 8<<10,
		ErrorHandler:   httpapi.TransportError,
		Logger:         fasthttpLogger{d.Log},
	}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Cache returns the shard ring, for the daemon to feed from ZooKeeper.
func (s *Server) Cache() *Cache { return s.svc.cache }

// Run serves until ctx ends or the listener fails. It does not stop the server: call Shutdown
// after deregistering, so no new request is routed here while in-flight ones drain.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(httpapi.BareLFListener(s.ln)) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return fmt.Errorf("serving http: %w", err)
	}
}

// Shutdown stops accepting, waits for in-flight requests until ctx ends, and closes the cache
// clients.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.streams.closeStreams(ctx); err != nil {
		s.log.Warn("closing streams", "err", err)
	}
	err := s.http.ShutdownWithContext(ctx)
	s.streams.close()
	s.svc.closeRefreshes()
	s.svc.cache.Close()
	if err != nil {
		return fmt.Errorf("draining http: %w", err)
	}
	return nil
}

func (s *Server) buildRoutes(m *metrics.HTTP, metricsHandler fasthttp.RequestHandler) map[string]fasthttp.RequestHandler {
	return map[string]fasthttp.RequestHandler{
		"posts_create": m.Route("posts_create", s.handleCreate),
		"write_post":   m.Route("write_post", s.handleWritePost),
		"posts_list":   m.Route("posts_list", s.handleList),
		"post_get":     m.Route("post_get", s.handleGet),
		"posts_stream": m.Route("posts_stream", s.handleStream),
		"demo":         m.Route("demo", s.handleDemo),
		"healthz":      m.Route("healthz", s.handleHealthz),
		"readyz":       m.Route("readyz", s.handleReadyz),
		"metrics":      metricsHandler,
		"not_found":    m.Route("not_found", func(ctx *fasthttp.RequestCtx) { httpapi.WriteError(ctx, httpapi.ErrNotFound) }),
	}
}

// route dispatches by path and method. Path segments are ids, never free text, so a plain switch
// beats a router dependency.
func (s *Server) route(ctx *fasthttp.RequestCtx) {
	name, params, methods := match(string(ctx.Path()))
	if name == "" {
		s.routes["not_found"](ctx)
		return
	}
	if !strings.Contains(methods, string(ctx.Method())) {
		ctx.Response.Header.Set("Allow", strings.ReplaceAll(methods, " ", ", "))
		httpapi.WriteError(ctx, httpapi.ErrMethodNotAllowed)
		return
	}
	for i, p := range params {
		ctx.SetUserValue(paramKey(i), p)
	}
	s.routes[name](ctx)
}

// match maps a path to a route name, its id segments and the methods it allows.
func match(path string) (name string, params []string, methods string) {
	switch path {
	case "/api/v1/posts":
		return "posts_create", nil, "POST"
	case "/demo":
		return "demo", nil, "GET HEAD POST"
	case "/healthz", "/readyz", "/metrics":
		return path[1:], nil, "GET HEAD"
	}
	if rest, ok := strings.CutPrefix(path, "/api/v1/write_post/"); ok && rest != "" && !strings.Contains(rest, "/") {
		return "write_post", []string{rest}, "GET"
	}
	if rest, ok := strings.CutPrefix(path, "/api/v1/posts/"); ok {
		segs := strings.Split(rest, "/")
		switch {
		case len(segs) == 1 && segs[0] != "":
			return "posts_list", segs, "GET HEAD"
		case len(segs) == 2 && segs[0] != "" && segs[1] == "stream":
			return "posts_stream", segs[:1], "GET"
		case len(segs) == 2 && segs[0] != "" && segs[1] != "":
			return "post_get", segs, "GET HEAD"
		}
	}
	return "", nil, ""
}

type paramKey int

func param(ctx *fasthttp.RequestCtx, i int) string {
	v, _ := ctx.UserValue(paramKey(i)).(string)
	return v
}

func (s *Server) handleCreate(ctx *fasthttp.RequestCtx) {
	in, err := s.rules.parseCreateBody(ctx.PostBody())
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	s.write(ctx, in, fasthttp.StatusCreated)
}

// handleWritePost is the reference's GET form of a write. It answers 200, as the reference's
// clients expect of it; POST /api/v1/posts answers 201.
func (s *Server) handleWritePost(ctx *fasthttp.RequestCtx) {
	in, err := s.rules.writeArgs(param(ctx, 0), ctx.QueryArgs())
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	s.write(ctx, in, fasthttp.StatusOK)
}

func (s *Server) write(ctx *fasthttp.RequestCtx, in writeInput, status int) {
	work, cancel := requestContext(ctx)
	defer cancel()
	_, body, err := s.svc.Write(work, in)
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(body)
}

func (s *Server) handleList(ctx *fasthttp.RequestCtx) {
	q, err := listArgs(param(ctx, 0), ctx.QueryArgs())
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	body, err := s.svc.PageJSON(context.WithoutCancel(ctx), requestContext, q)
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(body)
}

func (s *Server) handleGet(ctx *fasthttp.RequestCtx) {
	uid, err := parseUserID(param(ctx, 0))
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	id, err := parsePostID(param(ctx, 1))
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	work, cancel := requestContext(ctx)
	defer cancel()
	p, err := s.svc.Post(work, uid, id)
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, p)
}

func (s *Server) handleHealthz(ctx *fasthttp.RequestCtx) {
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

// requestTimeout bounds all the work of one request; each step has its own shorter deadline.
const requestTimeout = 10 * time.Second

// requestContext detaches a request's work from the server: fasthttp cancels every RequestCtx the
// moment Shutdown starts, which would abort the very in-flight requests a drain is meant to let
// finish (a write could be enqueued and then lose its cache step).
func requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
}

// AddReady adds readiness conditions; call it before Run.
func (s *Server) AddReady(checks ...Check) { s.ready = append(s.ready, checks...) }
