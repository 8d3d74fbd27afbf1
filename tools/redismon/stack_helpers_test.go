package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/internal/testenv/stacktest"
	"github.com/the-red/zkpost/post"
)

// The whole system as real processes, for the stale-read test: stacktest's stack with the first
// cache shard on AOF (so its keys survive kill -9), and on it the redismon binary, guidd,
// writebackd and two postsvcd.

const (
	staleRoot      = "/redismon_stale_read"
	staleNamespace = "stale"
)

type staleStack struct {
	*stacktest.Stack
	r       *rig           // the redismon tests' ZooKeeper helpers, on this stack's root
	monitor *itest.Process // redismon
}

func newStaleStack(t *testing.T) *staleStack {
	t.Helper()
	s := &staleStack{Stack: stacktest.Start(t, stacktest.Options{Root: staleRoot, Namespace: staleNamespace, DurableShard: true})}
	s.r = &rig{zk: s.ZK, conn: s.Conn.ZK(), layout: s.Layout}
	var base string
	s.monitor, base = s.StartDaemon(t, launch.Redismon, "redismon", true, "--probe-interval", "100ms",
		"--probe-timeout", "250ms", "--fail-threshold", "3", "--rise-threshold", "2", "--log-level", "debug")
	// launch waits for /healthz, which a standby answers too: the only redismon must lead.
	itest.WaitFor(t, 40*time.Second, "redismon leading", func() bool { return s.Status(base+"/readyz") == http.StatusOK })
	s.StartDaemon(t, launch.Guidd, "guidd", true)
	s.StartWritebackd(t)
	for range 2 {
		s.StartPostsvcd(t, true, "--coverage-settle", "2s")
	}
	s.WaitRing(t, 3)
	itest.WaitFor(t, 10*time.Second, "redismon adopting every shard's run_id", func() bool {
		for _, node := range s.Nodes {
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
	ring := discovery.NewRing(s.Names)
	for uid := uint64(1); uid < 10_000; uid++ {
		if got, _ := ring.Locate("pl:" + strconv.FormatUint(uid, 10)); got == name {
			return uid
		}
	}
	t.Fatalf("no user of the first 10000 lands on %s", name)
	return 0
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
	node := s.Nodes[i]
	wt := s.Conn.WatchData(path.Join(s.Layout.CacheNodes(), node), discovery.WatchOptions{OnChange: func(snap discovery.Snapshot) {
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
	for i := range s.Addrs {
		base := s.Base(i)
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
