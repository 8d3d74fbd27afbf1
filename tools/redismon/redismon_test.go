package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// testCfg keeps the tests quick: probes every 100 ms, DOWN after 3 misses.
var testCfg = Config{Listen: "127.0.0.1:0", ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond,
	FailThreshold: 3, RiseThreshold: 2}

// rig is a ZooKeeper with a test client and a root of its own.
type rig struct {
	zk     *itest.ZooKeeper
	conn   *zk.Conn
	layout discovery.Layout
}

func newRig(t *testing.T) *rig {
	t.Helper()
	z := itest.StartZooKeeper(t)
	conn, _, err := zk.Connect(z.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk connect: %v", err)
	}
	t.Cleanup(conn.Close)
	itest.WaitFor(t, 10*time.Second, "zk session", func() bool { return conn.State() == zk.StateHasSession })
	r := &rig{zk: z, conn: conn, layout: discovery.Layout{Root: "/redismon-test"}}
	for _, p := range []string{"/redismon-test", "/redismon-test/cache", r.layout.CacheNodes(), "/redismon-test/queue"} {
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	return r
}

// addShard registers a shard the way zoo_setup does: a persistent node with empty data.
func (r *rig) addShard(t *testing.T, name, addr string) string {
	t.Helper()
	node := discovery.CacheNodeName(name, addr)
	if _, err := r.conn.Create(path.Join(r.layout.CacheNodes(), node), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create shard %s: %v", node, err)
	}
	return node
}

func (r *rig) shard(t *testing.T, node string) shardDoc {
	t.Helper()
	data, _, err := r.conn.Get(path.Join(r.layout.CacheNodes(), node))
	if err != nil {
		t.Fatalf("get shard %s: %v", node, err)
	}
	_, doc, err := parseShardDoc(node, data)
	if err != nil {
		t.Fatalf("shard %s: %v", node, err)
	}
	return doc
}

func (r *rig) queue(t *testing.T) discovery.QueueEndpoints {
	t.Helper()
	data, _, err := r.conn.Get(r.layout.Queue())
	if err != nil {
		t.Fatalf("get queue: %v", err)
	}
	q, err := discovery.ParseQueue(data)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// instance is a redismon running in-process.
type instance struct {
	m      *Monitor
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (r *rig) start(t *testing.T, name string, cfg Config) *instance {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", name)
	conn, err := discovery.Dial(discovery.Config{Servers: r.zk.Addr(), Root: r.layout.Root, SessionTimeout: 4 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	m, err := New(cfg, conn, r.layout, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{m: m, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		in.stop(t)
		conn.Close()
	})
	return in
}

// stop ends the instance as SIGTERM would, and waits for it.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("monitor Run: %v", err)
		}
		in.done <- nil // a second stop returns at once
	case <-time.After(20 * time.Second):
		t.Fatal("monitor did not stop")
	}
}

// metric sums every series of the named metric family.
func (in *instance) metric(t *testing.T, name string) float64 {
	t.Helper()
	fams, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func dbsize(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	return n
}

func fill(t *testing.T, c *redis.Client, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := c.Set(context.Background(), fmt.Sprintf("%s:%d", prefix, i), "stale", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
}

// aliveObserver checks, in a ZooKeeper watch callback, that the shard is empty at the moment its
// node turns ALIVE with a new epoch.
type aliveObserver struct {
	seen chan int64 // DBSIZE at each ALIVE with epoch ≥ minEpoch
}

func observeAlive(t *testing.T, r *rig, node string, shard *redis.Client, minEpoch int64) *aliveObserver {
	t.Helper()
	conn, err := discovery.Dial(discovery.Config{Servers: r.zk.Addr(), SessionTimeout: 4 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o := &aliveObserver{seen: make(chan int64, 16)}
	w := conn.WatchData(path.Join(r.layout.CacheNodes(), node), discovery.WatchOptions{OnChange: func(s discovery.Snapshot) {
		n, err := discovery.ParseCacheNode(node, s.Data)
		if err != nil || n.Status != discovery.StatusAlive || n.Epoch < minEpoch {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		size, err := shard.DBSize(ctx).Result()
		if err != nil {
			size = -1
		}
		o.seen <- size
	}})
	t.Cleanup(func() {
		w.Stop()
		conn.Close()
	})
	return o
}

func (o *aliveObserver) wait(t *testing.T) int64 {
	t.Helper()
	select {
	case n := <-o.seen:
		return n
	case <-time.After(20 * time.Second):
		t.Fatal("shard never turned ALIVE again")
		return 0
	}
}

func TestShardDownThenFlushedBeforeAlive(t *testing.T) {
	r := newRig(t)
	a := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	b := itest.StartRedis(t, itest.RedisOptions{})
	nodeA := r.addShard(t, "redis1", a.Addr())
	nodeB := r.addShard(t, "redis2", b.Addr())
	cfg := testCfg
	cfg.RiseThreshold = 5 // leaves the test time to see the stale keys back before the flush
	mon := r.start(t, "solo", cfg)

	itest.WaitFor(t, 10*time.Second, "leading", mon.m.IsLeader)
	itest.WaitFor(t, 10*time.Second, "leader adopting the shards' run ids", func() bool {
		return r.shard(t, nodeA).RunID != "" && r.shard(t, nodeB).RunID != ""
	})
	clientA := a.Client(t)
	fill(t, clientA, "stale", 50)

	a.Kill()
	killed := time.Now()
	itest.WaitFor(t, 10*time.Second, "redis1 DOWN in ZooKeeper", func() bool {
		return r.shard(t, nodeA).Status == discovery.StatusDown
	})
	t.Logf("DOWN %s after the kill (probe every %s, %d failures)", time.Since(killed).Round(time.Millisecond), cfg.ProbeInterval, cfg.FailThreshold)
	if d := r.shard(t, nodeA); d.Epoch != 0 || d.Reason != "unreachable" || d.Since == "" {
		t.Errorf("got DOWN doc %+v, want epoch 0, reason unreachable, a since", d)
	}
	if got := r.shard(t, nodeB).Status; got != discovery.StatusAlive {
		t.Errorf("got redis2 %s, want ALIVE (it never failed)", got)
	}

	obs := observeAlive(t, r, nodeA, clientA, 1)
	a.Start(t)
	restarted := time.Now()
	if n := dbsize(t, clientA); n != 50 {
		t.Fatalf("got DBSIZE %d right after restart, want the 50 stale keys back from the AOF (else the test proves nothing)", n)
	}
	if n := obs.wait(t); n != 0 {
		t.Fatalf("got DBSIZE %d when redis1 turned ALIVE, want 0: it served data from before its outage", n)
	}
	t.Logf("flushed and ALIVE %s after the restart (%d good probes needed)", time.Since(restarted).Round(time.Millisecond), cfg.RiseThreshold)
	if d := r.shard(t, nodeA); d.Status != discovery.StatusAlive || d.Epoch != 1 || d.Reason != "flushed" {
		t.Errorf("got %+v, want ALIVE, epoch 1, reason flushed", d)
	}
	// At least: a ZooKeeper reply lost to a disconnect under load makes a write look failed.
	if got := mon.metric(t, "redismon_cache_transitions_total"); got < 1 {
		t.Errorf("got %v status transitions, want DOWN and ALIVE counted", got)
	}
}

// A shard that restarts faster than the failure threshold is still caught: its run_id changed.
func TestQuickRestartIsFlushed(t *testing.T) {
	r := newRig(t)
	a := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	node := r.addShard(t, "redis1", a.Addr())
	cfg := testCfg
	cfg.FailThreshold = 1000 // only the run_id can tell
	r.start(t, "solo", cfg)
	itest.WaitFor(t, 10*time.Second, "run id adopted", func() bool { return r.shard(t, node).RunID != "" })
	before := r.shard(t, node).RunID

	clientA := a.Client(t)
	fill(t, clientA, "stale", 20)
	obs := observeAlive(t, r, node, clientA, 1)
	a.Kill()
	a.Start(t)
	if n := obs.wait(t); n != 0 {
		t.Fatalf("got DBSIZE %d when the restarted shard turned ALIVE, want 0", n)
	}
	d := r.shard(t, node)
	if d.Epoch != 1 || d.RunID == before {
		t.Errorf("got %+v, want epoch 1 and a new run id (was %s)", d, before)
	}
}

func TestQueueFailover(t *testing.T) {
	r := newRig(t)
	primary := itest.StartRedis(t, itest.RedisOptions{})
	replica := itest.StartRedis(t, itest.RedisOptions{ReplicaOf: primary.Addr()})
	other := itest.StartRedis(t, itest.RedisOptions{}) // a secondary that is down at failover
	q := discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{other.Addr(), replica.Addr()}}
	b, _ := json.Marshal(q)
	if _, err := r.conn.Create(r.layout.Queue(), b, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	mon := r.start(t, "solo", testCfg)
	ctx := context.Background()
	pc, rc, oc := primary.Client(t), replica.Client(t), other.Client(t)
	itest.WaitFor(t, 10*time.Second, "the other secondary made a replica of the primary", func() bool {
		return role(t, oc) == "slave"
	})
	other.Kill()

	for i := range 100 {
		if err := pc.Set(ctx, fmt.Sprintf("job:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := pc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1: got %d, %v; want the replica to acknowledge", n, err)
	}
	primary.Kill()
	killed := time.Now()
	itest.WaitFor(t, 15*time.Second, "queue node naming the replica as primary", func() bool {
		return r.queue(t).Primary == replica.Addr()
	})
	t.Logf("replica promoted %s after the primary was killed", time.Since(killed).Round(time.Millisecond))
	if got, want := r.queue(t).Secondary, []string{other.Addr(), primary.Addr()}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got secondaries %v, want %v", got, want)
	}
	if got := role(t, rc); got != "master" {
		t.Fatalf("got ROLE %s on the promoted replica, want master", got)
	}
	if err := rc.Set(ctx, "after", "failover", 0).Err(); err != nil {
		t.Fatalf("write to the new primary: %v", err)
	}
	for i := range 100 {
		if v, err := rc.Get(ctx, fmt.Sprintf("job:%d", i)).Int(); err != nil || v != i {
			t.Fatalf("job:%d on the new primary: got %d, %v; want every acknowledged write", i, v, err)
		}
	}
	if got := mon.metric(t, "redismon_queue_promotions_total"); got != 1 {
		t.Errorf("got %v promotions, want 1", got)
	}

	primary.Start(t)
	other.Start(t)
	for _, s := range []*itest.Redis{primary, other} {
		c := s.Client(t)
		itest.WaitFor(t, 15*time.Second, s.Addr()+" replicating from the new primary", func() bool {
			v, err := c.Get(ctx, "after").Result()
			return role(t, c) == "slave" && err == nil && v == "failover"
		})
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if rep, _ := parseReplication(info); rep.MasterAddr != replica.Addr() {
			t.Errorf("%s follows %s, want %s", s.Addr(), rep.MasterAddr, replica.Addr())
		}
	}
	if got := r.queue(t).Primary; got != replica.Addr() {
		t.Errorf("got primary %s after the old one returned, want %s still", got, replica.Addr())
	}
}

func role(t *testing.T, c *redis.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || len(v) == 0 {
		return ""
	}
	s, _ := v[0].(string)
	return s
}

func TestOnlyTheLeaderActsAndTheStandbyTakesOver(t *testing.T) {
	r := newRig(t)
	a := itest.StartRedis(t, itest.RedisOptions{})
	node := r.addShard(t, "redis1", a.Addr())
	first := r.start(t, "first", testCfg)
	itest.WaitFor(t, 10*time.Second, "first instance leading", first.m.IsLeader)
	second := r.start(t, "second", testCfg)
	itest.WaitFor(t, 10*time.Second, "second instance in the election", second.m.election.joined.Load)

	a.Kill()
	itest.WaitFor(t, 10*time.Second, "redis1 DOWN", func() bool { return r.shard(t, node).Status == discovery.StatusDown })
	if second.m.IsLeader() {
		t.Fatal("both instances lead")
	}
	if got := second.metric(t, "redismon_zk_writes_total"); got != 0 {
		t.Fatalf("the standby wrote to ZooKeeper %v times, want 0", got)
	}
	if got := second.metric(t, "redismon_probe_failures_total"); got != 0 {
		t.Fatalf("the standby probed (%v failures), want no probes", got)
	}
	if got := first.metric(t, "redismon_zk_writes_total"); got < 2 {
		t.Errorf("the leader wrote %v times, want at least 2 (run id, DOWN)", got)
	}

	first.stop(t) // SIGTERM: leaves the election, so the standby need not wait for a session timeout
	itest.WaitFor(t, 5*time.Second, "standby taking over", second.m.IsLeader)
	a.Start(t)
	itest.WaitFor(t, 10*time.Second, "redis1 revived by the new leader", func() bool {
		d := r.shard(t, node)
		return d.Status == discovery.StatusAlive && d.Epoch == 1
	})
	if got := second.metric(t, "redismon_zk_writes_total"); got < 1 {
		t.Errorf("the new leader wrote %v times, want at least 1", got)
	}
}

func TestReadyzAndHealthz(t *testing.T) {
	r := newRig(t)
	in := r.start(t, "solo", testCfg)
	base := "http://" + in.m.Addr().String()
	itest.WaitFor(t, 10*time.Second, "/readyz 200", func() bool { return httpStatus(t, base+"/readyz") == 200 })
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/nope": 404} {
		if got := httpStatus(t, base+path); got != want {
			t.Errorf("GET %s: got %d, want %d", path, got, want)
		}
	}
}

// A leader whose candidate node disappears (deleted by hand, as after a session expiry) stops
// acting and re-enters the election behind the standby.
func TestLeaderWithoutItsNodeStepsDown(t *testing.T) {
	r := newRig(t)
	first := r.start(t, "first", testCfg)
	itest.WaitFor(t, 10*time.Second, "first instance leading", first.m.IsLeader)
	second := r.start(t, "second", testCfg)
	itest.WaitFor(t, 10*time.Second, "second instance in the election", second.m.election.joined.Load)

	kids, _, err := r.conn.Children(r.layout.RedismonLeader())
	if err != nil || len(kids) != 2 {
		t.Fatalf("got candidates %v (%v), want 2", kids, err)
	}
	lowest := kids[0]
	for _, k := range kids {
		if sequence(k) < sequence(lowest) {
			lowest = k
		}
	}
	if err := r.conn.Delete(path.Join(r.layout.RedismonLeader(), lowest), -1); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, 10*time.Second, "standby leading, old leader standing by", func() bool {
		return second.m.IsLeader() && !first.m.IsLeader()
	})
	itest.WaitFor(t, 10*time.Second, "old leader back in the election", func() bool {
		kids, _, err := r.conn.Children(r.layout.RedismonLeader())
		return err == nil && len(kids) == 2
	})
	if first.m.IsLeader() {
		t.Fatal("both instances lead")
	}
}

// Promotion prefers the secondary holding more of the stream over one listed first.
func TestQueuePromotesTheMostUpToDateSecondary(t *testing.T) {
	r := newRig(t)
	primary := itest.StartRedis(t, itest.RedisOptions{})
	behind := itest.StartRedis(t, itest.RedisOptions{ReplicaOf: primary.Addr()})
	ahead := itest.StartRedis(t, itest.RedisOptions{ReplicaOf: primary.Addr()})
	ctx := context.Background()
	pc, bc := primary.Client(t), behind.Client(t)
	if err := pc.Set(ctx, "early", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := pc.Wait(ctx, 2, 5*time.Second).Result(); err != nil || n < 2 {
		t.Fatalf("WAIT 2: got %d, %v", n, err)
	}
	// "behind" stops following (as if its link broke) before the last writes.
	if err := bc.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(itest.FreePort(t))).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := pc.Set(ctx, fmt.Sprintf("late:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := pc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1: got %d, %v", n, err)
	}
	primary.Kill()

	q := discovery.QueueEndpoints{Primary: primary.Addr(), Secondary: []string{behind.Addr(), ahead.Addr()}}
	b, _ := json.Marshal(q)
	if _, err := r.conn.Create(r.layout.Queue(), b, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	r.start(t, "solo", testCfg)
	itest.WaitFor(t, 15*time.Second, "a secondary promoted", func() bool { return r.queue(t).Primary != primary.Addr() })
	if got := r.queue(t).Primary; got != ahead.Addr() {
		t.Fatalf("got %s promoted, want %s (the one with every write)", got, ahead.Addr())
	}
	itest.WaitFor(t, 15*time.Second, "the other secondary following the new primary", func() bool {
		v, err := bc.Get(ctx, "late:49").Int()
		return err == nil && v == 49 && role(t, bc) == "slave"
	})
}

// The reference's own setup lists a cache shard (16380) as the queue's secondary. redismon must
// neither make that shard a queue replica (wiping the cache) nor flush it (wiping the queue).
func TestServerInBothRolesIsLeftAlone(t *testing.T) {
	r := newRig(t)
	primary := itest.StartRedis(t, itest.RedisOptions{})
	both := itest.StartRedis(t, itest.RedisOptions{AOF: true})
	node := r.addShard(t, "redis1", both.Addr())
	ref := fmt.Sprintf(`{"primary": "%s", "secondary": ["%s"]}`, primary.Addr(), both.Addr())
	if _, err := r.conn.Create(r.layout.Queue(), []byte(ref), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	mon := r.start(t, "solo", testCfg)
	bc := both.Client(t)
	fill(t, bc, "kept", 10)

	primary.Kill()
	itest.WaitFor(t, 10*time.Second, "several failed queue probes", func() bool {
		return mon.metric(t, "redismon_probe_failures_total") >= float64(testCfg.FailThreshold+3)
	})
	if got := r.queue(t).Primary; got != primary.Addr() {
		t.Fatalf("got queue primary %s, want no promotion of the cache shard", got)
	}
	if got := role(t, bc); got != "master" {
		t.Fatalf("got ROLE %s on the shared server, want master (untouched)", got)
	}

	both.Kill()
	itest.WaitFor(t, 10*time.Second, "redis1 DOWN", func() bool { return r.shard(t, node).Status == discovery.StatusDown })
	both.Start(t)
	refused := mon.metric(t, "redismon_refused_actions_total")
	itest.WaitFor(t, 10*time.Second, "revival refused a few times", func() bool {
		return mon.metric(t, "redismon_refused_actions_total") >= refused+5
	})
	if got := r.shard(t, node).Status; got != discovery.StatusDown {
		t.Errorf("got redis1 %s, want DOWN: it cannot be flushed safely", got)
	}
	if n := dbsize(t, bc); n != 10 {
		t.Errorf("got DBSIZE %d on the shared server, want its 10 keys (not flushed)", n)
	}
}
