package main

import (
	"context"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post/mysql"
)

// TestLifecycle: postsvcd starts with ZooKeeper down (alive, not ready), becomes ready once
// ZooKeeper lists a guid server, the cache shards, the queue and the database, and exposes what
// an operator watches: the ring's members, cache errors (its one shard is dead, so a timeline
// read falls back to the database), the replica's lag, requests and errors by route, and the
// ZooKeeper session. On SIGTERM its node goes before it exits.
func TestLifecycle(t *testing.T) {
	z := itest.StartZooKeeper(t)
	primary := itest.StartMariaDB(t)
	if err := mysql.Migrate(context.Background(), primary.DB(t, "zkpost")); err != nil {
		t.Fatal(err)
	}
	replica := itest.StartMariaDBReplica(t, primary)
	replica.WaitReplicated(t, primary)
	deadShard := "127.0.0.1:" + strconv.Itoa(itest.FreePort(t)) // nothing listens there

	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	base := "http://" + addr
	layout := discovery.Layout{Root: "/postsvcd_lifecycle"}
	daemontest.Lifecycle{
		ZK: z, Base: base, Root: layout.Root, NodeDir: layout.Nodes("postsvc"), Node: addr,
		Spec: itest.Launch(t, launch.Postsvcd, launch.Instance{Listen: addr, ZK: z.Addr(), ZKRoot: layout.Root,
			ZKSessionTimeout: 4 * time.Second, DB: launch.Account{User: "root", Name: "zkpost"}},
			"--cache-timeout", "300ms", "--log-format", "text"),
		OnZooKeeperUp: func(t *testing.T, conn *discovery.Conn) {
			guidNode, _ := discovery.NewServerSet("127.0.0.1:1", 0) // listed, never answers
			daemontest.CreateNode(t, conn, path.Join(layout.Nodes("guid"), "127.0.0.1:1"), guidNode)
			daemontest.CreateNode(t, conn, path.Join(layout.CacheNodes(), discovery.CacheNodeName("redis1", deadShard)), nil)
			daemontest.CreateNode(t, conn, layout.Queue(), daemontest.JSON(discovery.QueueEndpoints{Primary: deadShard}))
			daemontest.CreateNode(t, conn, layout.DB(), daemontest.JSON(discovery.DBEndpoints{Primary: primary.Addr(), Replicas: []string{replica.Addr()}}))
		},
		WhileReady: func(t *testing.T) {
			daemontest.WaitMetric(t, base, `db_replica_lag_seconds{addr="`+replica.Addr()+`"}`, 0)
			daemontest.WaitMetric(t, base, `db_endpoint_healthy{addr="`+replica.Addr()+`",role="replica"}`, 1)
			if code, body := daemontest.Get(t, base+"/api/v1/posts/42"); code != 200 || !strings.Contains(body, `"posts":[]`) {
				t.Fatalf("timeline with the cache shard dead: got %d %s, want 200 and an empty list from the database", code, body)
			}
			if code, _ := daemontest.Get(t, base+"/api/v1/posts/0"); code != 400 {
				t.Fatalf("user 0: got %d, want 400", code)
			}
			m := daemontest.Metrics(t, base)
			for series, want := range map[string]string{
				"postsvc_cache_ring_members":                                           "1",
				`http_requests_total{route="posts_list",status="200"}`:                 "1",
				`http_requests_total{route="posts_list",status="400"}`:                 "1",
				`http_request_duration_seconds_count{route="posts_list",status="400"}`: "1",
				`zk_session_connected`:                                                 "1",
			} {
				if got := m[series]; got != want {
					t.Errorf("%s: got %q, want %q", series, got, want)
				}
			}
			if !anySeries(m, "http_errors_total{", `route="posts_list"`) {
				t.Errorf("/metrics lacks http_errors_total for the 400 on posts_list")
			}
			if !anySeries(m, "postsvc_cache_ops_total{", `result="error"`) {
				t.Errorf("/metrics lacks postsvc_cache_ops_total with result=\"error\" after a read from a dead shard")
			}
			for _, watched := range []string{layout.CacheNodes(), layout.Queue(), layout.DB(), layout.Nodes("guid")} {
				if _, ok := m[`zk_watch_snapshot_age_seconds{path="`+watched+`"}`]; !ok {
					t.Errorf("/metrics lacks zk_watch_snapshot_age_seconds for %s", watched)
				}
			}
		},
	}.Run(t)
}

func anySeries(m map[string]string, prefix, label string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) && strings.Contains(k, label) {
			return true
		}
	}
	return false
}
