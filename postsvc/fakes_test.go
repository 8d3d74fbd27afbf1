package postsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/internal/testenv/stacktest"
	"github.com/the-red/zkpost/post"
)

// bigIDBase is past 2^53, so every test id exercises the float64 trap.
const bigIDBase = uint64(1)<<53 + 12345

// fakeIDs hands out unique, mostly increasing ids past 2^53; with skewEvery > 0 every so often an
// id slightly older than the newest (a guidd whose clock is a little behind).
type fakeIDs struct {
	mu        sync.Mutex
	last      uint64
	n         int
	skewEvery int
	used      map[uint64]bool
	rnd       *rand.Rand
	err       error
	// clock, when set, makes ids carry its time as guid's do (the stream's replay window reads
	// it), still unique and increasing.
	clock func() time.Time
}

func newFakeIDs() *fakeIDs {
	return &fakeIDs{last: bigIDBase, used: map[uint64]bool{}, rnd: rand.New(rand.NewPCG(1, 2))}
}

func (f *fakeIDs) Next(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	f.n++
	if f.skewEvery > 0 && f.n%f.skewEvery == 0 {
		for {
			id := f.last - 1 - uint64(f.rnd.IntN(900))
			if !f.used[id] {
				f.used[id] = true
				return id, nil
			}
		}
	}
	f.last += 1000 + uint64(f.rnd.IntN(3))
	if f.clock != nil {
		f.last = max(f.last-999, idAt(f.clock()))
	}
	f.used[f.last] = true
	return f.last, nil
}

func (f *fakeIDs) setLast(v uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = v
}

type fakePreviewer struct {
	fn    func(ctx context.Context, u string) (json.RawMessage, error)
	calls atomic.Int64
}

func (f *fakePreviewer) Scrap(ctx context.Context, u string) (json.RawMessage, error) {
	f.calls.Add(1)
	if f.fn == nil {
		return json.RawMessage(`{"title":"T","url":` + strconv.Quote(u) + `}`), nil
	}
	return f.fn(ctx, u)
}

// memDB is the database truth and the queue: Enqueue records a pending job; persist moves pending
// posts into the table, as writebackd would, so tests control the write-back lag.
type memDB struct {
	mu      sync.Mutex
	rows    map[uint64]post.Post
	pending []post.Post
	failQ   atomic.Bool                   // Enqueue fails while set
	front   atomic.Pointer[Queue]         // when set, Enqueue goes through it first and fails with it
	failDB  atomic.Bool                   // List/Get fail while set
	gate    atomic.Pointer[chan struct{}] // Enqueue waits for it to close when set
	entered chan struct{}                 // receives once per Enqueue that waits on the gate
	lists   atomic.Int64
}

func newMemDB() *memDB { return &memDB{rows: map[uint64]post.Post{}, entered: make(chan struct{}, 16)} }

func (m *memDB) Enqueue(ctx context.Context, p post.Post) error {
	if m.failQ.Load() {
		return errors.New("queue down")
	}
	if q := m.front.Load(); q != nil {
		if err := (*q).Enqueue(ctx, p); err != nil {
			return err
		}
	}
	if g := m.gate.Load(); g != nil {
		m.entered <- struct{}{}
		select {
		case <-*g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, p)
	return nil
}

func (m *memDB) persist() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pending {
		m.rows[p.ID] = p
	}
	m.pending = nil
}

