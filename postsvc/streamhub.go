package postsvc

// The timeline stream's fan-out (docs/api.md#streaming-a-timeline).
//
// A post acknowledged by any postsvcd is PUBLISHed on its author's cache shard, on channel
// pe:<uid>, last in the pipeline that caches it (coverage.go's addPost); every postsvcd with subscribers of that author SUBSCRIBEs there. The author's shard
// is the natural place: every postsvcd already holds a client for it and follows the ring, the
// post itself was just written there, and fan-out load spreads over the shards the way the users
// do. A dedicated pub/sub node would be one more thing to register, fail over and size.
//
// Pub/sub delivers at most once: a message published while a subscriber's connection is down, or
// on a shard the subscriber does not listen to yet (the ring just changed, in one process before
// another), is lost. So whenever a subscription may have missed something — the ring moved the
// author to another shard, the shard connection broke and came back, the subscriber's queue
// overflowed — the subscriber resyncs: it reads the timeline (the same read a list does) and sends
// what it has not sent yet. After a ring move it resyncs again once --coverage-settle has passed,
// the bound on write-back lag, for posts a process on the old ring cached where no one reads now.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	streamQueue      = 64                     // events queued per subscriber; beyond, it resyncs instead
	streamRingPoll   = 100 * time.Millisecond // how often the hub looks for a new ring
	streamPing       = 5 * time.Second        // idle time before a shard subscription is pinged
	streamRetryPause = 500 * time.Millisecond // pause after a failed shard read or resync
)

// channelOf is the pub/sub channel of user uid's posts, on the shard owning listKey(uid).
func channelOf(uid uint64) string { return "pe:" + strconv.FormatUint(uid, 10) }

// uidOfChannel parses a channel name written by channelOf.
func uidOfChannel(ch string) (uint64, bool) {
	rest, ok := strings.CutPrefix(ch, "pe:")
	if !ok {
		return 0, false
	}
	return parsePositive(rest)
}

// event is one post as a stream sends it: its id and its client JSON on one line.
type event struct {
	id   uint64
	data []byte
}

// eventOf validates a payload read from a shard: one JSON object of user uid with a post id,
// compacted onto one line (an SSE data line cannot hold a newline).
func eventOf(uid uint64, payload []byte) (event, bool) {
	var head struct {
		ID     uint64 `json:"post_id"`
		UserID uint64 `json:"user_id"`
	}
	if !isJSONObject(payload) || json.Unmarshal(payload, &head) != nil || head.ID == 0 || head.UserID != uid {
		return event{}, false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, payload); err != nil {
		return event{}, false
	}
	return event{id: head.ID, data: buf.Bytes()}, true
}

// hub is one process's side of the fan-out: the subscribers by author, one pub/sub connection per
// shard that has any.
type hub struct {
	cache  *Cache
	cfg    Config
	log    *slog.Logger
	m      *streamMetrics
	ctx    context.Context
	cancel context.CancelFunc

	slots atomic.Int64 // open streams, against cfg.StreamMax

	mu     sync.RWMutex
	view   *ringView
	topics map[uint64]*topic
	shards map[*shard]*shardSub

	closing   chan struct{} // closed when streams must end (shutdown)
	closeOnce sync.Once
	conns     sync.Map // net.Conn of each open stream → struct{}
	streams   sync.WaitGroup
	loops     sync.WaitGroup
}

// topic is one author's subscribers in this process and the shard they listen on (nil: none).
type topic struct {
	sh   *shard
	subs map[*subscriber]struct{}
}

func newHub(cache *Cache, cfg Config, log *slog.Logger, reg prometheus.Registerer) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{cache: cache, cfg: cfg, log: log, m: newStreamMetrics(reg), ctx: ctx, cancel: cancel,
		view: cache.view(), topics: map[uint64]*topic{},
		shards: map[*shard]*shardSub{}, closing: make(chan struct{})}
	h.loops.Add(1)
	go h.followRing()
	return h
}

// followRing moves subscriptions when the cache ring changes.
func (h *hub) followRing() {
	defer h.loops.Done()
	t := time.NewTicker(streamRingPoll)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
			if v := h.cache.view(); v != h.currentView() {
				h.rebalance(v)
			}
		}
	}
}

func (h *hub) currentView() *ringView {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.view
}

// rebalance installs view v: every topic whose author now lives on another shard (or another
// incarnation of it) moves there, and its subscribers resync now and after the settle time.
func (h *hub) rebalance(v *ringView) {
	h.mu.Lock()
	h.view = v
	var moved []*subscriber
	for uid, t := range h.topics {
		sh := v.shardFor(listKey(uid))
		if sh == t.sh {
			continue
		}
		h.detachLocked(uid, t)
		h.attachLocked(uid, t, sh)
		for s := range t.subs {
			moved = append(moved, s)
		}
	}
	dirty := h.pruneLocked(v)
	h.mu.Unlock()
	h.syncShards(dirty)
	for _, s := range moved {
		s.requestResync()
		time.AfterFunc(h.cfg.Settle, s.requestResync)
	}
	if len(moved) > 0 {
		h.m.moves.Add(float64(len(moved)))
		h.log.Info("stream subscriptions moved", "subscribers", len(moved), "ring_version", v.version)
	}
}

