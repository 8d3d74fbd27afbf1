package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/internal/testenv/stacktest"
	"github.com/the-red/zkpost/post"
)

// The whole system as real processes, for the stale-read test: ZooKeeper, three cache shards
// (the first with AOF, so its keys survive kill -9), the queue Redis (AOF), a MariaDB primary,
// guidd, writebackd, two postsvcd and the redismon binary.

const (
	staleRoot      = "/redismon_stale_read"
	staleNamespace = "stale"
)

type staleStack struct {
	zk      *itest.ZooKeeper
	conn    *discovery.Conn
	r       *rig // the redismon tests' ZooKeeper helpers, on this stack's root
	layout  discovery.Layout
	names   []string // shard names, redis1 (AOF) first
	shards  []*itest.Redis
	nodes   []string // cache node names
	queue   *itest.Redis
	db      *sql.DB
	posts   []string       // postsvcd base URLs
	monitor *itest.Process // redismon
	hc      *http.Client

	ackedMu sync.Mutex
	acked   map[uint64][]uint64 // user → acknowledged post ids
}

func newStaleStack(t *testing.T) *staleStack {
	t.Helper()
	s := &staleStack{layout: discovery.Layout{Root: staleRoot}, hc: &http.Client{Timeout: 10 * time.Second},
		acked: map[uint64][]uint64{}}
	s.zk = itest.StartZooKeeper(t)
	for i := range 3 {
		s.names = append(s.names, fmt.Sprintf("redis%d", i+1))
		s.shards = append(s.shards, itest.StartRedis(t, itest.RedisOptions{AOF: i == 0}))
	}
	s.queue = itest.StartRedis(t, itest.RedisOptions{AOF: true})
	maria := itest.StartMariaDB(t)
	s.db = maria.DB(t, "zkpost")
	s.conn = daemontest.Dial(t, s.zk, staleRoot)
	s.r = &rig{zk: s.zk, conn: s.conn.ZK(), layout: s.layout}

	// What zoo_setup writes: empty shard nodes (ALIVE), the queue and the database endpoints.
	for i, sh := range s.shards {
		node := discovery.CacheNodeName(s.names[i], sh.Addr())
		s.nodes = append(s.nodes, node)
		daemontest.CreateNode(t, s.conn, path.Join(s.layout.CacheNodes(), node), nil)
	}
	daemontest.CreateNode(t, s.conn, s.layout.Queue(), daemontest.JSON(discovery.QueueEndpoints{Primary: s.queue.Addr()}))
	daemontest.CreateNode(t, s.conn, s.layout.DB(), daemontest.JSON(discovery.DBEndpoints{Primary: maria.Addr()}))

	common := []string{"--zk", s.zk.Addr(), "--zk-root", staleRoot, "--zk-session-timeout", "2s", "--log-format", "text"}
	start := func(name, pkg string, args ...string) (string, *itest.Process) {
		port := itest.FreePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		args = append(append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port)}, common...), args...)
		p := itest.StartDaemon(t, itest.DaemonSpec{Name: name, Bin: itest.BuildBinary(t, pkg), Args: args, Port: port,
			ReadyURL: base + "/readyz", ReadyTimeout: 40 * time.Second})
		return base, p
	}
	_, s.monitor = start("redismon", "./tools/redismon", "--probe-interval", "100ms", "--probe-timeout", "250ms",
		"--fail-threshold", "3", "--rise-threshold", "2", "--log-level", "debug")
	start("guidd", "./guid/cmd/guidd")
	start("writebackd", "./writeback/cmd/writebackd", "--db-user", "root", "--db-name", "zkpost",
		"--queue-namespace", staleNamespace)
	for i := range 2 {
		base, _ := start("postsvcd"+strconv.Itoa(i+1), "./postsvc/cmd/postsvcd",
			"--db-user", "root", "--db-name", "zkpost", "--queue-namespace", staleNamespace,
			"--coverage-settle", "2s", "--list-max", "101", "--cache-timeout", "300ms", "--log-level", "debug")
		s.posts = append(s.posts, base)
	}
	for i := range s.posts {
		s.waitRing(t, i, 3)
	}
	itest.WaitFor(t, 10*time.Second, "redismon adopting every shard's run_id", func() bool {
		for _, node := range s.nodes {
			if s.r.shard(t, node).RunID == "" {
				return false
			}
		}
		return true
	})
	return s
}

// userOn returns the lowest user id whose list key lands on shard name when every shard is ALIVE
// (the same ring postsvcd builds from the same members).
func (s *staleStack) userOn(t *testing.T, name string) uint64 {
	t.Helper()
	ring := discovery.NewRing(s.names)
	for uid := uint64(1); uid < 10_000; uid++ {
		if got, _ := ring.Locate("pl:" + strconv.FormatUint(uid, 10)); got == name {
			return uid
		}
	}
	t.Fatalf("no user of the first 10000 lands on %s", name)
	return 0
}

func (s *staleStack) ringMembers(t *testing.T, i int) string {
	t.Helper()
	code, body := daemontest.Get(t, s.posts[i]+"/metrics")
	if code != http.StatusOK {
		return ""
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "postsvc_cache_ring_members "); ok {
			return v
		}
	}
	return ""
}

