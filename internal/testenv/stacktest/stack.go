package stacktest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
)

// Options say what differs between two stacks.
type Options struct {
	// Root is the ZooKeeper root (--zk-root) and Namespace the queue's (--queue-namespace): each
	// stack has its own, so two never share a node or a job.
	Root, Namespace string
	// DurableShard gives the first cache shard (redis1) an append-only file, so its keys survive
	// kill -9 as a stale shard's would.
	DurableShard bool
	// Replica adds a MariaDB replica, named in ZooKeeper as the database's read replica.
	Replica bool
}

// sessionTimeout is every daemon's ZooKeeper session timeout: a killed one leaves quickly.
const sessionTimeout = 2 * time.Second

// daemonReady bounds a daemon's start on a loaded test machine.
const daemonReady = 40 * time.Second

// Stack is the whole system as real processes on loopback (docs/tests.md#the-shared-stack):
// ZooKeeper, three cache Redis shards, the queue Redis (AOF), a MariaDB primary (and replica),
// and the daemons a test starts on it with StartDaemon and StartPostsvcd. It remembers every
// acknowledged post, so walks can be checked against the database.
type Stack struct {
	Opts    Options
	ZK      *itest.ZooKeeper
	Conn    *discovery.Conn // the test's own session, on Opts.Root
	Layout  discovery.Layout
	Names   []string // shard names, redis1 first
	Shards  []*itest.Redis
	Nodes   []string // the shards' node names in R/cache/nodes
	Queue   *itest.Redis
	DB      *itest.MariaDB // the primary
	SQL     *sql.DB        // the primary's zkpost database
	Replica *itest.MariaDB // nil without Opts.Replica
	Posts   []*itest.Process
	Addrs   []string // the postsvcds' host:port, in start order
	HTTP    *http.Client

	ackedMu sync.Mutex
	acked   map[uint64][]uint64 // user → acknowledged post ids
}

// Start starts the servers and writes what zoo_setup would: every shard ALIVE, the queue and
// the database endpoints. It starts no daemon.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	s := &Stack{Opts: opts, Layout: discovery.Layout{Root: opts.Root}, HTTP: &http.Client{Timeout: 15 * time.Second},
		acked: map[uint64][]uint64{}}
	s.ZK = itest.StartZooKeeper(t)
	for i := range 3 {
		s.Names = append(s.Names, fmt.Sprintf("redis%d", i+1))
		s.Shards = append(s.Shards, itest.StartRedis(t, itest.RedisOptions{AOF: opts.DurableShard && i == 0}))
		s.Nodes = append(s.Nodes, discovery.CacheNodeName(s.Names[i], s.Shards[i].Addr()))
	}
	s.Queue = itest.StartRedis(t, itest.RedisOptions{AOF: true})
	s.DB = itest.StartMariaDB(t)
	s.SQL = s.DB.DB(t, "zkpost")
	db := discovery.DBEndpoints{Primary: s.DB.Addr()}
	if opts.Replica {
		s.Replica = itest.StartMariaDBReplica(t, s.DB)
		db.Replicas = []string{s.Replica.Addr()}
	}
	s.Conn = dial(t, s.ZK, opts.Root)
	for i := range s.Shards {
		s.SetNode(t, s.CacheNode(i), nil)
	}
	s.SetNode(t, s.Layout.Queue(), mustJSON(discovery.QueueEndpoints{Primary: s.Queue.Addr()}))
	s.SetNode(t, s.Layout.DB(), mustJSON(db))
	return s
}

