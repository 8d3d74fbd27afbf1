package postsvc

// GET /api/v1/posts/<uid>/stream: the author's new posts as server-sent events
// (docs/api.md#streaming-a-timeline). Each event is `id: <post id>` and `data: <the post's client
// JSON>`.
//
// Resuming: a client that sends Last-Event-ID (browsers do on reconnect) or ?last_event_id= gets
// first what the timeline holds that it may have missed. A post's id is taken when its write
// starts and the post is acknowledged up to requestTimeout later, so a post acknowledged after
// the one with id L can have an id below L: the replay starts requestTimeout (in id time) below
// L, and a client may see an id again. Clients deduplicate by id; the demo page does.
//
// The connection is hijacked from fasthttp: the stream owns its write deadlines (a stalled client
// costs one blocked write for at most streamWriteTimeout, then the stream ends and the client
// reconnects), notices a client that closed at once (a read returns), and ends on shutdown
// without holding the server's drain.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/guid/snowflake"
	"github.com/the-red/zkpost/internal/httpapi"
)

const (
	streamWriteTimeout = 10 * time.Second
	streamWindow       = requestTimeout // a write's longest time from its id to its acknowledgement
	streamReplayMax    = 10000          // ids one resync sends at most (the newest ones)
	streamSentMax      = 4096           // ids one stream remembers having sent
	streamRetryMillis  = 2000           // the reconnect delay suggested to clients
	// streamSendBuffer fixes a stream socket's kernel send buffer: left to autotuning it grows to
	// megabytes (tcp_wmem), memory a stalled client would hold per stream.
	streamSendBuffer = 64 << 10
)

// streamQuery is a validated stream request.
type streamQuery struct {
	UserID uint64
	Since  uint64 // the last post id the client has (Last-Event-ID); 0 = none
}

// parseStreamQuery reads the uid segment and the resume position: the Last-Event-ID header, else
// the last_event_id query parameter. Either is a post id (any id-shaped position will do).
func parseStreamQuery(uidText string, header, query []byte) (streamQuery, error) {
	uid, err := parseUserID(uidText)
	if err != nil {
		return streamQuery{}, err
	}
	q := streamQuery{UserID: uid}
	raw := header
	if len(raw) == 0 {
		raw = query
	}
	if len(raw) > 0 {
		v, ok := parsePositive(string(raw))
		if !ok {
			return streamQuery{}, httpapi.InvalidArgument("Last-Event-ID must be a post id (a positive integer)")
		}
		q.Since = v
	}
	return q, nil
}

// idAt is the smallest post id that can carry time t.
func idAt(t time.Time) uint64 {
	ms := t.Sub(snowflake.Epoch).Milliseconds()
	if ms <= 0 {
		return 1
	}
	return snowflake.Compose(ms, 0, 0, 0)
}

func (s *Server) handleStream(ctx *fasthttp.RequestCtx) {
	q, err := parseStreamQuery(param(ctx, 0), ctx.Request.Header.Peek("Last-Event-ID"), ctx.QueryArgs().Peek("last_event_id"))
	if err != nil {
		httpapi.WriteError(ctx, err)
		return
	}
	if !s.streams.acquire() {
		ctx.Response.Header.Set("Retry-After", "5")
		httpapi.WriteError(ctx, httpapi.ErrUnavailable.WithMessage("this server has no stream slot free; retry, or use another server"))
		return
	}
	s.streams.streams.Add(1)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer s.streams.streams.Done()
		defer s.streams.release()
		st := &stream{h: s.streams, svc: s.svc, conn: c, q: q, sent: map[uint64]struct{}{}}
		st.serve()
	})
}

// stream is one open event stream.
type stream struct {
	h    *hub
	svc  *Service
	conn net.Conn
	w    *bufio.Writer
	q    streamQuery
	sub  *subscriber
	// sent holds the ids sent (or known to the client) at or above floor; a resync sends the
	// timeline's ids from floor up that are not in it.
	sent  map[uint64]struct{}
	floor uint64
}

