package postsvc_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/internal/testenv/stacktest"
	"github.com/the-red/zkpost/post"
)

const (
	stackRoot      = "/postsvc_stack"
	stackNamespace = "stack"
)

var quiet = slog.New(slog.DiscardHandler)

// stack is the whole system as real processes: ZooKeeper, three cache Redis shards, the queue
// Redis (AOF), a MariaDB primary and replica, guidd, writebackd and two postsvcd.
type stack struct {
	t       testing.TB
	zk      *itest.ZooKeeper
	conn    *discovery.Conn
	layout  discovery.Layout
	shards  []*itest.Redis
	queue   *itest.Redis
	db      *itest.MariaDB
	sql     *sql.DB
	posts   []*itest.Process // postsvcd
	addrs   []string
	hc      *http.Client
	ackedMu sync.Mutex
	acked   map[uint64][]uint64 // user → acknowledged post ids
}

// setNode writes a persistent node, retrying while the test's own ZooKeeper connection is
// between sessions (a loaded machine can stall the JVM past the session timeout).
func setNode(t testing.TB, conn *discovery.Conn, p string, data []byte) {
	t.Helper()
	var err error
	ok := itest.Eventually(20*time.Second, func() bool {
		if err = conn.EnsurePath(p); err == nil {
			_, err = conn.ZK().Set(p, data, -1)
		}
		return err == nil
	})
	if !ok {
		t.Fatalf("setting %s: %v", p, err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (s *stack) cacheNode(i int) string {
	return s.layout.CacheNodes() + "/" + discovery.CacheNodeName(fmt.Sprintf("redis%d", i+1), s.shards[i].Addr())
}

func (s *stack) startPostsvcd(t testing.TB, wait bool) *itest.Process {
	t.Helper()
	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	spec := itest.DaemonSpec{
		Name: "postsvcd" + strconv.Itoa(len(s.posts)+1),
		Bin:  itest.BuildBinary(t, "./postsvc/cmd/postsvcd"),
		Args: []string{"--listen", addr, "--zk", s.zk.Addr(), "--zk-root", stackRoot, "--zk-session-timeout", "2s",
			"--db-user", "root", "--db-name", "zkpost", "--queue-namespace", stackNamespace,
			// Settle past gocraft/work's 5 s idle polling backoff, the write-back lag bound.
			"--coverage-settle", "6s", "--list-max", "101", "--cache-timeout", "300ms", "--log-format", "text", "--log-level", "debug"},
		Port:         port,
		ReadyURL:     "http://" + addr + "/readyz",
		ReadyTimeout: 40 * time.Second,
	}
	var p *itest.Process
	if wait {
		p = itest.StartDaemon(t, spec)
	} else {
		p = itest.StartDaemonNoWait(t, spec)
	}
	s.posts = append(s.posts, p)
	s.addrs = append(s.addrs, addr)
	return p
}

func newStack(t testing.TB) *stack {
	t.Helper()
	s := &stack{t: t, layout: discovery.Layout{Root: stackRoot}, hc: &http.Client{Timeout: 15 * time.Second},
		acked: map[uint64][]uint64{}}
	s.zk = itest.StartZooKeeper(t)
	for range 3 {
		s.shards = append(s.shards, itest.StartRedis(t, itest.RedisOptions{}))
	}
	s.queue = itest.StartRedis(t, itest.RedisOptions{AOF: true})
	s.db = itest.StartMariaDB(t)
	s.sql = s.db.DB(t, "zkpost")
	replica := itest.StartMariaDBReplica(t, s.db)
	conn, err := discovery.Dial(discovery.Config{Servers: s.zk.Addr(), SessionTimeout: 2 * time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	s.conn = conn
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := conn.WaitSession(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range s.shards {
		setNode(t, conn, s.cacheNode(i), nil)
	}
	setNode(t, conn, s.layout.Queue(), mustJSON(discovery.QueueEndpoints{Primary: s.queue.Addr()}))
	setNode(t, conn, s.layout.DB(), mustJSON(discovery.DBEndpoints{Primary: s.db.Addr(), Replicas: []string{replica.Addr()}}))

	// postsvcd must start without ZooKeeper and become ready once it answers.
	s.zk.Kill()
	first := s.startPostsvcd(t, false)
	base := "http://" + s.addrs[0]
	itest.WaitFor(t, 20*time.Second, "postsvcd healthz while ZooKeeper is down", func() bool { return s.status(base+"/healthz") == 200 })
	if got := s.status(base + "/readyz"); got != 503 {
		t.Fatalf("readyz with ZooKeeper down: got %d, want 503", got)
	}
	s.zk.Start(t)

	guidPort := itest.FreePort(t)
	itest.StartDaemon(t, itest.DaemonSpec{Name: "guidd", Bin: itest.BuildBinary(t, "./guid/cmd/guidd"),
		Args: []string{"--listen", "127.0.0.1:" + strconv.Itoa(guidPort), "--zk", s.zk.Addr(), "--zk-root", stackRoot,
			"--zk-session-timeout", "2s", "--log-format", "text"},
		Port: guidPort, ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", guidPort), ReadyTimeout: 40 * time.Second})
	wbPort := itest.FreePort(t)
	itest.StartDaemon(t, itest.DaemonSpec{Name: "writebackd", Bin: itest.BuildBinary(t, "./writeback/cmd/writebackd"),
		Args: []string{"--listen", "127.0.0.1:" + strconv.Itoa(wbPort), "--zk", s.zk.Addr(), "--zk-root", stackRoot,
			"--zk-session-timeout", "2s", "--db-user", "root", "--db-name", "zkpost", "--queue-namespace", stackNamespace,
			"--log-format", "text"},
		Port: wbPort, ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", wbPort), ReadyTimeout: 40 * time.Second})

	scrapPort := itest.FreePort(t)
	itest.StartDaemon(t, itest.DaemonSpec{Name: "scrapd", Bin: itest.BuildBinary(t, "./scrap/cmd/scrapd"),
		Args: []string{"--listen", "127.0.0.1:" + strconv.Itoa(scrapPort), "--zk", s.zk.Addr(), "--zk-root", stackRoot,
			"--zk-session-timeout", "2s", "--allow-cidr", "127.0.0.0/8", "--robots=false", "--log-format", "text"},
		Port: scrapPort, ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", scrapPort), ReadyTimeout: 40 * time.Second})

	itest.WaitFor(t, 40*time.Second, "postsvcd ready after ZooKeeper came up", func() bool { return s.status(base+"/readyz") == 200 })
	_ = first
	s.startPostsvcd(t, true)
	return s
}

func (s *stack) status(u string) int {
	resp, err := s.hc.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *stack) base(i int) string { return "http://" + s.addrs[i%len(s.addrs)] }

// write posts through postsvcd i and records the post when acknowledged.
func (s *stack) write(i int, uid uint64, contents, link string) (post.Post, int, error) {
	body := mustJSON(map[string]any{"user_id": uid, "contents": contents, "url": link})
	resp, err := s.hc.Post(s.base(i)+"/api/v1/posts", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return post.Post{}, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		return post.Post{}, resp.StatusCode, nil
	}
	var p post.Post
	if err := json.Unmarshal(b, &p); err != nil {
		return post.Post{}, resp.StatusCode, fmt.Errorf("decoding %s: %w", b, err)
	}
	s.ackedMu.Lock()
	s.acked[uid] = append(s.acked[uid], p.ID)
	s.ackedMu.Unlock()
	return p, 201, nil
}

func (s *stack) mustWrite(i int, uid uint64, contents string) post.Post {
	s.t.Helper()
	p, code, err := s.write(i, uid, contents, "")
	if err != nil || code != 201 {
		s.t.Fatalf("write via postsvcd %d: %d %v", i, code, err)
	}
	return p
}

// page is one timeline page (stacktest's, which every stack test reads).
type page = stacktest.Page

func (s *stack) page(i int, uid, f uint64, limit int) (page, error) {
	return stacktest.Client{HTTP: s.hc, Base: s.base(i)}.Page(uid, f, limit)
}

func (s *stack) walk(i int, uid uint64, limit int) []uint64 {
	s.t.Helper()
	return stacktest.Walk(s.t, uid, limit, func(f uint64) (page, error) { return s.page(i, uid, f, limit) })
}

// truth returns the ids of uid's rows in the primary, newest first.
func (s *stack) truth(uid uint64) []uint64 {
	s.t.Helper()
	return stacktest.Truth(s.t, s.sql, uid)
}

// waitPersisted waits until every acknowledged post is in the primary exactly once.
func (s *stack) waitPersisted() {
	s.t.Helper()
	itest.WaitFor(s.t, 60*time.Second, "every acknowledged post persisted", func() bool {
		s.ackedMu.Lock()
		defer s.ackedMu.Unlock()
		for uid, ids := range s.acked {
			got := s.truth(uid)
			if len(got) != len(ids) {
				return false
			}
			for _, id := range ids {
				if !slices.Contains(got, id) {
					return false
				}
			}
		}
		return true
	})
}

// checkAllWalks compares every user's walk, through every postsvcd, with the database.
func (s *stack) checkAllWalks(label string) {
	s.t.Helper()
	s.waitPersisted()
	s.ackedMu.Lock()
	users := make([]uint64, 0, len(s.acked))
	for uid := range s.acked {
		users = append(users, uid)
	}
	s.ackedMu.Unlock()
	for _, uid := range users {
		want := s.truth(uid)
		// Replicas may lag a moment behind the primary: poll for the first walk only.
		for i := range s.addrs {
			for _, limit := range []int{1, 4, 10} {
				var got []uint64
				if !itest.Eventually(3*time.Second, func() bool { got = s.walk(i, uid, limit); return slices.Equal(got, want) }) {
					s.t.Fatalf("%s: user %d via postsvcd %d limit %d:\n got %v\nwant %v", label, uid, i, limit, got, want)
				}
			}
		}
	}
}

func (s *stack) ringMembers(i int) string {
	resp, err := s.hc.Get(s.base(i) + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "postsvc_cache_ring_members "); ok {
			return v
		}
	}
	return ""
}

func TestStack(t *testing.T) {
	itest.SkipShort(t, "full stack: skipped with -short")
	s := newStack(t)

	t.Run("ReadYourWritesAcrossInstances", func(t *testing.T) {
		s.t = t
		for i := range 30 {
			uid := uint64(1 + i%5)
			p := s.mustWrite(i, uid, fmt.Sprintf("hello %d", i))
			for via := range s.addrs {
				pg, err := s.page(via, uid, 0, 10)
				if err != nil || len(pg.Posts) == 0 || pg.Posts[0].ID != p.ID {
					t.Fatalf("post %d of user %d not first via postsvcd %d: %+v %v", p.ID, uid, via, pg.Posts, err)
				}
			}
		}
	})

	t.Run("BigIDsEveryHop", func(t *testing.T) {
		s.t = t
		uid := uint64(1)<<62 + 3
		p := s.mustWrite(0, uid, "big")
		if p.ID < 1<<53 {
			t.Fatalf("guid id %d is not past 2^53; the test would prove nothing", p.ID)
		}
		resp, err := s.hc.Get(fmt.Sprintf("%s/api/v1/posts/%d/%d", s.base(1), uid, p.ID))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		idText := strconv.FormatUint(p.ID, 10)
		if !strings.Contains(string(raw), `"post_id":`+idText+",") || !strings.Contains(string(raw), `"post_id_str":"`+idText+`"`) ||
			!strings.Contains(string(raw), fmt.Sprintf(`"user_id":%d,`, uid)) {
			t.Fatalf("post JSON %s lost id %s or user %d", raw, idText, uid)
		}
		s.waitPersisted()
		var dbID, dbUID uint64
		if err := s.sql.QueryRow("SELECT post_id, user_id FROM posts WHERE post_id = ?", p.ID).Scan(&dbID, &dbUID); err != nil || dbID != p.ID || dbUID != uid {
			t.Fatalf("row: %d %d %v, want %d %d", dbID, dbUID, err, p.ID, uid)
		}
		found := false
		for _, r := range s.shards {
			m, _ := r.Client(t).ZRange(context.Background(), fmt.Sprintf("pl:%d", uid), 0, -1).Result()
			found = found || slices.Contains(m, fmt.Sprintf("%020d", p.ID))
		}
		if !found {
			t.Fatalf("no shard has member %020d", p.ID)
		}
	})

	t.Run("QueueDownRefusesAndLeavesNothing", func(t *testing.T) {
		s.t = t
		uid := uint64(4242)
		s.mustWrite(0, uid, "before the outage")
		s.queue.Stop()
		const lost = "written while the queue was down"
		for i := range 4 {
			_, code, err := s.write(i, uid, fmt.Sprintf("%s %d", lost, i), "https://example.com/")
			if err != nil || code != 503 {
				t.Fatalf("write with the queue down: got %d %v, want 503", code, err)
			}
		}
		for via := range s.addrs {
			pg, err := s.page(via, uid, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pg.Posts {
				if strings.HasPrefix(p.Contents, lost) {
					t.Fatalf("refused post %d visible via postsvcd %d", p.ID, via)
				}
			}
		}
		s.queue.Start(t)
		var after post.Post
		itest.WaitFor(t, 20*time.Second, "writes accepted again after the queue is back", func() bool {
			p, code, err := s.write(0, uid, "after the outage", "")
			after = p
			return err == nil && code == 201
		})
		s.waitPersisted()
		var n int
		if err := s.sql.QueryRow("SELECT COUNT(*) FROM posts WHERE contents LIKE ?", lost+"%").Scan(&n); err != nil || n != 0 {
			t.Fatalf("refused posts in the database: %d %v", n, err)
		}
		if got := s.walk(1, uid, 10); len(got) != 2 || got[0] != after.ID {
			t.Fatalf("timeline after the outage: %v", got)
		}
	})

	t.Run("ShardKilledThenMarkedDown", func(t *testing.T) {
		s.t = t
		dead := 1
		s.shards[dead].Kill()
		// Until ZooKeeper says otherwise, the ring keeps the shard: requests fall back per call.
		for i := range 40 {
			uid := uint64(100 + i%8)
			p := s.mustWrite(i, uid, "shard dead, not yet marked")
			itest.WaitFor(t, 20*time.Second, "post visible (cache or, for the dead shard's users, once persisted)", func() bool {
				pg, err := s.page(i+1, uid, 0, 10)
				if err != nil {
					t.Fatalf("read with a dead shard failed: %v", err)
				}
				return len(pg.Posts) > 0 && pg.Posts[0].ID == p.ID
			})
		}
		for via := range s.addrs {
			if got := s.ringMembers(via); got != "3" {
				t.Fatalf("postsvcd %d changed its ring without ZooKeeper: %s members", via, got)
			}
		}
		setNode(t, s.conn, s.cacheNode(dead), []byte(`{"status":"DOWN","epoch":1}`))
		for via := range s.addrs {
			itest.WaitFor(t, 20*time.Second, "ring of 2 in every postsvcd", func() bool { return s.ringMembers(via) == "2" })
		}
		for i := range 20 {
			s.mustWrite(i, uint64(100+i%8), "shard marked down")
		}
		s.checkAllWalks("shard down")
		// redismon brings it back: restart, flush, ALIVE with a new epoch.
		s.shards[dead].Start(t)
		s.shards[dead].Client(t).FlushAll(context.Background())
		setNode(t, s.conn, s.cacheNode(dead), []byte(`{"status":"ALIVE","epoch":2}`))
		for via := range s.addrs {
			itest.WaitFor(t, 20*time.Second, "ring of 3 again", func() bool { return s.ringMembers(via) == "3" })
		}
		for i := range 20 {
			s.mustWrite(i, uint64(100+i%8), "shard back")
		}
		s.checkAllWalks("shard back")
	})

	t.Run("ZooKeeperRestartUnderLoad", func(t *testing.T) {
		s.t = t
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var failMu sync.Mutex
		var failures []string
		var attempts atomic.Int64
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					_, code, err := s.write(w+i, uint64(200+w), fmt.Sprintf("load %d/%d", w, i), "")
					attempts.Add(1)
					if err != nil || (code != 201 && code != 503) {
						failMu.Lock()
						failures = append(failures, fmt.Sprintf("%d %v", code, err))
						failMu.Unlock()
					}
				}
			}()
		}
		under := func(n int64) func() bool {
			start := attempts.Load()
			return func() bool { return attempts.Load() >= start+n }
		}
		itest.WaitFor(t, 20*time.Second, "load before the restart", under(50))
		s.zk.Kill()
		// Writes keep coming while ZooKeeper is down (guidd answers 503 once its session is lost:
		// those writes are refused, never half-done).
		itest.WaitFor(t, 20*time.Second, "load while ZooKeeper is down", under(50))
		s.zk.Start(t)
		for via := range s.addrs {
			itest.WaitFor(t, 30*time.Second, "postsvcd ready after the ZooKeeper restart", func() bool {
				return s.status(s.base(via)+"/readyz") == 200
			})
		}
		itest.WaitFor(t, 30*time.Second, "both postsvcd registered again", func() bool {
			kids, _, err := s.conn.ZK().Children(s.layout.Nodes("postsvc"))
			return err == nil && len(kids) == len(s.addrs)
		})
		cancel()
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("writes failed other than with 503: %v", failures[:min(5, len(failures))])
		}
		s.checkAllWalks("after ZooKeeper restart")
	})

	t.Run("ModelAgainstDatabase", func(t *testing.T) {
		s.t = t
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		users := []uint64{300, 300, 300, 301, 302, 1<<63 + 303} // 300 gets half: its list is trimmed
		inRing := []bool{true, true, true}
		down := []bool{false, false, false}
		ctx := context.Background()
		for op := range 500 {
			uid := users[rnd.IntN(len(users))]
			switch r := rnd.IntN(100); {
			case r < 75:
				s.mustWrite(op, uid, fmt.Sprintf("model %d", op))
			case r < 80: // a shard leaves R/cache/nodes (deleted, or marked DOWN) or comes back
				i := rnd.IntN(len(s.shards))
				if inRing[i] {
					if rnd.IntN(2) == 0 {
						s.conn.ZK().Delete(s.cacheNode(i), -1)
					} else {
						setNode(t, s.conn, s.cacheNode(i), []byte(`{"status":"DOWN"}`))
						down[i] = true
					}
				} else {
					if down[i] {
						s.shards[i].Client(t).FlushAll(ctx) // redismon flushes before ALIVE
						down[i] = false
					}
					setNode(t, s.conn, s.cacheNode(i), nil)
				}
				inRing[i] = !inRing[i]
				n := 0
				for _, in := range inRing {
					if in {
						n++
					}
				}
				for via := range s.addrs {
					itest.WaitFor(t, 20*time.Second, "ring change in every postsvcd", func() bool { return s.ringMembers(via) == strconv.Itoa(n) })
				}
			case r < 84: // TTL expiry of a user's keys
				for _, sh := range s.shards {
					c := sh.Client(t)
					switch rnd.IntN(3) {
					case 0:
						c.Del(ctx, fmt.Sprintf("pl:%d", uid))
					case 1:
						c.Del(ctx, fmt.Sprintf("plc:%d", uid))
					default:
						s.waitPersisted() // a body expires long after its post is persisted
						if keys, err := c.Keys(ctx, "post:*").Result(); err == nil && len(keys) > 0 {
							c.Del(ctx, keys[rnd.IntN(len(keys))])
						}
					}
				}
			default:
				if _, err := s.page(op, uid, 0, 1+rnd.IntN(12)); err != nil {
					t.Fatalf("op %d: read failed: %v", op, err)
				}
			}
			if op%125 == 124 {
				s.checkAllWalks(fmt.Sprintf("model op %d", op))
			}
		}
		// Leave every shard on the ring for the subtests that follow.
		for i := range s.shards {
			if !inRing[i] {
				if down[i] {
					s.shards[i].Client(t).FlushAll(ctx)
				}
				setNode(t, s.conn, s.cacheNode(i), nil)
			}
		}
		for via := range s.addrs {
			itest.WaitFor(t, 20*time.Second, "all shards back on the ring", func() bool { return s.ringMembers(via) == "3" })
		}
		s.checkAllWalks("model end")
	})

	t.Run("LinkPreviewThroughScrapdAndDemo", func(t *testing.T) {
		s.t = t
		site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<html><head><meta property="og:title" content="&lt;script&gt;alert(1)&lt;/script&gt; Title">
<meta property="og:description" content="A page"><meta property="og:image" content="javascript:alert(2)">
<meta property="og:site_name" content="Site"></head><body></body></html>`)
		}))
		defer site.Close()
		link := site.URL + "/page?a=1&b=2"
		var p post.Post
		itest.WaitFor(t, 20*time.Second, "a post with its preview (scrapd discovered)", func() bool {
			var code int
			var err error
			p, code, err = s.write(0, 500, "<b>look</b>", link)
			return err == nil && code == 201 && strings.Contains(string(p.Scrap), "Title")
		})
		var sc struct{ Title, Image string }
		json.Unmarshal(p.Scrap, &sc)
		if sc.Title != "<script>alert(1)</script> Title" {
			t.Fatalf("preview title %q", sc.Title)
		}
		// A cache write can time out on a loaded machine (the post is written anyway): the next
		// write of the link caches it.
		itest.WaitFor(t, 20*time.Second, "the preview cached under url:<url>", func() bool {
			for _, r := range s.shards {
				if n, _ := r.Client(t).Exists(context.Background(), "url:"+link).Result(); n == 1 {
					return true
				}
			}
			s.write(1, 500, "again", link)
			return false
		})
		resp, err := s.hc.Get(s.base(1) + "/demo?user_id=500")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The page's own script is allowed; a script from the preview is not.
		for _, bad := range []string{"<script>alert", "<b>look", `src="javascript`} {
			if strings.Contains(string(page), bad) {
				t.Fatalf("demo page contains %q", bad)
			}
		}
		if !strings.Contains(string(page), "&lt;script&gt;alert(1)&lt;/script&gt; Title") {
			t.Fatalf("demo page lacks the escaped title:\n%s", page)
		}
	})

	t.Run("GracefulShutdownDeregisters", func(t *testing.T) {
		s.t = t
		last := s.posts[len(s.posts)-1]
		last.Stop()
		kids, _, err := s.conn.ZK().Children(s.layout.Nodes("postsvc"))
		if err != nil || slices.Contains(kids, s.addrs[len(s.addrs)-1]) {
			t.Fatalf("stopped postsvcd still registered: %v %v", kids, err)
		}
		if !strings.Contains(last.Log(), "stopped") {
			t.Fatalf("postsvcd did not shut down cleanly:\n%s", last.Log())
		}
	})
}