func (m *memDB) List(ctx context.Context, uid, maxID uint64, limit int) ([]post.Post, error) {
	if m.failDB.Load() {
		return nil, errors.New("db down")
	}
	m.lists.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []post.Post
	for _, p := range m.rows {
		if p.UserID == uid && (maxID == 0 || p.ID <= maxID) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b post.Post) int { return cmpDesc(a.ID, b.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memDB) Get(ctx context.Context, id uint64) (post.Post, error) {
	if m.failDB.Load() {
		return post.Post{}, errors.New("db down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.rows[id]
	if !ok {
		return post.Post{}, ErrNotFound
	}
	return p, nil
}

// truth returns every persisted id of uid, newest first.
func (m *memDB) truth(uid uint64) []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []uint64
	for _, p := range m.rows {
		if p.UserID == uid {
			ids = append(ids, p.ID)
		}
	}
	slices.SortFunc(ids, cmpDesc)
	return ids
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// harness is a postsvc Server in-process over fakes for guid, scrap, the queue and the database,
// and real Redis shards whose ring the test sets directly (as the ZooKeeper watch would).
type harness struct {
	t       testing.TB
	srv     *Server
	base    string
	ids     *fakeIDs
	scrap   *fakePreviewer
	db      *memDB
	shards  []*itest.Redis
	version int64
	hc      *http.Client
	clock   atomic.Int64 // offset added to the real clock, in ns
	cfg     Config
	store   Store
	peers   []*Server // further postsvc instances over the same shards and database (addPeer)
	via     int       // which instance do() talks to: 0 is srv, i is peers[i-1]
}

func (h *harness) now() time.Time { return time.Now().Add(time.Duration(h.clock.Load())) }

// advance moves the service's clock forward.
func (h *harness) advance(d time.Duration) { h.clock.Add(int64(d)) }

func newHarness(t testing.TB, nShards int, mutate func(*Config)) *harness {
	t.Helper()
	return newHarnessReading(t, nShards, mutate, nil)
}

// newHarnessReading is newHarness with reads going to store (nil: the in-memory database, which
// is always the queue).
func newHarnessReading(t testing.TB, nShards int, mutate func(*Config), store Store) *harness {
	t.Helper()
	h := &harness{t: t, ids: newFakeIDs(), scrap: &fakePreviewer{}, db: newMemDB(), hc: &http.Client{Timeout: 10 * time.Second}}
	for range nShards {
		h.shards = append(h.shards, itest.StartRedis(t, itest.RedisOptions{}))
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.CacheTimeout = time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	if store == nil {
		store = h.db
	}
	h.cfg, h.store = cfg, store
	h.srv = h.start()
	h.base = "http://" + h.srv.Addr().String()
	all := make([]int, nShards)
	for i := range all {
		all[i] = i
	}
	h.setAlive(all...)
	return h
}

// start runs one more postsvc Server over the harness's fakes, stopped at cleanup.
func (h *harness) start() *Server {
	h.t.Helper()
	srv, err := New(h.cfg, Deps{IDs: h.ids, Previewer: h.scrap, Queue: h.db, Store: h.store,
		Log: slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelDebug})), Registry: metrics.NewRegistry(), Now: h.now})
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	})
	return srv
}

// addPeer starts another instance on the current ring (as a second postsvcd would be).
func (h *harness) addPeer() {
	h.t.Helper()
	p := h.start()
	p.Cache().Update(h.version, h.nodes(h.alive()...))
	h.peers = append(h.peers, p)
}

// servers returns every instance, srv first.
func (h *harness) servers() []*Server { return append([]*Server{h.srv}, h.peers...) }

// alive returns the indexes of the shards on srv's ring.
func (h *harness) alive() []int {
	var out []int
	for i := range h.shards {
		if h.srv.Cache().view().shards[fmt.Sprintf("redis%d", i+1)] != nil {
			out = append(out, i)
		}
	}
	return out
}

// setAlive puts the listed shards on every instance's ring under a new version.
func (h *harness) setAlive(idx ...int) {
	h.version++
	for _, srv := range h.servers() {
		srv.Cache().Update(h.version, h.nodes(idx...))
	}
}

// nodes is R/cache/nodes with the listed shards ALIVE and the others DOWN.
func (h *harness) nodes(idx ...int) []discovery.CacheNode {
	var nodes []discovery.CacheNode
	for i, r := range h.shards {
		status := discovery.StatusDown
		if slices.Contains(idx, i) {
			status = discovery.StatusAlive
		}
		nodes = append(nodes, discovery.CacheNode{Name: fmt.Sprintf("redis%d", i+1), Addr: r.Addr(), Status: status})
	}
	return nodes
}

type apiResp struct {
	status int
	body   []byte
}

// baseURL is the base URL of the instance do() talks to.
func (h *harness) baseURL() string {
	if h.via > 0 {
		return "http://" + h.peers[h.via-1].Addr().String()
	}
	return h.base
}

func (h *harness) do(method, path string, body string) apiResp {
	h.t.Helper()
	req, err := http.NewRequest(method, h.baseURL()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatalf("request: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResp{status: resp.StatusCode, body: b}
}

// write posts through POST /api/v1/posts and returns the new post (status 201 required).
func (h *harness) write(uid uint64, contents, link string) post.Post {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"user_id": uid, "contents": contents, "url": link})
	r := h.do("POST", "/api/v1/posts", string(body))
	if r.status != 201 {
		h.t.Fatalf("write: got status %d (%s), want 201", r.status, r.body)
	}
	var p post.Post
	if err := json.Unmarshal(r.body, &p); err != nil {
		h.t.Fatalf("write: decoding %s: %v", r.body, err)
	}
	return p
}

// pageResp is one timeline page, read with stacktest's timeline client like every stack test's.
type pageResp = stacktest.Page

func (h *harness) page(uid, f uint64, limit int) pageResp {
	h.t.Helper()
	p, err := stacktest.Client{HTTP: h.hc, Base: h.baseURL()}.Page(uid, f, limit)
	if err != nil {
		h.t.Fatalf("page(%d, f=%d): %v", uid, f, err)
	}
	return p
}

// walk reads every page of uid with the cursor and returns the ids in order, failing on any
// malformed cursor.
func (h *harness) walk(uid uint64, limit int) []uint64 {
	h.t.Helper()
	return stacktest.Walk(h.t, uid, limit, func(f uint64) (pageResp, error) { return h.page(uid, f, limit), nil })
}

func testLogOut() io.Writer {
	if os.Getenv("POSTSVC_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