// attachLocked points topic t of uid at shard sh and adds its channel to that shard's wanted set.
func (h *hub) attachLocked(uid uint64, t *topic, sh *shard) {
	t.sh = sh
	if sh == nil {
		return
	}
	ss := h.shards[sh]
	if ss == nil {
		ss = h.startShardSub(sh)
		h.shards[sh] = ss
	}
	ss.want[channelOf(uid)] = struct{}{}
}

func (h *hub) detachLocked(uid uint64, t *topic) {
	if ss := h.shards[t.sh]; ss != nil {
		delete(ss.want, channelOf(uid))
	}
	t.sh = nil
}

// pruneLocked stops shard subscriptions that want nothing or whose shard left the ring, and
// returns every remaining one, to be brought in line with what it wants.
func (h *hub) pruneLocked(v *ringView) []*shardSub {
	var keep []*shardSub
	for sh, ss := range h.shards {
		if len(ss.want) == 0 || v.shards[sh.name] != sh {
			delete(h.shards, sh)
			ss.stop()
			continue
		}
		keep = append(keep, ss)
	}
	return keep
}

func (h *hub) syncShards(subs []*shardSub) {
	for _, ss := range subs {
		ss.sync()
	}
}

// subscribe adds a subscriber of uid.
func (h *hub) subscribe(uid uint64) *subscriber {
	s := &subscriber{uid: uid, wake: make(chan struct{}, 1), m: h.m}
	h.mu.Lock()
	t := h.topics[uid]
	if t == nil {
		t = &topic{subs: map[*subscriber]struct{}{}}
		h.topics[uid] = t
		h.attachLocked(uid, t, h.view.shardFor(listKey(uid)))
	}
	t.subs[s] = struct{}{}
	ss := h.shards[t.sh]
	h.mu.Unlock()
	if ss != nil {
		ss.sync()
	}
	return s
}

// unsubscribe removes s; the last subscriber of an author takes the channel down with it.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	t := h.topics[s.uid]
	if t == nil {
		h.mu.Unlock()
		return
	}
	delete(t.subs, s)
	var dirty []*shardSub
	if len(t.subs) == 0 {
		h.detachLocked(s.uid, t)
		delete(h.topics, s.uid)
		dirty = h.pruneLocked(h.view)
	}
	h.mu.Unlock()
	h.syncShards(dirty)
}

// deliver hands an event read from shard sh to the subscribers of uid listening there.
func (h *hub) deliver(sh *shard, uid uint64, payload []byte) {
	ev, ok := eventOf(uid, payload)
	if !ok {
		h.m.received.WithLabelValues("malformed").Inc()
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[uid]
	if t == nil || t.sh != sh {
		h.m.received.WithLabelValues("unwanted").Inc()
		return
	}
	h.m.received.WithLabelValues("ok").Inc()
	for s := range t.subs {
		s.push(ev)
	}
}

// resyncShard asks every subscriber listening on sh to resync, now and once more after the settle
// time: its connection broke, what was published meanwhile is lost, and a post whose cache write
// failed during the break reaches the timeline only once written back.
func (h *hub) resyncShard(sh *shard) {
	h.mu.RLock()
	var subs []*subscriber
	for _, t := range h.topics {
		if t.sh == sh {
			for s := range t.subs {
				subs = append(subs, s)
			}
		}
	}
	h.mu.RUnlock()
	for _, s := range subs {
		s.requestResync()
		time.AfterFunc(h.cfg.Settle, s.requestResync)
	}
}

// acquire takes one of the process's stream slots; false when all are taken.
func (h *hub) acquire() bool {
	if h.slots.Add(1) > int64(h.cfg.StreamMax) {
		h.slots.Add(-1)
		return false
	}
	h.m.open.Inc()
	return true
}

func (h *hub) release() {
	h.slots.Add(-1)
	h.m.open.Dec()
}

// closeStreams ends every open stream and waits for them (until ctx ends). A stream blocked
// writing to a stalled client is unblocked by an immediate write deadline.
func (h *hub) closeStreams(ctx context.Context) error {
	h.closeOnce.Do(func() { close(h.closing) })
	h.conns.Range(func(k, _ any) bool {
		_ = k.(net.Conn).SetWriteDeadline(time.Now())
		return true
	})
	done := make(chan struct{})
	go func() { h.streams.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("streams still open")
	}
}

// close stops the ring follower and every shard subscription.
func (h *hub) close() {
	h.cancel()
	h.loops.Wait()
	h.mu.Lock()
	for sh, ss := range h.shards {
		ss.stop()
		delete(h.shards, sh)
	}
	h.mu.Unlock()
}

// subscriber is one open stream's inbox: a bounded queue, and a flag asking for a resync from
// the timeline when the queue overflowed or the subscription may have missed events.
type subscriber struct {
	uid    uint64
	m      *streamMetrics
	mu     sync.Mutex
	queue  []event
	resync bool
	wake   chan struct{}
}

// push queues ev without waiting; a full queue is dropped and replaced by a resync, so a stalled
// client holds at most streamQueue events and never slows the shard's reader.
func (s *subscriber) push(ev event) {
	s.mu.Lock()
	if len(s.queue) >= streamQueue {
		s.queue, s.resync = nil, true
		s.m.overflows.Inc()
	} else {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) requestResync() {
	s.mu.Lock()
	s.resync = true
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take empties the inbox.
func (s *subscriber) take() (events []event, resync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, resync = s.queue, s.resync
	s.queue, s.resync = nil, false
	return events, resync
}

// queued reports how many events wait in the inbox (for tests and metrics).
func (s *subscriber) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
