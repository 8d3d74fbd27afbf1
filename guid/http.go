package guid

import (
	"bytes"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/metrics"
)

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

var (
	prefixGUID   = []byte("/api/v1/guid/")
	suffixDecode = []byte("/decode")
	contentJSON  = "application/json; charset=utf-8"
	bodyHealthy  = []byte(`{"status":"ok"}`)
	bufPool      = sync.Pool{New: func() any { b := make([]byte, 0, 64*MaxBatch); return &b }}
	idsPool      = sync.Pool{New: func() any { b := make([]uint64, 0, MaxBatch); return &b }}
	methodGET    = []byte(fasthttp.MethodGet)
	methodHEAD   = []byte(fasthttp.MethodHead)
)

// Handler returns guidd's HTTP routes:
//
//	GET /api/v1/guid                  one ID: {"guid": n, "guid_str": "n"}
//	GET /api/v1/guid?count=N          N (1–4096) IDs, strictly increasing: {"guids": ["n", ...]}
//	GET /api/v1/guid/<id>/decode      the ID's fields
//	GET /healthz, /readyz, /metrics
func (s *Server) Handler() fasthttp.RequestHandler {
	return newRouter(s.m.http, s)
}

type router struct {
	guid, decode, healthz, readyz, metrics, notFound fasthttp.RequestHandler
}

func newRouter(m *metrics.HTTP, s *Server) fasthttp.RequestHandler {
	r := router{
		guid:     m.Route("guid", s.handleGUID),
		decode:   m.Route("guid_decode", handleDecode),
		healthz:  m.Route("healthz", handleHealthz),
		readyz:   m.Route("readyz", s.handleReadyz),
		metrics:  m.Route("metrics", metrics.Handler(s.registry)),
		notFound: m.Route("not_found", func(ctx *fasthttp.RequestCtx) { httpapi.WriteError(ctx, httpapi.ErrNotFound) }),
	}
	return r.serve
}

func (r router) serve(ctx *fasthttp.RequestCtx) {
	if m := ctx.Method(); !bytes.Equal(m, methodGET) && !bytes.Equal(m, methodHEAD) {
		// Every route of guidd is read-only; RFC 9110 §15.5.6 requires a 405 to list what is allowed.
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		httpapi.WriteError(ctx, httpapi.ErrMethodNotAllowed)
		return
	}
	p := ctx.Path()
	switch string(p) {
	case "/api/v1/guid":
		r.guid(ctx)
	case "/healthz":
		r.healthz(ctx)
	case "/readyz":
		r.readyz(ctx)
	case "/metrics":
		r.metrics(ctx)
	default:
		if bytes.HasPrefix(p, prefixGUID) && bytes.HasSuffix(p, suffixDecode) && len(p) > len(prefixGUID)+len(suffixDecode) {
			ctx.SetUserValue("id", string(p[len(prefixGUID):len(p)-len(suffixDecode)]))
			r.decode(ctx)
			return
		}
		r.notFound(ctx)
	}
}

func (s *Server) handleGUID(ctx *fasthttp.RequestCtx) {
	count, err := httpapi.QueryParam(ctx.QueryArgs(), "count")
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	batch := count != nil
	n := 1
	if batch {
		var ok bool
		if n, ok = ParseCount(count); !ok {
			httpapi.WriteError(ctx, APIErrBadCount)
			return
		}
	}
	gen, apiErr := s.issuer()
	if apiErr != nil {
		httpapi.WriteError(ctx, apiErr)
		return
	}
	idsp := idsPool.Get().(*[]uint64)
	defer idsPool.Put(idsp)
	ids, err := gen.NextN((*idsp)[:0], n)
	*idsp = ids[:0]
	if err != nil {
		// IDs reserved before the error are dropped: never handing them out is always safe.
		httpapi.WriteError(ctx, apiError(err))
		return
	}
	s.m.issued.Add(float64(len(ids)))
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	b := (*bufp)[:0]
	if batch {
		b = appendBatch(b, ids)
	} else {
		b = appendSingle(b, ids[0])
	}
	*bufp = b
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentJSON)
	ctx.SetBody(b)
}

func appendSingle(b []byte, id uint64) []byte {
	b = append(b, `{"guid":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"guid_str":"`...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, `"}`...)
}

func appendBatch(b []byte, ids []uint64) []byte {
	b = append(b, batchStart...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendUint(b, id, 10)
		b = append(b, '"')
	}
	return append(b, batchEnd...)
}

// ParseCount parses the count query parameter: ASCII digits only, value 1–MaxBatch.
func ParseCount(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 6 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1 && n <= MaxBatch
}

// DecodeResponse is the /decode document. timestamp_ms is in Unix milliseconds.
type DecodeResponse struct {
	GUIDStr     string `json:"guid_str"`
	TimestampMs int64  `json:"timestamp_ms"`
	Time        string `json:"time"`
	Datacenter  int    `json:"datacenter"`
	Worker      int    `json:"worker"`
	Sequence    int    `json:"sequence"`
}

func handleDecode(ctx *fasthttp.RequestCtx) {
	raw, _ := ctx.UserValue("id").(string)
	id, err := ParseID(raw)
	if err != nil {
		httpapi.WriteError(ctx, APIErrBadID)
		return
	}
	d := Decode(id)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, DecodeResponse{
		GUIDStr:     strconv.FormatUint(id, 10),
		TimestampMs: d.UnixMs(),
		Time:        d.Time().Format(timeFormat),
		Datacenter:  d.Datacenter,
		Worker:      d.Worker,
		Sequence:    d.Sequence,
	})
}

func handleHealthz(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentJSON)
	ctx.SetBody(bodyHealthy)
}

func (s *Server) handleReadyz(ctx *fasthttp.RequestCtx) {
	r := s.Ready()
	status := fasthttp.StatusOK
	if r.Status != "ready" {
		status = fasthttp.StatusServiceUnavailable
	}
	httpapi.WriteJSON(ctx, status, r)
}