func (st *stream) serve() {
	st.h.conns.Store(st.conn, struct{}{})
	defer st.h.conns.Delete(st.conn)
	select {
	case <-st.h.closing:
		return
	default:
	}
	limitSendBuffer(st.conn)
	st.w = bufio.NewWriterSize(st.conn, 4<<10)
	gone := st.watchClient()
	if !st.start() {
		return
	}
	defer st.h.unsubscribe(st.sub)
	heartbeat := time.NewTicker(st.h.cfg.StreamHeartbeat)
	defer heartbeat.Stop()
	for {
		var err error
		select {
		case <-st.h.closing:
			st.h.log.Debug("stream closed by shutdown", "user_id", st.q.UserID)
			return
		case <-gone:
			st.h.log.Debug("stream closed by the client", "user_id", st.q.UserID)
			return
		case <-heartbeat.C:
			_, _ = st.w.WriteString(": heartbeat\n\n")
			err = st.flush()
		case <-st.sub.wake:
			err = st.drain()
		}
		if err != nil {
			st.h.log.Debug("stream ended", "user_id", st.q.UserID, "err", err)
			return
		}
	}
}

// start learns what the client already has, subscribes, writes the response head and asks for a
// first resync, which sends what the timeline holds beyond what the client has. Knowing comes
// first and subscribing second, so a post acknowledged in between is in the resync's read and
// one acknowledged later is published to the subscription; the head comes last, so a client that
// has it misses nothing acknowledged from then on.
func (st *stream) start() bool {
	if st.q.Since != 0 {
		st.floor = idAt(CreatedAt(st.q.Since).Add(-streamWindow))
		st.sent[st.q.Since] = struct{}{}
	} else {
		st.floor = idAt(time.Now().Add(-streamWindow))
		ids, err := st.timelineIDs(st.floor)
		if err != nil {
			st.h.log.Debug("stream start read failed", "user_id", st.q.UserID, "err", err)
		}
		for _, id := range ids {
			st.sent[id] = struct{}{}
		}
	}
	st.sub = st.h.subscribe(st.q.UserID)
	_, _ = st.w.WriteString("HTTP/1.1 200 OK\r\nServer: postsvcd\r\nContent-Type: text/event-stream; charset=utf-8\r\n" +
		"Cache-Control: no-cache, no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n" +
		"retry: " + strconv.Itoa(streamRetryMillis) + "\n\n")
	if st.flush() != nil {
		st.h.unsubscribe(st.sub)
		return false
	}
	st.sub.requestResync()
	return true
}

// limitSendBuffer sets the socket's send buffer to streamSendBuffer.
func limitSendBuffer(c net.Conn) {
	// Unwrap fasthttp's hijacked conn and our own listener wrappers down to the socket.
	for range 8 {
		switch u := c.(type) {
		case *net.TCPConn:
			_ = u.SetWriteBuffer(streamSendBuffer)
			return
		case interface{ UnsafeConn() net.Conn }:
			c = u.UnsafeConn()
		case interface{ NetConn() net.Conn }:
			c = u.NetConn()
		default:
			return
		}
	}
}

// watchClient returns a channel closed when the client closes its side (or sends anything).
func (st *stream) watchClient() <-chan struct{} {
	gone := make(chan struct{})
	_ = st.conn.SetReadDeadline(time.Time{})
	go func() {
		defer close(gone)
		_, _ = io.Copy(io.Discard, io.LimitReader(st.conn, 1))
	}()
	return gone
}

// drain sends what the inbox holds: a resync first when asked for, then the queued events.
func (st *stream) drain() error {
	events, resync := st.sub.take()
	if resync {
		if err := st.resync(); err != nil {
			return err
		}
	}
	for _, ev := range events {
		st.send(ev)
	}
	return st.flush()
}

// resync sends, oldest first, the timeline's posts from floor up that this stream has not sent.
// A failed read is retried after a pause; only a failed write ends the stream.
func (st *stream) resync() error {
	began := time.Now()
	ids, err := st.timelineIDs(st.floor)
	if err != nil {
		st.h.m.resyncs.WithLabelValues("error").Inc()
		time.AfterFunc(streamRetryPause, st.sub.requestResync)
		return nil
	}
	st.h.m.resyncs.WithLabelValues("ok").Inc()
	for i := len(ids) - 1; i >= 0; i-- {
		if _, ok := st.sent[ids[i]]; ok {
			continue
		}
		ev, ok := st.event(ids[i])
		if !ok {
			continue
		}
		st.send(ev)
		if st.w.Buffered() > 32<<10 {
			if err := st.flush(); err != nil {
				return err
			}
		}
	}
	// Whatever is acknowledged from now on carries an id at or above this.
	st.raiseFloor(idAt(began.Add(-streamWindow)))
	return nil
}