func (s *staleStack) waitRing(t *testing.T, i, n int) {
	t.Helper()
	itest.WaitFor(t, 20*time.Second, fmt.Sprintf("postsvcd %d with %d ring members", i+1, n), func() bool {
		return s.ringMembers(t, i) == strconv.Itoa(n)
	})
}

// write posts through postsvcd i and records the acknowledged post.
func (s *staleStack) write(t *testing.T, i int, uid uint64, contents string) post.Post {
	t.Helper()
	body := daemontest.JSON(map[string]any{"user_id": uid, "contents": contents})
	resp, err := s.hc.Post(s.posts[i%len(s.posts)]+"/api/v1/posts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("write via postsvcd %d: %v", i%len(s.posts)+1, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("write via postsvcd %d: got %d %s, want 201", i%len(s.posts)+1, resp.StatusCode, b)
	}
	var p post.Post
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	s.ackedMu.Lock()
	s.acked[uid] = append(s.acked[uid], p.ID)
	s.ackedMu.Unlock()
	return p
}

// client reads timelines from postsvcd i (of the stack's postsvcds).
func (s *staleStack) client(i int) stacktest.Client {
	return stacktest.Client{HTTP: s.hc, Base: s.posts[i%len(s.posts)]}
}

func (s *staleStack) page(t *testing.T, i int, uid, f uint64, limit int) stacktest.Page {
	t.Helper()
	pg, err := s.client(i).Page(uid, f, limit)
	if err != nil {
		t.Fatalf("page of user %d at f=%d via postsvcd %d: %v", uid, f, i%len(s.posts)+1, err)
	}
	return pg
}

// walk follows next_id from the newest post to the end.
func (s *staleStack) walk(t *testing.T, i int, uid uint64, limit int) []uint64 {
	t.Helper()
	return stacktest.Walk(t, uid, limit, func(f uint64) (stacktest.Page, error) { return s.client(i).Page(uid, f, limit) })
}

// truth returns uid's post ids in the database, newest first.
func (s *staleStack) truth(t *testing.T, uid uint64) []uint64 {
	t.Helper()
	return stacktest.Truth(t, s.db, uid)
}

// waitPersisted waits until every acknowledged post of uid is in the database.
func (s *staleStack) waitPersisted(t *testing.T, uid uint64) {
	t.Helper()
	itest.WaitFor(t, 30*time.Second, "every acknowledged post persisted", func() bool {
		s.ackedMu.Lock()
		want := slices.Clone(s.acked[uid])
		s.ackedMu.Unlock()
		got := s.truth(t, uid)
		for _, id := range want {
			if !slices.Contains(got, id) {
				return false
			}
		}
		return len(got) == len(want)
	})
}

// checkWalks compares uid's timeline, walked through every postsvcd with several page sizes,
// with the database.
func (s *staleStack) checkWalks(t *testing.T, uid uint64) {
	t.Helper()
	s.waitPersisted(t, uid)
	want := s.truth(t, uid)
	for i := range s.posts {
		for _, limit := range []int{1, 3, 10} {
			if got := s.walk(t, i, uid, limit); !slices.Equal(got, want) {
				t.Fatalf("user %d via postsvcd %d, limit %d:\n got %v\nwant %v (database)", uid, i+1, limit, got, want)
			}
		}
	}
}

// planted is stale data put on a shard by hand: a post id above the user's real ones in pl:<uid>,
// its body carrying a marker no real post has, and a canary key postsvc never touches.
type planted struct {
	uid    uint64
	id     uint64
	marker string
	canary string
}

func (p planted) member() string { return fmt.Sprintf("%020d", p.id) }

// in reports whether a response body shows the planted post.
func (p planted) in(body []byte) bool {
	return bytes.Contains(body, []byte(p.marker)) || bytes.Contains(body, []byte(strconv.FormatUint(p.id, 10)))
}

