package postsvc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
)

// newStreamHarness is newHarness with ids that carry the time, as guid's do.
func newStreamHarness(t *testing.T, nShards int, mutate func(*Config)) *harness {
	t.Helper()
	h := newHarness(t, nShards, mutate)
	h.ids.mu.Lock()
	h.ids.clock = time.Now
	h.ids.mu.Unlock()
	return h
}

func (h *harness) stream(uid uint64, lastEventID string) *itest.SSE {
	h.t.Helper()
	hdr := http.Header{}
	if lastEventID != "" {
		hdr.Set("Last-Event-ID", lastEventID)
	}
	return itest.OpenSSE(h.t, fmt.Sprintf("%s/api/v1/posts/%d/stream", h.base, uid), hdr)
}

// collectIDs reads events until every id in want was seen, and returns all ids read in order.
func collectIDs(t *testing.T, s *itest.SSE, want []uint64, timeout time.Duration) []uint64 {
	t.Helper()
	evs, err := s.Collect(timeout, func(ids []string) bool {
		for _, w := range want {
			if !slices.Contains(ids, strconv.FormatUint(w, 10)) {
				return false
			}
		}
		return true
	})
	var got []uint64
	for _, ev := range evs {
		id, _ := strconv.ParseUint(ev.ID, 10, 64)
		got = append(got, id)
	}
	if err != nil {
		t.Fatalf("waiting for events %v: %v; got %v", want, err, got)
	}
	return got
}

func TestStreamDeliversPostsAsEvents(t *testing.T) {
	h := newStreamHarness(t, 1, nil)
	other := h.stream(8, "")
	s := h.stream(7, "")
	if s.Status != 200 || !strings.HasPrefix(s.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: got %d %q, want 200 text/event-stream", s.Status, s.Header.Get("Content-Type"))
	}
	var want []uint64
	for i := range 3 {
		want = append(want, h.write(7, fmt.Sprintf("line %d\nwith a newline", i), "https://example.com/").ID)
	}
	got := collectIDs(t, s, want, 5*time.Second)
	if !slices.Equal(got, want) {
		t.Fatalf("event ids: got %v, want %v", got, want)
	}
	if ev, ok := other.Next(300 * time.Millisecond); ok {
		t.Fatalf("a subscriber of user 8 got an event of user 7: %+v", ev)
	}
	p := h.write(7, "decoded", "")
	ev, ok := s.Next(5 * time.Second)
	if !ok {
		t.Fatal("no event for the fourth post")
	}
	var q post.Post
	if err := json.Unmarshal([]byte(ev.Data), &q); err != nil || q.ID != p.ID || q.Contents != "decoded" || q.UserID != 7 {
		t.Fatalf("event data: got %q (%v), want post %d of user 7", ev.Data, err, p.ID)
	}
}

func TestStreamResumesFromLastEventID(t *testing.T) {
	h := newStreamHarness(t, 1, nil)
	s := h.stream(7, "")
	seen := []uint64{h.write(7, "a", "").ID, h.write(7, "b", "").ID}
	collectIDs(t, s, seen, 5*time.Second)
	s.Close()
	missed := []uint64{h.write(7, "c", "").ID, h.write(7, "d", "").ID, h.write(7, "e", "").ID}
	r := h.stream(7, strconv.FormatUint(seen[len(seen)-1], 10))
	got := collectIDs(t, r, missed, 5*time.Second)
	for _, id := range got {
		if !slices.Contains(missed, id) && !slices.Contains(seen, id) {
			t.Fatalf("resumed stream sent %d, neither missed %v nor seen %v", id, missed, seen)
		}
	}
	if slices.Contains(got, seen[len(seen)-1]) {
		t.Errorf("resumed stream sent the Last-Event-ID post %d again", seen[len(seen)-1])
	}
	// The query parameter is the same position for clients that cannot set the header.
	q := itest.OpenSSE(t, fmt.Sprintf("%s/api/v1/posts/7/stream?last_event_id=%d", h.base, missed[0]), nil)
	collectIDs(t, q, missed[1:], 5*time.Second)
}

