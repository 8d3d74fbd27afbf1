package main

import (
	"path"
	"strconv"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestLifecycle: redismon starts with ZooKeeper down (alive, not ready), joins the election and
// registers its serverset node under R/redismon/nodes (where Prometheus discovers it) once
// ZooKeeper is up, reports the shard it watches and its ZooKeeper session on /metrics, and on
// SIGTERM leaves the election and deletes its node before it exits.
func TestLifecycle(t *testing.T) {
	itest.SkipShort(t, "builds the binary")
	z := itest.StartZooKeeper(t)
	shard := itest.StartRedis(t, itest.RedisOptions{})
	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	base := "http://" + addr
	layout := discovery.Layout{Root: "/redismon_lifecycle"}
	daemontest.Lifecycle{
		ZK: z, Base: base, Root: layout.Root, NodeDir: layout.RedismonNodes(), Node: addr,
		Spec: itest.Launch(t, launch.Redismon, launch.Instance{Listen: addr, ZK: z.Addr(), ZKRoot: layout.Root,
			ZKSessionTimeout: 4 * time.Second}, "--probe-interval", "100ms", "--log-format", "text"),
		WhileDown: func(t *testing.T) {
			daemontest.WaitMetric(t, base, "redismon_is_leader", 0)
		},
		OnZooKeeperUp: func(t *testing.T, conn *discovery.Conn) {
			daemontest.CreateNode(t, conn, path.Join(layout.CacheNodes(), discovery.CacheNodeName("redis1", shard.Addr())), nil)
		},
		WhileReady: func(t *testing.T) {
			daemontest.WaitMetric(t, base, "redismon_is_leader", 1)
			daemontest.WaitMetric(t, base, `redismon_cache_shard_up{shard="redis1"}`, 1)
			if code, _ := daemontest.Get(t, base+"/nope"); code != 404 {
				t.Errorf("/nope: got %d, want 404", code)
			}
			daemontest.WaitMetric(t, base, `http_requests_total{route="not_found",status="404"}`, 1)
			daemontest.RequireSeries(t, base, `zk_watch_snapshot_age_seconds{path="`+layout.CacheNodes()+`"}`)
		},
		AfterStop: func(t *testing.T, conn *discovery.Conn) {
			kids, _, err := conn.ZK().Children(layout.RedismonLeader())
			if err != nil || len(kids) != 0 {
				t.Errorf("election candidates right after SIGTERM: %v (err %v), want none", kids, err)
			}
		},
	}.Run(t)
}
