package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

const sessionTimeout = 1200 * time.Millisecond

// TestMain doubles as a registrant process for the tests that must SIGSTOP one: with
// DISCOVERY_HELPER_ZK set, the test binary registers a node and blocks until killed.
func TestMain(m *testing.M) {
	if servers := os.Getenv("DISCOVERY_HELPER_ZK"); servers != "" {
		runRegistrant(servers, os.Getenv("DISCOVERY_HELPER_DIR"), os.Getenv("DISCOVERY_HELPER_NAME"))
		return
	}
	os.Exit(m.Run())
}

func runRegistrant(servers, dir, name string) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	conn, err := discovery.Dial(discovery.Config{Servers: servers, SessionTimeout: sessionTimeout}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	conn.Register(dir, name, []byte(`{"status":"ALIVE"}`))
	select {}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func dial(t *testing.T, z *itest.ZooKeeper) *discovery.Conn {
	t.Helper()
	c, err := discovery.Dial(discovery.Config{Servers: z.Addr(), SessionTimeout: sessionTimeout}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func childrenOf(t *testing.T, w *discovery.Watcher, want ...string) discovery.Snapshot {
	t.Helper()
	sort.Strings(want)
	s, err := w.Wait(ctxT(t, 15*time.Second), func(s discovery.Snapshot) bool {
		got := s.Names()
		sort.Strings(got)
		return strings.Join(got, ",") == strings.Join(want, ",")
	})
	if err != nil {
		got := s.Names()
		sort.Strings(got)
		t.Fatalf("children: got %v, want %v", got, want)
	}
	return s
}

func TestRegisterAppearsAndDisappearsOnClose(t *testing.T) {
	z := itest.StartZooKeeper(t)
	owner, reader := dial(t, z), dial(t, z)
	dir := "/t/guid/nodes"
	w := reader.WatchChildren(dir, discovery.WatchOptions{WithData: true})
	defer w.Stop()

	reg := owner.Register(dir, "127.0.0.1:8010", []byte("hello"))
	s := childrenOf(t, w, "127.0.0.1:8010")
	if got := string(s.Children["127.0.0.1:8010"]); got != "hello" {
		t.Errorf("node data: got %q, want %q", got, "hello")
	}
	itest.WaitFor(t, 5*time.Second, "Registered", reg.Registered)

	if err := reg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Deleted at once, not after the session timeout: the owner's session is still open.
	childrenOf(t, w)
	if _, ok := owner.Session(); !ok {
		t.Errorf("owner lost its session; the node must have gone by deletion")
	}

	// A closed connection takes its ephemeral nodes with it.
	owner.Register(dir, "127.0.0.1:8011", nil)
	childrenOf(t, w, "127.0.0.1:8011")
	owner.Close()
	childrenOf(t, w)
}

// TestRegisterReplacesStaleNodeOfOurs: a restarted process finds its previous session's node
// (kill -9 leaves it until that session expires) and takes it over at once.
func TestRegisterReplacesStaleNodeOfOurs(t *testing.T) {
	z := itest.StartZooKeeper(t)
	old, fresh, reader := dial(t, z), dial(t, z), dial(t, z)
	dir, name := "/t/scrap/nodes", "127.0.0.1:8020"
	// The previous incarnation left its node; its process is gone, so nothing re-creates it.
	oldID, _ := old.WaitSession(ctxT(t, 10*time.Second))
	if err := old.CreateEphemeral(path.Join(dir, name), []byte("old"), oldID, true); err != nil {
		t.Fatal(err)
	}
	w := reader.WatchChildren(dir, discovery.WatchOptions{WithData: true})
	childrenOf(t, w, name)

	reg := fresh.Register(dir, name, []byte("new"))
	itest.WaitFor(t, 5*time.Second, "fresh registration", reg.Registered)
	s, err := w.Wait(ctxT(t, 10*time.Second), func(s discovery.Snapshot) bool { return string(s.Children[name]) == "new" })
	if err != nil {
		t.Fatalf("node data: got %q, want %q", s.Children[name], "new")
	}
	freshID, _ := fresh.Session()
	_, stat, err := reader.ZK().Get(path.Join(dir, name))
	if err != nil || stat.EphemeralOwner != freshID {
		t.Fatalf("owner: got %#x (err %v), want the fresh session %#x", stat.EphemeralOwner, err, freshID)
	}
}

func TestCreateEphemeralRespectsOtherOwners(t *testing.T) {
	z := itest.StartZooKeeper(t)
	a, b := dial(t, z), dial(t, z)
	ida, _ := a.WaitSession(ctxT(t, 10*time.Second))
	idb, _ := b.WaitSession(ctxT(t, 10*time.Second))
	p := "/t/guid/workers/0/0"
	if err := a.CreateEphemeral(p, []byte("a"), ida, false); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateEphemeral(p, []byte("a2"), ida, false); err != nil {
		t.Errorf("re-creating our own node: %v", err)
	}
	if err := b.CreateEphemeral(p, []byte("b"), idb, false); !errors.Is(err, discovery.ErrOwnedByOther) {
		t.Errorf("taking another session's node: got %v, want ErrOwnedByOther", err)
	}
	if err := b.DeleteOwned(p, idb); err != nil {
		t.Fatal(err)
	}
	if data, _, err := b.ZK().Get(p); err != nil || string(data) != "a2" {
		t.Errorf("after a foreign DeleteOwned: got %q, %v; want the node kept with %q", data, err, "a2")
	}
}

// TestRegistrantReregistersAfterSessionExpiry pauses a registrant process past its session
// timeout: the server expires the session and deletes the node; once resumed, the registrant
// gets a new session and registers again.
func TestRegistrantReregistersAfterSessionExpiry(t *testing.T) {
	z := itest.StartZooKeeper(t)
	reader := dial(t, z)
	dir, name := "/t/postsvc/nodes", "127.0.0.1:8000"
	w := reader.WatchChildren(dir, discovery.WatchOptions{})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DISCOVERY_HELPER_ZK="+z.Addr(), "DISCOVERY_HELPER_DIR="+dir, "DISCOVERY_HELPER_NAME="+name)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT); cmd.Process.Kill(); cmd.Wait() })

	childrenOf(t, w, name)
	_, first, err := reader.ZK().Get(path.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	childrenOf(t, w) // expired: the server deleted the node
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	childrenOf(t, w, name)
	_, second, err := reader.ZK().Get(path.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if second.EphemeralOwner == first.EphemeralOwner {
		t.Errorf("re-registered node has the expired session %#x as owner", first.EphemeralOwner)
	}
}

func TestWatchChildrenBeforePathExists(t *testing.T) {
	z := itest.StartZooKeeper(t)
	c := dial(t, z)
	dir := "/t/not/yet/there"
	w := c.WatchChildren(dir, discovery.WatchOptions{})
	defer w.Stop()
	s, err := w.Wait(ctxT(t, 10*time.Second), func(s discovery.Snapshot) bool { return true })
	if err != nil || s.Exists {
		t.Fatalf("first snapshot: exists=%v err=%v, want a snapshot of a missing path", s.Exists, err)
	}
	if err := c.EnsurePath(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := c.ZK().Create(path.Join(dir, n), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	childrenOf(t, w, "a", "b")
}

func TestWatchDataFollowsChanges(t *testing.T) {
	z := itest.StartZooKeeper(t)
	c := dial(t, z)
	p := "/t/queue/sidekiq"
	w := c.WatchData(p, discovery.WatchOptions{})
	defer w.Stop()
	if err := c.EnsurePath(path.Dir(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ZK().Create(p, []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	waitData(t, w, "v1")
	for i := 2; i <= 5; i++ {
		if _, err := c.ZK().Set(p, []byte(fmt.Sprintf("v%d", i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	s := waitData(t, w, "v5")
	if s.Zxid == 0 {
		t.Errorf("snapshot zxid is 0")
	}
	if err := c.ZK().Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(ctxT(t, 10*time.Second), func(s discovery.Snapshot) bool { return !s.Exists }); err != nil {
		t.Fatalf("deletion not seen: %v", err)
	}
}

func waitData(t *testing.T, w *discovery.Watcher, want string) discovery.Snapshot {
	t.Helper()
	s, err := w.Wait(ctxT(t, 10*time.Second), func(s discovery.Snapshot) bool { return string(s.Data) == want })
	if err != nil {
		t.Fatalf("data: got %q, want %q", s.Data, want)
	}
	return s
}

// TestWatchSurvivesZooKeeperRestart: while ZooKeeper is down the watcher keeps its last snapshot;
// after it returns, changes made after the restart are seen without any help.
func TestWatchSurvivesZooKeeperRestart(t *testing.T) {
	z := itest.StartZooKeeper(t)
	reader, writer := dial(t, z), dial(t, z)
	dir := "/t/cache/nodes"
	if err := writer.EnsurePath(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"redis1:127.0.0.1:1", "redis2:127.0.0.1:2"} {
		if _, err := writer.ZK().Create(path.Join(dir, n), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	w := reader.WatchChildren(dir, discovery.WatchOptions{WithData: true, Resync: time.Hour})
	before := childrenOf(t, w, "redis1:127.0.0.1:1", "redis2:127.0.0.1:2")

	z.Kill()
	itest.WaitFor(t, 10*time.Second, "reader to notice ZooKeeper is gone", func() bool {
		_, ok := reader.Session()
		return !ok
	})
	if got := w.Current(); got.Version != before.Version || len(got.Children) != 2 {
		t.Fatalf("while ZooKeeper is down: snapshot v%d with %d children, want the last one (v%d, 2)", got.Version, len(got.Children), before.Version)
	}

	z.Start(t)
	itest.WaitFor(t, 20*time.Second, "writer to reconnect", func() bool { _, ok := writer.Session(); return ok })
	if _, err := writer.ZK().Create(path.Join(dir, "redis3:127.0.0.1:3"), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.ZK().Set(path.Join(dir, "redis1:127.0.0.1:1"), []byte(`{"status":"DOWN"}`), -1); err != nil {
		t.Fatal(err)
	}
	s := childrenOf(t, w, "redis1:127.0.0.1:1", "redis2:127.0.0.1:2", "redis3:127.0.0.1:3")
	s, err := w.Wait(ctxT(t, 15*time.Second), func(s discovery.Snapshot) bool {
		return string(s.Children["redis1:127.0.0.1:1"]) == `{"status":"DOWN"}`
	})
	if err != nil {
		t.Fatalf("data change after restart not seen: %q", s.Children["redis1:127.0.0.1:1"])
	}
}

// TestBalancerRoundRobin: successive calls start at successive instances, and a deregistered
// instance stops being offered.
func TestBalancerRoundRobin(t *testing.T) {
	z := itest.StartZooKeeper(t)
	c := dial(t, z)
	dir := "/t/guid/nodes"
	regs := map[string]*discovery.Registration{}
	for _, n := range []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"} {
		regs[n] = c.Register(dir, n, nil)
	}
	b := c.NewBalancer(dir)
	defer b.Stop()
	childrenOf(t, b.Watcher(), "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	firsts := map[string]int{}
	for i := 0; i < 30; i++ {
		cs := b.Candidates()
		if len(cs) != 3 {
			t.Fatalf("candidates: got %v, want 3", cs)
		}
		firsts[cs[0]]++
	}
	for n, k := range firsts {
		if k != 10 {
			t.Errorf("%s first %d times in 30, want 10", n, k)
		}
	}
	regs["127.0.0.1:2"].Close()
	childrenOf(t, b.Watcher(), "127.0.0.1:1", "127.0.0.1:3")
	for i := 0; i < 10; i++ {
		for _, cnd := range b.Candidates() {
			if cnd == "127.0.0.1:2" {
				t.Fatalf("deregistered instance still offered")
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the client's goroutines and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCloseIsNotADisconnect: closing a connection on purpose must not log the warning an operator
// reads as "ZooKeeper went away" (tools exiting normally printed it).
func TestCloseIsNotADisconnect(t *testing.T) {
	z := itest.StartZooKeeper(t)
	var logs syncBuffer
	c, err := discovery.Dial(discovery.Config{Servers: z.Addr(), SessionTimeout: sessionTimeout}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitSession(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := logs.String(); strings.Contains(got, "zk disconnected") {
		t.Fatalf("logs after Close: got %q, want no disconnect warning", got)
	}
	if _, ok := c.Session(); ok {
		t.Fatalf("Session after Close: got connected, want not connected")
	}
}