// plant writes the stale entries on c, as a write of a post would. The fake id is an hour past the newest real one, so it
// sorts first on every page.
func plant(t *testing.T, c *redis.Client, uid, newest uint64, label string) planted {
	t.Helper()
	p := planted{uid: uid, id: newest + (uint64(time.Hour/time.Millisecond) << 22),
		marker: fmt.Sprintf("STALE-%s-%d", label, time.Now().UnixNano()), canary: "stale-canary:" + label}
	body, err := json.Marshal(post.Post{ID: p.id, UserID: uid, Contents: p.marker, CreatedAt: time.Now().Add(time.Hour).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.ZAdd(ctx, fmt.Sprintf("pl:%d", uid), redis.Z{Score: 0, Member: p.member()}).Err(); err != nil {
		t.Fatalf("ZADD: %v", err)
	}
	if err := c.Set(ctx, fmt.Sprintf("post:%d", p.id), body, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := c.Set(ctx, p.canary, p.marker, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	// As a write does, replace the list's version token: postsvcd keeps pages in process only
	// while it is unchanged (postsvc/coverage.go), and the control reads must see the plant.
	if err := c.Set(ctx, fmt.Sprintf("plv:%d", uid), p.marker, 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	return p
}

// present lists which planted keys c still holds (nil: none; an error text when c cannot tell).
func (p planted) present(c *redis.Client) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []string
	if n, err := c.Exists(ctx, p.canary).Result(); err != nil {
		return []string{"error: " + err.Error()}
	} else if n > 0 {
		out = append(out, p.canary)
	}
	if n, err := c.Exists(ctx, fmt.Sprintf("post:%d", p.id)).Result(); err != nil {
		return []string{"error: " + err.Error()}
	} else if n > 0 {
		out = append(out, fmt.Sprintf("post:%d", p.id))
	}
	if _, err := c.ZScore(ctx, fmt.Sprintf("pl:%d", p.uid), p.member()).Result(); err == nil {
		out = append(out, fmt.Sprintf("pl:%d member %s", p.uid, p.member()))
	} else if err != redis.Nil {
		return []string{"error: " + err.Error()}
	}
	return out
}

// shardEvent is one state of a cache node as a ZooKeeper watch delivered it.
type shardEvent struct {
	at     time.Time
	doc    shardDoc
	dbsize int64    // on ALIVE: DBSIZE right then (-1 if unreadable)
	left   []string // on ALIVE: planted keys still there
}

// shardWatch records every state of one cache node and, at each ALIVE, what the shard holds.
type shardWatch struct {
	mu      sync.Mutex
	events  []shardEvent
	planted *planted
}

func watchShard(t *testing.T, s *staleStack, i int, c *redis.Client) *shardWatch {
	t.Helper()
	w := &shardWatch{}
	node := s.nodes[i]
	wt := s.conn.WatchData(path.Join(s.layout.CacheNodes(), node), discovery.WatchOptions{OnChange: func(snap discovery.Snapshot) {
		at := time.Now()
		_, doc, err := parseShardDoc(node, snap.Data)
		if err != nil || !snap.Exists {
			return
		}
		ev := shardEvent{at: at, doc: doc, dbsize: -1}
		if doc.Status == discovery.StatusAlive {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if n, err := c.DBSize(ctx).Result(); err == nil {
				ev.dbsize = n
			}
			cancel()
			w.mu.Lock()
			p := w.planted
			w.mu.Unlock()
			if p != nil {
				ev.left = p.present(c)
			}
		}
		w.mu.Lock()
		w.events = append(w.events, ev)
		w.mu.Unlock()
	}})
	t.Cleanup(wt.Stop)
	return w
}

func (w *shardWatch) setPlanted(p planted) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.planted = &p
}

// first returns the first event after since that matches, if any.
func (w *shardWatch) first(since time.Time, match func(shardEvent) bool) (shardEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.events {
		if !ev.at.Before(since) && match(ev) {
			return ev, true
		}
	}
	return shardEvent{}, false
}

func (w *shardWatch) wait(t *testing.T, since time.Time, what string, match func(shardEvent) bool) shardEvent {
	t.Helper()
	var ev shardEvent
	itest.WaitFor(t, 20*time.Second, what, func() bool {
		var ok bool
		ev, ok = w.first(since, match)
		return ok
	})
	return ev
}

// read is one response a reader got.
type read struct {
	start, end time.Time
	via        int    // postsvcd index
	kind       string // "page" or "post"
	status     int
	err        error
	stale      bool
}

// readers hammer one user's first page and the planted post's URL on every postsvcd, keeping
// every response.
type readers struct {
	mu    sync.Mutex
	reads []read
	count atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

// maxReadsEach bounds every reader loop.
const maxReadsEach = 200_000

func startReaders(s *staleStack, p planted) *readers {
	rd := &readers{stop: make(chan struct{})}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	paths := map[string]string{
		"page": fmt.Sprintf("/api/v1/posts/%d?limit=10", p.uid),
		"post": fmt.Sprintf("/api/v1/posts/%d/%d", p.uid, p.id),
	}
	for i, base := range s.posts {
		for kind, pth := range paths {
			rd.wg.Go(func() {
				for range maxReadsEach {
					select {
					case <-rd.stop:
						return
					default:
					}
					r := read{start: time.Now(), via: i, kind: kind}
					resp, err := hc.Get(base + pth)
					if err == nil {
						var b []byte
						b, err = io.ReadAll(resp.Body)
						resp.Body.Close()
						r.status, r.stale = resp.StatusCode, p.in(b)
					}
					r.end, r.err = time.Now(), err
					rd.mu.Lock()
					rd.reads = append(rd.reads, r)
					rd.mu.Unlock()
					rd.count.Add(1)
				}
			})
		}
	}
	return rd
}

// waitMore waits until the readers have completed n more reads.
func (rd *readers) waitMore(t *testing.T, n int64, what string) {
	t.Helper()
	from := rd.count.Load()
	itest.WaitFor(t, 30*time.Second, what, func() bool { return rd.count.Load() >= from+n })
}

func (rd *readers) finish() []read {
	close(rd.stop)
	rd.wg.Wait()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return slices.Clone(rd.reads)
}