func TestStreamRefusesBeyondItsBound(t *testing.T) {
	h := newStreamHarness(t, 1, func(c *Config) { c.StreamMax = 2 })
	a, b := h.stream(1, ""), h.stream(2, "")
	if a.Status != 200 || b.Status != 200 {
		t.Fatalf("first two streams: got %d, %d, want 200", a.Status, b.Status)
	}
	c := h.stream(3, "")
	var env struct {
		Code  int    `json:"code"`
		Error string `json:"error"`
	}
	if c.Status != 503 || json.Unmarshal([]byte(c.Body), &env) != nil || env.Code != -503 || env.Error != "unavailable" {
		t.Fatalf("third stream: got %d %q, want 503 in the error envelope", c.Status, c.Body)
	}
	if c.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	a.Close()
	itest.WaitFor(t, 5*time.Second, "a slot freed by a closed stream", func() bool {
		d := h.stream(3, "")
		d.Close()
		return d.Status == 200
	})
}

func TestStreamBadInput(t *testing.T) {
	h := newStreamHarness(t, 1, nil)
	for _, tc := range []struct{ path, last string }{
		{"/api/v1/posts/0/stream", ""}, {"/api/v1/posts/x/stream", ""}, {"/api/v1/posts/7/stream", "abc"},
		{"/api/v1/posts/7/stream", "-1"}, {"/api/v1/posts/7/stream", "18446744073709551616"},
		{"/api/v1/posts/7/stream?last_event_id=", ""}, {"/api/v1/posts/7/stream?last_event_id=1e3", ""},
	} {
		hdr := http.Header{}
		if tc.last != "" {
			hdr.Set("Last-Event-ID", tc.last)
		}
		s := itest.OpenSSE(t, h.base+tc.path, hdr)
		if tc.path == "/api/v1/posts/7/stream?last_event_id=" {
			// An empty parameter is no position.
			if s.Status != 200 {
				t.Errorf("%s: got %d, want 200", tc.path, s.Status)
			}
			continue
		}
		if s.Status != 400 || !strings.Contains(s.Body, `"invalid_argument"`) {
			t.Errorf("%s Last-Event-ID %q: got %d %s, want 400 invalid_argument", tc.path, tc.last, s.Status, s.Body)
		}
	}
	if r := h.do("POST", "/api/v1/posts/7/stream", ""); r.status != 405 {
		t.Errorf("POST to a stream: got %d, want 405", r.status)
	}
}

func TestStreamHeartbeat(t *testing.T) {
	h := newStreamHarness(t, 1, func(c *Config) { c.StreamHeartbeat = 100 * time.Millisecond })
	s := h.stream(7, "")
	if !s.Comment(5 * time.Second) {
		t.Fatal("no heartbeat comment on an idle stream")
	}
}

// TestStreamFollowsRingChange moves the author to another shard while a stream is open: posts
// written after the move, and the one written while the move was in progress, are delivered.
func TestStreamFollowsRingChange(t *testing.T) {
	h := newStreamHarness(t, 2, nil)
	uid := uint64(1)
	first := h.srv.Cache().view().shardFor(listKey(uid)).name
	s := h.stream(uid, "")
	want := []uint64{h.write(uid, "before", "").ID}
	collectIDs(t, s, want, 5*time.Second)
	other := 0
	if first == "redis1" {
		other = 1
	}
	h.setAlive(other)
	want = append(want, h.write(uid, "during", "").ID)
	itest.WaitFor(t, 5*time.Second, "the hub on the new ring", func() bool { return h.srv.streams.currentView() == h.srv.Cache().view() })
	want = append(want, h.write(uid, "after", "").ID)
	collectIDs(t, s, want[1:], 10*time.Second)
}

// TestStreamStalledSubscriberIsBounded holds a stream whose client never reads while many large
// posts are written: every write is acknowledged, the subscriber's queue never exceeds its bound
// (it overflows into a resync instead), and a reading stream still gets every post.
func TestStreamStalledSubscriberIsBounded(t *testing.T) {
	h := newStreamHarness(t, 1, nil)
	// A small receive buffer, set before connecting, keeps the window small: the server's writes
	// block after a few hundred kB instead of after the kernel's autotuned megabytes.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
	}}
	conn, err := d.Dial("tcp", h.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/posts/9/stream HTTP/1.1\r\nHost: x\r\n\r\n")
	status, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.Contains(status, " 200 ") {
		t.Fatalf("stalled stream: got %q, want 200", status)
	}
	reader := h.stream(9, "")
	itest.WaitFor(t, 5*time.Second, "both subscribers registered", func() bool { return subscriberCount(h.srv.streams, 9) == 2 })
	var maxQueued int
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := maxQueue(h.srv.streams, 9)
			mu.Lock()
			maxQueued = max(maxQueued, n)
			mu.Unlock()
		}
	}()
	big := strings.Repeat("x", 8000)
	var ids []uint64
	for i := range 400 {
		ids = append(ids, h.write(9, fmt.Sprintf("%d %s", i, big), "").ID)
	}
	// Events reach the hub through the shard's pub/sub after the writes return: wait for the
	// overflow, still sampling the queues meanwhile.
	itest.WaitFor(t, 30*time.Second, "the stalled subscriber to overflow into a resync (else the test did not stall it)",
		func() bool { return counterValue(h.srv.streams.m.overflows) > 0 })
	close(stop)
	<-sampled
	if maxQueued > streamQueue {
		t.Fatalf("a subscriber queued %d events, bound %d", maxQueued, streamQueue)
	}
	collectIDs(t, reader, ids, 30*time.Second)
}

