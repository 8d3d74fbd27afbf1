package postsvc_test

import (
	"context"
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

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/internal/testenv/stacktest"
	"github.com/the-red/zkpost/post"
)

const (
	stackRoot      = "/postsvc_stack"
	stackNamespace = "stack"
)

var quiet = slog.New(slog.DiscardHandler)

// stackPostsvcd are the flags of the stack's postsvcds beside stacktest's: coverage settles past
// gocraft/work's 5 s idle polling backoff, the write-back lag bound.
var stackPostsvcd = []string{"--coverage-settle", "6s"}

// newStack is the whole system as real processes (stacktest.Stack, with a MariaDB replica):
// guidd, writebackd, scrapd and two postsvcd, the first of them started while ZooKeeper is down.
func newStack(t testing.TB) *stacktest.Stack {
	t.Helper()
	s := stacktest.Start(t, stacktest.Options{Root: stackRoot, Namespace: stackNamespace, Replica: true})

	// postsvcd must start without ZooKeeper and become ready once it answers.
	s.ZK.Kill()
	s.StartPostsvcd(t, false, stackPostsvcd...)
	base := s.Base(0)
	itest.WaitFor(t, 20*time.Second, "postsvcd healthz while ZooKeeper is down", func() bool { return s.Status(base+"/healthz") == 200 })
	if got := s.Status(base + "/readyz"); got != 503 {
		t.Fatalf("readyz with ZooKeeper down: got %d, want 503", got)
	}
	s.ZK.Start(t)

	s.StartDaemon(t, launch.Guidd, "guidd", true)
	s.StartWritebackd(t)
	s.StartDaemon(t, launch.Scrapd, "scrapd", true, "--allow-cidr", "127.0.0.0/8", "--robots=false")

	itest.WaitFor(t, 40*time.Second, "postsvcd ready after ZooKeeper came up", func() bool { return s.Status(base+"/readyz") == 200 })
	s.StartPostsvcd(t, true, stackPostsvcd...)
	return s
}

