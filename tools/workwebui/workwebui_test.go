package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gocraft/work"
	"github.com/gomodule/redigo/redis"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

const testRoot = "/workwebui_test"

func TestUIFollowsQueuePrimary(t *testing.T) {
	zkServer := itest.StartZooKeeper(t)
	r1 := itest.StartRedis(t, itest.RedisOptions{})
	r2 := itest.StartRedis(t, itest.RedisOptions{})
	conn, _, err := zk.Connect(zkServer.Servers(), 5*time.Second, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	setPrimary := func(addr string) {
		t.Helper()
		data := []byte(`{"primary":"` + addr + `","secondary":[]}`)
		for _, p := range []string{testRoot, testRoot + "/queue"} {
			if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
				t.Fatalf("creating %s: %v", p, err)
			}
		}
		_, err := conn.Create(testRoot+"/queue/sidekiq", data, 0, zk.WorldACL(zk.PermAll))
		if err == zk.ErrNodeExists {
			_, err = conn.Set(testRoot+"/queue/sidekiq", data, -1)
		}
		if err != nil {
			t.Fatalf("writing the queue node: %v", err)
		}
	}
	setPrimary(r1.Addr())
	enqueue(t, r1.Addr(), 3)

	port := itest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--zk", zkServer.Addr(),
			"--zk-root", testRoot, "--zk-session-timeout", "2s"}, func(string) string { return "" }, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	itest.WaitFor(t, 20*time.Second, "/readyz", func() bool { return status(base+"/readyz") == http.StatusOK })
	for _, p := range []string{"/healthz", "/metrics", "/", "/work.js"} {
		if got := status(base + p); got != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", p, got)
		}
	}
	itest.WaitFor(t, 10*time.Second, "3 jobs listed on the first primary", func() bool { return queued(base) == 3 })

	setPrimary(r2.Addr())
	itest.WaitFor(t, 10*time.Second, "the UI to follow the new primary (0 jobs)", func() bool { return queued(base) == 0 })

	r2.Kill()
	itest.WaitFor(t, 10*time.Second, "/readyz to fail with the primary down", func() bool {
		return status(base+"/readyz") == http.StatusServiceUnavailable
	})
}

func enqueue(t *testing.T, addr string, n int) {
	t.Helper()
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", addr) }}
	defer pool.Close()
	e := work.NewEnqueuer("the_red", pool)
	for i := range n {
		if _, err := e.Enqueue("persist_post", work.Q{"post_id": strconv.Itoa(i)}); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// queued returns the persist_post count of GET /queues, or -1.
func queued(base string) int {
	resp, err := http.Get(base + "/queues")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var qs []struct {
		JobName string `json:"job_name"`
		Count   int    `json:"count"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&qs) != nil {
		return -1
	}
	for _, q := range qs {
		if q.JobName == "persist_post" {
			return q.Count
		}
	}
	return 0
}

func TestLoopback(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"127.0.0.1:5040", true}, {"localhost:5040", true}, {"[::1]:5040", true},
		{"0.0.0.0:5040", false}, {":5040", false}, {"10.0.0.1:5040", false}, {"garbage", false},
	} {
		if got := loopback(tc.in); got != tc.want {
			t.Errorf("loopback(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}
