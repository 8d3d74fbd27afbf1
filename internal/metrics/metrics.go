// Package metrics instruments fasthttp handlers for Prometheus and serves /metrics.
//
// Each daemon owns a *prometheus.Registry (no global registry: tests build as many servers as they
// like in one process) and wraps every route with HTTP.Route, which counts requests and observes
// latency by route and status, and counts API errors by their envelope name.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/the-red/zkpost/internal/httpapi"
)

// NewRegistry returns a registry with the Go runtime and process collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// HTTP holds the request metrics of one HTTP server.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

// NewHTTP registers the HTTP request metrics on reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "HTTP request latency by route and status.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_errors_total", Help: "API errors by route and error name.",
		}, []string{"route", "error"}),
	}
	reg.MustRegister(m.requests, m.duration, m.errors)
	return m
}

// Route wraps next so its requests are counted and timed under the given route name. Route names
// are fixed strings ("guid", "posts_list"), never raw paths, to bound label cardinality.
func (m *HTTP) Route(route string, next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		next(ctx)
		m.Observe(route, ctx.Response.StatusCode(), time.Since(start))
		if name := httpapi.ErrorName(ctx); name != "" {
			m.errors.WithLabelValues(route, name).Inc()
		}
	}
}

// Observe records one request of route that answered status after d; Route calls it for fasthttp
// handlers, and a net/http server calls it directly.
func (m *HTTP) Observe(route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.duration.WithLabelValues(route, code).Observe(d.Seconds())
	m.requests.WithLabelValues(route, code).Inc()
}

// Handler serves the registry in the Prometheus text format.
func Handler(g prometheus.Gatherer) fasthttp.RequestHandler {
	return fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
}