func dial(t testing.TB, z *itest.ZooKeeper, root string) *discovery.Conn {
	t.Helper()
	conn, err := discovery.Dial(discovery.Config{Servers: z.Addr(), Root: root, SessionTimeout: sessionTimeout},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := conn.WaitSession(ctx); err != nil {
		t.Fatalf("waiting for the test's ZooKeeper session: %v", err)
	}
	return conn
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// CacheNode returns the path of shard i's node in R/cache/nodes.
func (s *Stack) CacheNode(i int) string { return path.Join(s.Layout.CacheNodes(), s.Nodes[i]) }

// SetNode writes the persistent node p (creating it and its parents), retrying while the
// test's own session is between sessions (a loaded machine can stall the JVM past the timeout).
func (s *Stack) SetNode(t testing.TB, p string, data []byte) {
	t.Helper()
	var err error
	ok := itest.Eventually(20*time.Second, func() bool {
		if err = s.Conn.EnsurePath(p); err == nil {
			_, err = s.Conn.Set(p, data, -1)
		}
		return err == nil
	})
	if !ok {
		t.Fatalf("setting %s: %v", p, err)
	}
}

// StartDaemon starts prog as internal/launch describes it, on this stack's ZooKeeper and
// database, with text logs and extra flags, and returns its process and its base URL. With
// wait it returns once prog's readiness path answers 200; name tells two instances apart in logs.
func (s *Stack) StartDaemon(t testing.TB, prog launch.Program, name string, wait bool, extra ...string) (*itest.Process, string) {
	t.Helper()
	listen := "127.0.0.1:" + strconv.Itoa(itest.FreePort(t))
	in := launch.Instance{Listen: listen, ZK: s.ZK.Addr(), ZKRoot: s.Opts.Root, ZKSessionTimeout: sessionTimeout,
		DB: launch.Account{User: "root", Name: "zkpost"}}
	spec := itest.Launch(t, prog, in, append([]string{"--log-format", "text"}, extra...)...)
	spec.Name, spec.ReadyTimeout = name, daemonReady
	if !wait {
		return itest.StartDaemonNoWait(t, spec), "http://" + listen
	}
	return itest.StartDaemon(t, spec), "http://" + listen
}

// StartPostsvcd starts one more postsvcd on the stack's queue namespace, with the small list
// bound (101) and cache timeout (300ms) the stack tests page and fail over with, and extra.
func (s *Stack) StartPostsvcd(t testing.TB, wait bool, extra ...string) *itest.Process {
	t.Helper()
	args := append([]string{"--queue-namespace", s.Opts.Namespace, "--list-max", "101", "--cache-timeout", "300ms",
		"--log-level", "debug"}, extra...)
	p, base := s.StartDaemon(t, launch.Postsvcd, "postsvcd"+strconv.Itoa(len(s.Posts)+1), wait, args...)
	s.Posts = append(s.Posts, p)
	s.Addrs = append(s.Addrs, strings.TrimPrefix(base, "http://"))
	return p
}

// StartWritebackd starts a writebackd on the stack's queue namespace.
func (s *Stack) StartWritebackd(t testing.TB) *itest.Process {
	t.Helper()
	p, _ := s.StartDaemon(t, launch.Writebackd, "writebackd", true, "--queue-namespace", s.Opts.Namespace)
	return p
}

// Base returns postsvcd i's base URL (i modulo their number, so a loop spreads over them).
func (s *Stack) Base(i int) string { return "http://" + s.Addrs[i%len(s.Addrs)] }

// Status returns the status of a GET of url, 0 when the request failed.
func (s *Stack) Status(url string) int {
	resp, err := s.HTTP.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Write posts through postsvcd i and, when it is acknowledged (201), records the post. A status
// other than 201 is returned with no error.
func (s *Stack) Write(i int, uid uint64, contents, link string) (post.Post, int, error) {
	body := mustJSON(map[string]any{"user_id": uid, "contents": contents, "url": link})
	resp, err := s.HTTP.Post(s.Base(i)+"/api/v1/posts", "application/json", bytes.NewReader(body))
	if err != nil {
		return post.Post{}, 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return post.Post{}, resp.StatusCode, nil
	}
	var p post.Post
	if err := json.Unmarshal(b, &p); err != nil {
		return post.Post{}, resp.StatusCode, fmt.Errorf("decoding %s: %w", b, err)
	}
	s.ackedMu.Lock()
	s.acked[uid] = append(s.acked[uid], p.ID)
	s.ackedMu.Unlock()
	return p, resp.StatusCode, nil
}

// MustWrite is Write that fails t unless the post is acknowledged.
func (s *Stack) MustWrite(t testing.TB, i int, uid uint64, contents string) post.Post {
	t.Helper()
	p, code, err := s.Write(i, uid, contents, "")
	if err != nil || code != http.StatusCreated {
		t.Fatalf("write via postsvcd %d: got %d %v, want 201", i%len(s.Addrs), code, err)
	}
	return p
}

// Client reads timelines from postsvcd i.
func (s *Stack) Client(i int) Client { return Client{HTTP: s.HTTP, Base: s.Base(i)} }

// Page reads one page of uid through postsvcd i.
func (s *Stack) Page(i int, uid, f uint64, limit int) (Page, error) {
	return s.Client(i).Page(uid, f, limit)
}

// MustPage is Page that fails t on a failed read.
func (s *Stack) MustPage(t testing.TB, i int, uid, f uint64, limit int) Page {
	t.Helper()
	p, err := s.Page(i, uid, f, limit)
	if err != nil {
		t.Fatalf("page of user %d at f=%d via postsvcd %d: %v", uid, f, i%len(s.Addrs), err)
	}
	return p
}

// Walk follows next_id through postsvcd i from uid's newest post to the end (Walk).
func (s *Stack) Walk(t testing.TB, i int, uid uint64, limit int) []uint64 {
	t.Helper()
	return Walk(t, uid, limit, func(f uint64) (Page, error) { return s.Page(i, uid, f, limit) })
}

// Truth returns uid's post ids in the primary, newest first.
func (s *Stack) Truth(t testing.TB, uid uint64) []uint64 {
	t.Helper()
	return Truth(t, s.SQL, uid)
}

// users returns the given users, or every user with an acknowledged post when none is given.
func (s *Stack) users(uids []uint64) []uint64 {
	if len(uids) > 0 {
		return uids
	}
	s.ackedMu.Lock()
	defer s.ackedMu.Unlock()
	out := make([]uint64, 0, len(s.acked))
	for uid := range s.acked {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out
}

// WaitPersisted waits until every acknowledged post of uids (none: of every user) is in the
// primary exactly once, and nothing else of theirs is.
func (s *Stack) WaitPersisted(t testing.TB, uids ...uint64) {
	t.Helper()
	itest.WaitFor(t, 60*time.Second, "every acknowledged post persisted", func() bool {
		for _, uid := range s.users(uids) {
			s.ackedMu.Lock()
			want := slices.Clone(s.acked[uid])
			s.ackedMu.Unlock()
			slices.Sort(want)
			got := s.Truth(t, uid)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return false
			}
		}
		return true
	})
}

// walkLimits are the page sizes every walk is checked with: one post a page, a few, many.
var walkLimits = []int{1, 3, 10}

// CheckWalks waits until every acknowledged post of uids (none: of every user) is persisted, then
// walks each one's timeline through every postsvcd with every page size in walkLimits and
// compares it with the primary. With a replica the first walk may see it a moment behind, so
// that walk is polled for up to 3s; without one any difference fails at once.
func (s *Stack) CheckWalks(t testing.TB, label string, uids ...uint64) {
	t.Helper()
	s.WaitPersisted(t, uids...)
	lag := time.Duration(0)
	if s.Replica != nil {
		lag = 3 * time.Second
	}
	for _, uid := range s.users(uids) {
		want := s.Truth(t, uid)
		for i := range s.Addrs {
			for _, limit := range walkLimits {
				var got []uint64
				if !itest.Eventually(lag, func() bool { got = s.Walk(t, i, uid, limit); return slices.Equal(got, want) }) {
					t.Fatalf("%s: user %d via postsvcd %d, limit %d:\n got %v\nwant %v (database)", label, uid, i, limit, got, want)
				}
			}
		}
	}
}

// RingMembers returns postsvcd i's postsvc_cache_ring_members, "" when it cannot be read.
func (s *Stack) RingMembers(i int) string {
	resp, err := s.HTTP.Get(s.Base(i) + "/metrics")
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

// WaitRing waits until every postsvcd has n shards on its ring.
func (s *Stack) WaitRing(t testing.TB, n int) {
	t.Helper()
	for i := range s.Addrs {
		itest.WaitFor(t, 20*time.Second, fmt.Sprintf("postsvcd %d with %d ring members", i, n), func() bool {
			return s.RingMembers(i) == strconv.Itoa(n)
		})
	}
}
