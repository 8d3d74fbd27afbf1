package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// cluster is a ZooKeeper plus a client of the test's own, with a root per test.
type cluster struct {
	zk     *itest.ZooKeeper
	conn   *zk.Conn
	root   string
	layout discovery.Layout
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	z := itest.StartZooKeeper(t)
	conn, _, err := zk.Connect(z.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk connect: %v", err)
	}
	t.Cleanup(conn.Close)
	itest.WaitFor(t, 10*time.Second, "zk session", func() bool { return conn.State() == zk.StateHasSession })
	root := "/test/" + strings.ReplaceAll(t.Name(), "/", "_")
	return &cluster{zk: z, conn: conn, root: root, layout: discovery.Layout{Root: root}}
}

// setup runs zoo_setup in-process against the cluster and returns its stdout.
func (c *cluster) setup(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runSetup(t, nil, append([]string{"--zk", c.zk.Addr(), "--zk-root", c.root, "--wait", "10s"}, args...)...)
}

func runSetup(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runWith(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		t.Logf("zoo_setup %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.String(), err
}

func (c *cluster) mustSetup(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.setup(t, args...)
	if err != nil {
		t.Fatalf("zoo_setup %v: %v", args, err)
	}
	return out
}

// dump returns every node under the root with its data.
func (c *cluster) dump(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(p string)
	walk = func(p string) {
		data, _, err := c.conn.Get(p)
		if err != nil {
			t.Fatalf("get %s: %v", p, err)
		}
		out[p] = string(data)
		kids, _, err := c.conn.Children(p)
		if err != nil {
			t.Fatalf("children %s: %v", p, err)
		}
		for _, k := range kids {
			walk(path.Join(p, k))
		}
	}
	walk(c.root)
	return out
}

func (c *cluster) get(t *testing.T, p string) string {
	t.Helper()
	data, _, err := c.conn.Get(p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	return string(data)
}

func (c *cluster) set(t *testing.T, p, data string) {
	t.Helper()
	if _, err := c.conn.Set(p, []byte(data), -1); err != nil {
		t.Fatalf("set %s: %v", p, err)
	}
}

var fullFlags = []string{
	"--cache", "redis1:127.0.0.1:16380,redis2:127.0.0.1:16381",
	"--queue-primary", "127.0.0.1:16379", "--queue-secondary", "127.0.0.1:16383",
	"--db-primary", "127.0.0.1:13306", "--db-replicas", "127.0.0.1:13307,127.0.0.1:13308",
}

func TestSetupIsIdempotentAndKeepsRedismonState(t *testing.T) {
	c := startCluster(t)
	c.mustSetup(t, fullFlags...)
	first := c.dump(t)

	for _, d := range directories(c.layout) {
		if _, ok := first[d]; !ok {
			t.Errorf("directory %s missing", d)
		}
	}
	shard := path.Join(c.layout.CacheNodes(), "redis1:127.0.0.1:16380")
	if got, ok := first[shard]; !ok || got != "" {
		t.Errorf("got %s = %q (exists %v), want an empty node", shard, got, ok)
	}
	if got, want := first[c.layout.Queue()], `{"primary":"127.0.0.1:16379","secondary":["127.0.0.1:16383"]}`; got != want {
		t.Errorf("got queue %s, want %s", got, want)
	}
	if got, want := first[c.layout.DB()], `{"primary":"127.0.0.1:13306","replicas":["127.0.0.1:13307","127.0.0.1:13308"]}`; got != want {
		t.Errorf("got db %s, want %s", got, want)
	}

	c.mustSetup(t, fullFlags...)
	if second := c.dump(t); !maps.Equal(first, second) {
		t.Fatalf("second run changed the tree:\nbefore %v\nafter  %v", first, second)
	}

	// redismon's state: a DOWN shard and a promoted queue secondary survive a re-run.
	down := `{"status":"DOWN","since":"2026-01-01T00:00:00Z","epoch":3}`
	c.set(t, shard, down)
	promoted := `{"primary":"127.0.0.1:16383","secondary":["127.0.0.1:16379"]}`
	c.set(t, c.layout.Queue(), promoted)
	c.mustSetup(t, fullFlags...)
	if got := c.get(t, shard); got != down {
		t.Errorf("got shard data %s after re-run, want redismon's %s", got, down)
	}
	if got := c.get(t, c.layout.Queue()); got != promoted {
		t.Errorf("got queue %s after re-run, want redismon's failover order %s", got, promoted)
	}

	// A different queue membership is a real change and is written.
	c.mustSetup(t, "--queue-primary", "127.0.0.1:16379", "--queue-secondary", "127.0.0.1:16384")
	if got, want := c.get(t, c.layout.Queue()), `{"primary":"127.0.0.1:16379","secondary":["127.0.0.1:16384"]}`; got != want {
		t.Errorf("got queue %s, want %s", got, want)
	}
}

func TestSetupFromFileAndEnv(t *testing.T) {
	c := startCluster(t)
	out := c.mustSetup(t, "--file", "example.json", "--db-primary", "127.0.0.1:23306")
	if !strings.Contains(out, "cache shard redis3:127.0.0.1:16382: registered") {
		t.Errorf("output lacks the redis3 registration:\n%s", out)
	}
	kids, _, err := c.conn.Children(c.layout.CacheNodes())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(kids)
	if want := []string{"redis1:127.0.0.1:16380", "redis2:127.0.0.1:16381", "redis3:127.0.0.1:16382"}; !slices.Equal(kids, want) {
		t.Errorf("got shards %v, want %v", kids, want)
	}
	if got, want := c.get(t, c.layout.Queue()), `{"primary":"127.0.0.1:16379","secondary":["127.0.0.1:16383"]}`; got != want {
		t.Errorf("got queue %s, want %s", got, want)
	}
	if got, want := c.get(t, c.layout.DB()), `{"primary":"127.0.0.1:23306","replicas":[]}`; got != want {
		t.Errorf("got db %s (the flag replaces the file's db), want %s", got, want)
	}

	// Listing a tree nobody set up is no error: every section is empty.
	var empty Tree
	if err := json.Unmarshal([]byte(c.mustSetup(t, "--zk-root", "/nothing/here", "--list", "--json")), &empty); err != nil {
		t.Fatal(err)
	}
	if len(empty.Cache) != 0 || empty.Queue != nil || empty.DB != nil || empty.Redismon.Leader != "" {
		t.Errorf("got %+v for an empty root, want nothing", empty)
	}

	env := map[string]string{"ZOO_SETUP_ZK": c.zk.Addr(), "ZOO_SETUP_ZK_ROOT": c.root + "/env", "ZOO_SETUP_CACHE": "envshard:127.0.0.1:1"}
	if _, err := runSetup(t, env); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.conn.Get(c.root + "/env/cache/nodes/envshard:127.0.0.1:1"); err != nil {
		t.Errorf("shard from ZOO_SETUP_CACHE: %v", err)
	}
}

func TestRemoveAndConflictingShards(t *testing.T) {
	c := startCluster(t)
	c.mustSetup(t, "--cache", "redis1:127.0.0.1:16380,redis2:127.0.0.1:16381")

	_, err := c.setup(t, "--cache", "redis1:10.0.0.9:6379")
	if err == nil || !strings.Contains(err.Error(), "remove it first") {
		t.Fatalf("got %v, want a conflict error for redis1 at a second address", err)
	}

	out := c.mustSetup(t, "--remove-cache", "redis1,redis2:127.0.0.1:16381,redis9")
	for _, want := range []string{"redis1:127.0.0.1:16380: removed", "redis2:127.0.0.1:16381: removed", "redis9: not registered"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	kids, _, err := c.conn.Children(c.layout.CacheNodes())
	if err != nil || len(kids) != 0 {
		t.Fatalf("got shards %v (%v), want none", kids, err)
	}
	c.mustSetup(t, "--cache", "redis1:10.0.0.9:6379") // now free

	// Moving a shard in one run: the removal happens first.
	c.mustSetup(t, "--remove-cache", "redis1", "--cache", "redis1:10.0.0.10:6379")
	if kids, _, err := c.conn.Children(c.layout.CacheNodes()); err != nil || !slices.Equal(kids, []string{"redis1:10.0.0.10:6379"}) {
		t.Fatalf("got shards %v (%v), want only redis1:10.0.0.10:6379", kids, err)
	}
}

func TestListShowsLiveMembersAndReferenceData(t *testing.T) {
	c := startCluster(t)
	c.mustSetup(t, "--db-primary", "127.0.0.1:13306")
	l := c.layout
	create := func(p string, data []byte, flags int32) {
		t.Helper()
		if _, err := c.conn.Create(p, data, flags, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	// Live members, as the daemons register them.
	guid, _ := discovery.NewServerSet("127.0.0.1:8010", 7)
	create(path.Join(l.Nodes("guid"), "127.0.0.1:8010"), guid, zk.FlagEphemeral)
	scrap, _ := discovery.NewServerSet("127.0.0.1:8020", 0)
	create(path.Join(l.Nodes("scrap"), "127.0.0.1:8020"), scrap, zk.FlagEphemeral)
	// Registered the reference's way (kazoo: the address as the name, no data): live all the same.
	create(path.Join(l.Nodes("guid"), "127.0.0.1:8011"), nil, zk.FlagEphemeral)
	create(path.Join(l.Nodes("scrap"), "127.0.0.1:8021"), []byte{}, zk.FlagEphemeral)
	// What callers cannot use, or can use but not read: problems, and the second still a member.
	create(path.Join(l.Nodes("scrap"), "not-an-address"), nil, zk.FlagEphemeral)
	create(path.Join(l.Nodes("postsvc"), "127.0.0.1:8000"), []byte("garbage"), zk.FlagEphemeral)
	create(path.Dir(l.GuidWorkers(0))+"/0", nil, 0)
	create(path.Join(l.GuidWorkers(0), "7"), []byte("127.0.0.1:8010"), zk.FlagEphemeral)
	// The reference's own setup: empty cache nodes, json.dumps' queue (with spaces).
	create(path.Join(l.CacheNodes(), "redis1:127.0.0.1:16380"), nil, 0)
	create(path.Join(l.CacheNodes(), "redis2:127.0.0.1:16381"), []byte(`{"status":"DOWN","since":"2026-01-01T00:00:00Z","epoch":4}`), 0)
	create(l.Queue(), []byte(`{"primary": "127.0.0.1:16379", "secondary": ["127.0.0.1:16380"]}`), 0)
	// Two redismon candidates; the lower sequence leads.
	create(path.Join(l.RedismonLeader(), "n_0000000004"), []byte("127.0.0.1:8041"), zk.FlagEphemeral)
	create(path.Join(l.RedismonLeader(), "_c_00112233445566778899aabbccddeeff-n_0000000003"), []byte("127.0.0.1:8040"), zk.FlagEphemeral)

	text := c.mustSetup(t, "--list")
	for _, want := range []string{"guid: 2 live", "127.0.0.1:8010", "worker 7", "scrap: 2 live", "postsvc: 1 live",
		"127.0.0.1:8011", "127.0.0.1:8021", "registered by name only",
		"dc 0 worker 7", "redis1", "ALIVE", "redis2", "DOWN", "epoch 4", "127.0.0.1:16379", "127.0.0.1:13306",
		"leader", "127.0.0.1:8040"} {
		if !strings.Contains(text, want) {
			t.Errorf("--list output lacks %q:\n%s", want, text)
		}
	}

	var tree Tree
	if err := json.Unmarshal([]byte(c.mustSetup(t, "--list", "--json")), &tree); err != nil {
		t.Fatalf("--list --json: %v", err)
	}
	wantGuid := []Member{{Node: "127.0.0.1:8010", Host: "127.0.0.1", Port: 8010, Status: "ALIVE", Shard: 7},
		{Node: "127.0.0.1:8011", Host: "127.0.0.1", Port: 8011, Status: "ALIVE", Named: true}}
	if got := tree.Services["guid"]; !slices.Equal(got, wantGuid) {
		t.Errorf("got guid members %+v, want %+v", got, wantGuid)
	}
	if got := tree.Services["scrap"]; len(got) != 2 || got[1].Node != "127.0.0.1:8021" || !got[1].Named {
		t.Errorf("got scrap members %+v, want 127.0.0.1:8020 and the name-only 127.0.0.1:8021", got)
	}
	wantCache := []Shard{
		{Node: "redis1:127.0.0.1:16380", Name: "redis1", Addr: "127.0.0.1:16380", Status: "ALIVE"},
		{Node: "redis2:127.0.0.1:16381", Name: "redis2", Addr: "127.0.0.1:16381", Status: "DOWN", Epoch: 4, Since: "2026-01-01T00:00:00Z"},
	}
	if !slices.Equal(tree.Cache, wantCache) {
		t.Errorf("got cache %+v, want %+v", tree.Cache, wantCache)
	}
	if tree.Queue == nil || tree.Queue.Primary != "127.0.0.1:16379" || !slices.Equal(tree.Queue.Secondary, []string{"127.0.0.1:16380"}) {
		t.Errorf("got queue %+v, want the reference's", tree.Queue)
	}
	if tree.Redismon.Leader != "127.0.0.1:8040" || len(tree.Redismon.Candidates) != 2 {
		t.Errorf("got redismon %+v, want leader 127.0.0.1:8040 of 2", tree.Redismon)
	}
	if want := []Lease{{DC: 0, Worker: 7, Owner: "127.0.0.1:8010"}}; !slices.Equal(tree.GuidWorkers, want) {
		t.Errorf("got leases %+v, want %+v", tree.GuidWorkers, want)
	}
	// The reference lists redis1's port as the queue secondary; the listing points that out.
	problems := strings.Join(tree.Problems, "\n")
	for _, want := range []string{"127.0.0.1:16380 is also cache shard redis1", "scrap node not-an-address",
		"postsvc node 127.0.0.1:8000: data is neither empty nor a serverset"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems %v lack %q", tree.Problems, want)
		}
	}
	if len(tree.Problems) != 3 || strings.Contains(problems, "end of JSON input") {
		t.Errorf("got problems %v, want exactly those three (no name-only node among them)", tree.Problems)
	}
}

func TestZooKeeperDownFailsWithinWait(t *testing.T) {
	port := itest.FreePort(t) // nothing listens there
	res := make(chan error, 1)
	go func() {
		_, err := runSetupQuiet([]string{"--zk", "127.0.0.1:" + strconv.Itoa(port), "--wait", "1s", "--cache", "r:127.0.0.1:1"})
		res <- err
	}()
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "ZooKeeper unreachable") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
			t.Fatalf("got %v, want an error naming the unreachable ZooKeeper", err)
		}
	case <-time.After(20 * time.Second): // a hang, not a timing assertion
		t.Fatal("zoo_setup did not give up with ZooKeeper down")
	}
}

func runSetupQuiet(args []string) (string, error) {
	var out bytes.Buffer
	err := runWith(context.Background(), args, func(string) string { return "" }, &out, io.Discard)
	return out.String(), err
}

func TestBadInputFailsBeforeConnecting(t *testing.T) {
	for _, args := range [][]string{
		{"--cache", "redis1"},
		{"--queue-secondary", "127.0.0.1:1"},
		{"--file", "does-not-exist.json"},
		{"stray"},
		{"--no-such-flag"},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			// No ZooKeeper at all: validation must fail first, at once.
			if _, err := runSetupQuiet(append([]string{"--zk", "127.0.0.1:1", "--wait", "10s"}, args...)); err == nil {
				t.Fatal("got no error, want one")
			}
		})
	}
}