func TestStack(t *testing.T) {
	itest.SkipShort(t, "full stack: skipped with -short")
	s := newStack(t)

	t.Run("ReadYourWritesAcrossInstances", func(t *testing.T) {
		for i := range 30 {
			uid := uint64(1 + i%5)
			p := s.MustWrite(t, i, uid, fmt.Sprintf("hello %d", i))
			for via := range s.Addrs {
				pg, err := s.Page(via, uid, 0, 10)
				if err != nil || len(pg.Posts) == 0 || pg.Posts[0].ID != p.ID {
					t.Fatalf("post %d of user %d not first via postsvcd %d: %+v %v", p.ID, uid, via, pg.Posts, err)
				}
			}
		}
	})

	t.Run("BigIDsEveryHop", func(t *testing.T) {
		uid := uint64(1)<<62 + 3
		p := s.MustWrite(t, 0, uid, "big")
		if p.ID < 1<<53 {
			t.Fatalf("guid id %d is not past 2^53; the test would prove nothing", p.ID)
		}
		resp, err := s.HTTP.Get(fmt.Sprintf("%s/api/v1/posts/%d/%d", s.Base(1), uid, p.ID))
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
		s.WaitPersisted(t)
		var dbID, dbUID uint64
		if err := s.SQL.QueryRow("SELECT post_id, user_id FROM posts WHERE post_id = ?", p.ID).Scan(&dbID, &dbUID); err != nil || dbID != p.ID || dbUID != uid {
			t.Fatalf("row: %d %d %v, want %d %d", dbID, dbUID, err, p.ID, uid)
		}
		found := false
		for _, r := range s.Shards {
			m, _ := r.Client(t).ZRange(context.Background(), fmt.Sprintf("pl:%d", uid), 0, -1).Result()
			found = found || slices.Contains(m, fmt.Sprintf("%020d", p.ID))
		}
		if !found {
			t.Fatalf("no shard has member %020d", p.ID)
		}
	})

	t.Run("QueueDownRefusesAndLeavesNothing", func(t *testing.T) {
		uid := uint64(4242)
		s.MustWrite(t, 0, uid, "before the outage")
		s.Queue.Stop()
		const lost = "written while the queue was down"
		for i := range 4 {
			_, code, err := s.Write(i, uid, fmt.Sprintf("%s %d", lost, i), "https://example.com/")
			if err != nil || code != 503 {
				t.Fatalf("write with the queue down: got %d %v, want 503", code, err)
			}
		}
		for via := range s.Addrs {
			pg, err := s.Page(via, uid, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pg.Posts {
				if strings.HasPrefix(p.Contents, lost) {
					t.Fatalf("refused post %d visible via postsvcd %d", p.ID, via)
				}
			}
		}
		s.Queue.Start(t)
		var after post.Post
		itest.WaitFor(t, 20*time.Second, "writes accepted again after the queue is back", func() bool {
			p, code, err := s.Write(0, uid, "after the outage", "")
			after = p
			return err == nil && code == 201
		})
		s.WaitPersisted(t)
		var n int
		if err := s.SQL.QueryRow("SELECT COUNT(*) FROM posts WHERE contents LIKE ?", lost+"%").Scan(&n); err != nil || n != 0 {
			t.Fatalf("refused posts in the database: %d %v", n, err)
		}
		if got := s.Walk(t, 1, uid, 10); len(got) != 2 || got[0] != after.ID {
			t.Fatalf("timeline after the outage: %v", got)
		}
	})

	t.Run("ShardKilledThenMarkedDown", func(t *testing.T) {
		dead := 1
		s.Shards[dead].Kill()
		// Until ZooKeeper says otherwise, the ring keeps the shard: requests fall back per call.
		for i := range 40 {
			uid := uint64(100 + i%8)
			p := s.MustWrite(t, i, uid, "shard dead, not yet marked")
			itest.WaitFor(t, 20*time.Second, "post visible (cache or, for the dead shard's users, once persisted)", func() bool {
				pg, err := s.Page(i+1, uid, 0, 10)
				if err != nil {
					t.Fatalf("read with a dead shard failed: %v", err)
				}
				return len(pg.Posts) > 0 && pg.Posts[0].ID == p.ID
			})
		}
		for via := range s.Addrs {
			if got := s.RingMembers(via); got != "3" {
				t.Fatalf("postsvcd %d changed its ring without ZooKeeper: %s members", via, got)
			}
		}
		s.SetNode(t, s.CacheNode(dead), []byte(`{"status":"DOWN","epoch":1}`))
		s.WaitRing(t, 2)
		for i := range 20 {
			s.MustWrite(t, i, uint64(100+i%8), "shard marked down")
		}
		s.CheckWalks(t, "shard down")
		// redismon brings it back: restart, flush, ALIVE with a new epoch.
		s.Shards[dead].Start(t)
		s.Shards[dead].Client(t).FlushAll(context.Background())
		s.SetNode(t, s.CacheNode(dead), []byte(`{"status":"ALIVE","epoch":2}`))
		s.WaitRing(t, 3)
		for i := range 20 {
			s.MustWrite(t, i, uint64(100+i%8), "shard back")
		}
		s.CheckWalks(t, "shard back")
	})

	t.Run("ZooKeeperRestartUnderLoad", func(t *testing.T) {
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
					_, code, err := s.Write(w+i, uint64(200+w), fmt.Sprintf("load %d/%d", w, i), "")
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
		s.ZK.Kill()
		// Writes keep coming while ZooKeeper is down (guidd answers 503 once its session is lost:
		// those writes are refused, never half-done).
		itest.WaitFor(t, 20*time.Second, "load while ZooKeeper is down", under(50))
		s.ZK.Start(t)
		for via := range s.Addrs {
			itest.WaitFor(t, 30*time.Second, "postsvcd ready after the ZooKeeper restart", func() bool {
				return s.Status(s.Base(via)+"/readyz") == 200
			})
		}
		itest.WaitFor(t, 30*time.Second, "both postsvcd registered again", func() bool {
			kids, _, err := s.Conn.ZK().Children(s.Layout.Nodes("postsvc"))
			return err == nil && len(kids) == len(s.Addrs)
		})
		cancel()
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("writes failed other than with 503: %v", failures[:min(5, len(failures))])
		}
		s.CheckWalks(t, "after ZooKeeper restart")
	})

	t.Run("ModelAgainstDatabase", func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		users := []uint64{300, 300, 300, 301, 302, 1<<63 + 303} // 300 gets half: its list is trimmed
		inRing := []bool{true, true, true}
		down := []bool{false, false, false}
		ctx := context.Background()
		for op := range 500 {
			uid := users[rnd.IntN(len(users))]
			switch r := rnd.IntN(100); {
			case r < 75:
				s.MustWrite(t, op, uid, fmt.Sprintf("model %d", op))
			case r < 80: // a shard leaves R/cache/nodes (deleted, or marked DOWN) or comes back
				i := rnd.IntN(len(s.Shards))
				if inRing[i] {
					if rnd.IntN(2) == 0 {
						s.Conn.ZK().Delete(s.CacheNode(i), -1)
					} else {
						s.SetNode(t, s.CacheNode(i), []byte(`{"status":"DOWN"}`))
						down[i] = true
					}
				} else {
					if down[i] {
						s.Shards[i].Client(t).FlushAll(ctx) // redismon flushes before ALIVE
						down[i] = false
					}
					s.SetNode(t, s.CacheNode(i), nil)
				}
				inRing[i] = !inRing[i]
				n := 0
				for _, in := range inRing {
					if in {
						n++
					}
				}
				s.WaitRing(t, n)
			case r < 84: // TTL expiry of a user's keys
				for _, sh := range s.Shards {
					c := sh.Client(t)
					switch rnd.IntN(3) {
					case 0:
						c.Del(ctx, fmt.Sprintf("pl:%d", uid))
					case 1:
						c.Del(ctx, fmt.Sprintf("plc:%d", uid))
					default:
						s.WaitPersisted(t) // a body expires long after its post is persisted
						if keys, err := c.Keys(ctx, "post:*").Result(); err == nil && len(keys) > 0 {
							c.Del(ctx, keys[rnd.IntN(len(keys))])
						}
					}
				}
			default:
				if _, err := s.Page(op, uid, 0, 1+rnd.IntN(12)); err != nil {
					t.Fatalf("op %d: read failed: %v", op, err)
				}
			}
			if op%125 == 124 {
				s.CheckWalks(t, fmt.Sprintf("model op %d", op))
			}
		}
		// Leave every shard on the ring for the subtests that follow.
		for i := range s.Shards {
			if !inRing[i] {
				if down[i] {
					s.Shards[i].Client(t).FlushAll(ctx)
				}
				s.SetNode(t, s.CacheNode(i), nil)
			}
		}
		s.WaitRing(t, 3)
		s.CheckWalks(t, "model end")
	})

	t.Run("LinkPreviewThroughScrapdAndDemo", func(t *testing.T) {
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
			p, code, err = s.Write(0, 500, "<b>look</b>", link)
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
			for _, r := range s.Shards {
				if n, _ := r.Client(t).Exists(context.Background(), "url:"+link).Result(); n == 1 {
					return true
				}
			}
			s.Write(1, 500, "again", link)
			return false
		})
		resp, err := s.HTTP.Get(s.Base(1) + "/demo?user_id=500")
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
		last := s.Posts[len(s.Posts)-1]
		last.Stop()
		kids, _, err := s.Conn.ZK().Children(s.Layout.Nodes("postsvc"))
		if err != nil || slices.Contains(kids, s.Addrs[len(s.Addrs)-1]) {
			t.Fatalf("stopped postsvcd still registered: %v %v", kids, err)
		}
		if !strings.Contains(last.Log(), "stopped") {
			t.Fatalf("postsvcd did not shut down cleanly:\n%s", last.Log())
		}
	})
}