func subscriberCount(h *hub, uid uint64) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if t := h.topics[uid]; t != nil {
		return len(t.subs)
	}
	return 0
}

func maxQueue(h *hub, uid uint64) int {
	h.mu.RLock()
	var subs []*subscriber
	if t := h.topics[uid]; t != nil {
		for s := range t.subs {
			subs = append(subs, s)
		}
	}
	h.mu.RUnlock()
	n := 0
	for _, s := range subs {
		n = max(n, s.queued())
	}
	return n
}

// TestShutdownClosesStreams: open streams end when the server shuts down, and the drain does not
// wait for them.
func TestShutdownClosesStreams(t *testing.T) {
	h := newStreamHarness(t, 1, nil)
	s := h.stream(7, "")
	itest.WaitFor(t, 5*time.Second, "the subscriber registered", func() bool { return subscriberCount(h.srv.streams, 7) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open stream: %v", err)
	}
	if ev, ok := s.Next(5 * time.Second); ok {
		t.Fatalf("stream after shutdown: got event %+v, want its end", ev)
	}
}

func FuzzParseStreamQuery(f *testing.F) {
	for _, s := range [][3]string{{"7", "", ""}, {"7", "725060506028609536", ""}, {"7", "", "1"}, {"0", "", ""},
		{"7", " 1", ""}, {"7", "1\n", ""}, {"18446744073709551615", "18446744073709551616", "x"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, uid, header, query string) {
		q, err := parseStreamQuery(uid, []byte(header), []byte(query))
		if err != nil {
			return
		}
		if q.UserID == 0 || strconv.FormatUint(q.UserID, 10) != uid {
			t.Fatalf("parseStreamQuery(%q): got user %d", uid, q.UserID)
		}
		raw := header
		if raw == "" {
			raw = query
		}
		if (raw == "") != (q.Since == 0) || (raw != "" && strconv.FormatUint(q.Since, 10) != raw) {
			t.Fatalf("parseStreamQuery(%q, %q): got since %d", header, query, q.Since)
		}
	})
}

func FuzzEventOf(f *testing.F) {
	f.Add(uint64(7), []byte(`{"post_id":1,"user_id":7,"contents":"a\nb"}`))
	f.Add(uint64(7), []byte("{\n\"post_id\": 2,\n\"user_id\": 7}"))
	f.Add(uint64(7), []byte(`{"post_id":1,"user_id":8}`))
	f.Add(uint64(7), []byte(`[]`))
	f.Fuzz(func(t *testing.T, uid uint64, payload []byte) {
		ev, ok := eventOf(uid, payload)
		if !ok {
			return
		}
		if ev.id == 0 || strings.ContainsAny(string(ev.data), "\r\n") || !json.Valid(ev.data) {
			t.Fatalf("eventOf(%q): got id %d data %q: want a post id and one line of JSON", payload, ev.id, ev.data)
		}
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// TestStreamSurvivesShardRestart kills the author's shard and starts it again on the same port
// without any ring change: the stream's pub/sub connection comes back by itself, a post acknowledged
// while the shard was down reaches the stream once it is written back, and later posts arrive live.
func TestStreamSurvivesShardRestart(t *testing.T) {
	h := newStreamHarness(t, 1, func(c *Config) { c.Settle = time.Second })
	s := h.stream(11, "")
	collectIDs(t, s, []uint64{h.write(11, "before", "").ID}, 5*time.Second)
	h.shards[0].Kill()
	during := h.write(11, "while the shard is down", "")
	h.db.persist()
	h.shards[0].Start(t)
	collectIDs(t, s, []uint64{during.ID}, 15*time.Second)
	itest.WaitFor(t, 10*time.Second, "writes cached again", func() bool {
		return h.srv.Cache().view().shardFor(listKey(11)).rdb.Ping(context.Background()).Err() == nil
	})
	collectIDs(t, s, []uint64{h.write(11, "after", "").ID}, 10*time.Second)
}
