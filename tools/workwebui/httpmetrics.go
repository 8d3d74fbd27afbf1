package main

import (
	"net/http"
	"time"

	"github.com/the-red/zkpost/internal/metrics"
)

// observe serves r through next and records it under route in m: gocraft/work's UI is a net/http
// handler, so workwebui times requests itself rather than through metrics.HTTP.Route.
func observe(m *metrics.HTTP, route string, w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	next(rec, r)
	m.Observe(route, rec.status, time.Since(start))
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Flush passes flushes through to the reverse proxy's writer (streamed UI responses).
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
