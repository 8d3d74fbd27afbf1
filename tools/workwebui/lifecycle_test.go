package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestStartsWithZooKeeperDown: workwebui is alive but not ready while ZooKeeper is down (the
// queue primary is named there), becomes ready once ZooKeeper names a reachable primary, and
// exposes its request and ZooKeeper metrics. It registers nowhere: an unauthenticated admin UI on
// loopback has no business being discovered.
func TestStartsWithZooKeeperDown(t *testing.T) {
	z := itest.StartZooKeeper(t)
	queue := itest.StartRedis(t, itest.RedisOptions{})
	z.Kill()
	const root = "/workwebui_lifecycle"
	port := itest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--zk", z.Addr(),
			"--zk-root", root, "--zk-session-timeout", "2s"}, func(string) string { return "" }, io.Discard)
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	itest.WaitFor(t, 20*time.Second, "/healthz with ZooKeeper down", func() bool { return status(base+"/healthz") == http.StatusOK })
	if got := status(base + "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with ZooKeeper down: got %d, want 503", got)
	}
	daemontest.WaitMetric(t, base, "zk_session_connected", 0)

	z.Start(t)
	conn := daemontest.Dial(t, z, root)
	layout := discovery.Layout{Root: root}
	daemontest.CreateNode(t, conn, layout.Queue(), daemontest.JSON(discovery.QueueEndpoints{Primary: queue.Addr()}))
	itest.WaitFor(t, 20*time.Second, "/readyz once ZooKeeper names the primary", func() bool { return status(base+"/readyz") == http.StatusOK })
	daemontest.WaitMetric(t, base, "zk_session_connected", 1)
	daemontest.WaitMetric(t, base, "workwebui_queue_reachable", 1)
	daemontest.RequireSeries(t, base, `http_requests_total{route="readyz",status="503"}`, `http_requests_total{route="healthz",status="200"}`,
		`http_request_duration_seconds_count{route="readyz",status="200"}`, `zk_watch_snapshot_age_seconds{path="`+layout.Queue()+`"}`)

	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v, want a clean stop", err)
	}
}