// event reads one post of the stream's author as an event.
func (st *stream) event(id uint64) (event, bool) {
	ctx, cancel := context.WithTimeout(st.h.ctx, requestTimeout)
	defer cancel()
	p, err := st.svc.Post(ctx, st.q.UserID, id)
	if err != nil {
		return event{}, false
	}
	b, err := json.Marshal(p)
	if err != nil {
		return event{}, false
	}
	return event{id: id, data: b}, true
}

// timelineIDs returns the author's post ids ≥ floor, newest first, at most streamReplayMax.
func (st *stream) timelineIDs(floor uint64) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(st.h.ctx, requestTimeout)
	defer cancel()
	var ids []uint64
	q := listQuery{UserID: st.q.UserID, Limit: MaxLimit}
	for len(ids) < streamReplayMax {
		page, next, err := st.svc.Page(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, raw := range page {
			var head struct {
				ID uint64 `json:"post_id"`
			}
			if json.Unmarshal(raw, &head) != nil {
				continue
			}
			if head.ID < floor {
				return ids, nil
			}
			ids = append(ids, head.ID)
		}
		if next == 0 || next < floor {
			return ids, nil
		}
		q.MaxID = next
	}
	return ids[:streamReplayMax], nil
}

// send writes ev unless this stream sent it already.
func (st *stream) send(ev event) {
	if _, ok := st.sent[ev.id]; ok {
		return
	}
	st.sent[ev.id] = struct{}{}
	if len(st.sent) > streamSentMax {
		st.forgetOldest()
	}
	_, _ = st.w.WriteString("id: ")
	_, _ = st.w.WriteString(strconv.FormatUint(ev.id, 10))
	_, _ = st.w.WriteString("\ndata: ")
	_, _ = st.w.Write(ev.data)
	_, _ = st.w.WriteString("\n\n")
	st.h.m.events.Inc()
}

// raiseFloor forgets the sent ids below floor: no resync reads below it any more.
func (st *stream) raiseFloor(floor uint64) {
	if floor <= st.floor {
		return
	}
	st.floor = floor
	for id := range st.sent {
		if id < floor {
			delete(st.sent, id)
		}
	}
}

// forgetOldest keeps the newest half of the sent ids and raises the floor to the oldest kept.
func (st *stream) forgetOldest() {
	ids := make([]uint64, 0, len(st.sent))
	for id := range st.sent {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	st.raiseFloor(ids[len(ids)/2])
}

func (st *stream) flush() error {
	_ = st.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return st.w.Flush()
}

// streamMetrics count what the streams do.
type streamMetrics struct {
	open       prometheus.Gauge
	events     prometheus.Counter
	overflows  prometheus.Counter
	moves      prometheus.Counter
	reconnects prometheus.Counter
	received   *prometheus.CounterVec // by result (ok, unwanted, malformed)
	resyncs    *prometheus.CounterVec // by result (ok, error)
}

func newStreamMetrics(reg prometheus.Registerer) *streamMetrics {
	m := &streamMetrics{
		open:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "postsvc_streams_open", Help: "Open timeline streams."}),
		events:     prometheus.NewCounter(prometheus.CounterOpts{Name: "postsvc_stream_events_total", Help: "Events written to timeline streams."}),
		overflows:  prometheus.NewCounter(prometheus.CounterOpts{Name: "postsvc_stream_overflows_total", Help: "Subscriber queues dropped for a resync because the client read too slowly."}),
		moves:      prometheus.NewCounter(prometheus.CounterOpts{Name: "postsvc_stream_moves_total", Help: "Subscribers moved to another shard by a ring change."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "postsvc_stream_shard_reconnects_total", Help: "Pub/sub connections to a shard lost and replaced."}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postsvc_stream_received_total",
			Help: "Pub/sub messages received, by result (ok, unwanted, malformed)."}, []string{"result"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postsvc_stream_resyncs_total",
			Help: "Stream resyncs from the timeline, by result (ok, error)."}, []string{"result"}),
	}
	reg.MustRegister(m.open, m.events, m.overflows, m.moves, m.reconnects, m.received, m.resyncs)
	return m
}
