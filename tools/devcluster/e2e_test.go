package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
	"github.com/the-red/zkpost/tools/loadgen/load"
)

// daemons are the binaries the cluster runs, by package.
var daemons = []string{
	"./guid/cmd/guidd", "./scrap/cmd/scrapd", "./postsvc/cmd/postsvcd", "./writeback/cmd/writebackd",
	"./tools/zoo_setup", "./tools/redismon", "./tools/workwebui", "./tools/zkexporter",
}

// startCluster builds our binaries and brings a whole cluster up on free ports in a temp dir. It
// is brought down, and checked to leave nothing behind, when the test ends. tune, if given,
// adjusts the configuration first.
func startCluster(t *testing.T, tune ...func(*cluster.Config)) *cluster.Cluster {
	t.Helper()
	for _, bin := range []string{"java", "redis-server", "mariadbd", "mariadb-install-db", "prometheus"} {
		itest.Require(t, bin)
	}
	var binDir string
	for _, pkg := range daemons {
		p := itest.BuildBinary(t, pkg)
		if binDir != "" && filepath.Dir(p) != binDir {
			t.Fatalf("binaries built into different directories: %s and %s", binDir, filepath.Dir(p))
		}
		binDir = filepath.Dir(p)
	}
	ports, err := cluster.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.Config{
		Dir: t.TempDir(), BinDir: binDir, Ports: ports,
		ZKSessionTimeout: 2 * time.Second,
		ScrapAllowCIDR:   "127.0.0.0/8", // the test's page is local
		ScrapeInterval:   time.Second,
		ReadyTimeout:     2 * time.Minute,
		// The exporters only add load here; TestMonitoringWithRealProcesses runs them.
		Skip: exporterNodes(),
		ExtraArgs: map[string][]string{
			"redismon-1": {"--probe-interval", "200ms", "--fail-threshold", "3"},
			"redismon-2": {"--probe-interval", "200ms", "--fail-threshold", "3"},
		},
	}
	for _, f := range tune {
		f(&cfg)
	}
	c, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bringDown(t, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("cluster of %d nodes up in %s", len(c.Nodes()), time.Since(start).Round(time.Millisecond))
	return c
}

// bringDown stops the cluster and checks that no process and no port is left.
func bringDown(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	st, _ := cluster.ReadState(c.Config().Dir)
	if err := c.Down(context.Background()); err != nil {
		t.Errorf("down: %v", err)
	}
	for _, n := range st.Nodes {
		if cluster.Alive(n.Pid, n.Bin) {
			t.Errorf("after down, %s (pid %d) is still running", n.Name, n.Pid)
		}
	}
	for _, name := range c.Nodes() {
		if port := c.Port(name); port != 0 {
			if conn, err := net.DialTimeout("tcp", c.Addr(name), 200*time.Millisecond); err == nil {
				conn.Close()
				t.Errorf("after down, something still listens on %s's port %d", name, port)
			}
		}
	}
	if t.Failed() {
		for _, name := range c.Nodes() {
			t.Logf("log of %s: %s", name, c.LogPath(name))
		}
	}
}

func TestEndToEnd(t *testing.T) {
	itest.SkipShort(t, "the whole cluster: skipped in -short")
	page := localPage(t)
	c := startCluster(t)
	api := "http://" + c.Addr("postsvc-1")

	// Posts with and without a link, read back through the other postsvcd.
	plain := writePost(t, api, 7, "plain post", "")
	linked := writePost(t, api, 7, "linked post", page)
	itest.WaitFor(t, 10*time.Second, "both posts in user 7's timeline", func() bool {
		posts := timeline(t, "http://"+c.Addr("postsvc-2"), 7)
		return len(posts) == 2 && posts[0].ID == linked && posts[1].ID == plain &&
			posts[0].Scrap.Title == "E2E page" && posts[0].URL == page
	})

	// Prometheus finds every node of ours in ZooKeeper.
	prom := "http://" + c.Addr("prometheus")
	// 3 guidd, 2 scrapd, 2 postsvcd, 2 writebackd and 2 redismon.
	itest.WaitFor(t, 60*time.Second, "Prometheus scraping all 11 nodes", func() bool {
		return len(upTargets(prom)) == 11
	})

	// Load runs while one node of each kind is killed in turn.
	var rep *load.Report
	var loadErr error
	var wg sync.WaitGroup
	wg.Add(1)
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	go func() {
		defer wg.Done()
		rep, loadErr = load.Run(ctx, load.Config{
			Targets:  func() []string { return []string{c.Addr("postsvc-1"), c.Addr("postsvc-2")} },
			Duration: 90 * time.Second, Concurrency: 4, Rate: 150, ReadRatio: 0.3,
			Users: 50, UserBase: 1000, URL: page, URLEvery: 10, Timeout: 10 * time.Second,
		})
	}()

	killService(t, c, prom, "guid-2", "guid")
	killService(t, c, prom, "scrap-1", "scrap")
	killCacheShard(t, c, "redis2")
	crashWriteback(t, c, "writeback-1")
	stopLoad()
	wg.Wait()
	if loadErr != nil {
		t.Fatalf("load: %v", loadErr)
	}
	t.Logf("load: %d writes acknowledged, %d failed (%v); %d reads; write p50 %s p99 %s",
		rep.Writes, rep.WriteErrors, rep.Errors, rep.Reads, rep.WriteLatency.P50, rep.WriteLatency.P99)
	if rep.Writes < 100 {
		t.Fatalf("got %d acknowledged writes under load, want at least 100", rep.Writes)
	}

	// Every acknowledged post reaches MySQL exactly once.
	vctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	acks := append(rep.Acks, load.Ack{PostID: plain, UserID: 7}, load.Ack{PostID: linked, UserID: 7})
	v, err := load.Verify(vctx, c.DSN("mariadb-primary"), acks, 90*time.Second)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !v.OK() {
		t.Fatalf("verify: %d acknowledged, %d found, missing %v, duplicated %v, wrong user %v",
			v.Acked, v.Found, v.Missing, v.Duplicated, v.WrongUser)
	}
	t.Logf("verify: all %d acknowledged posts in MySQL exactly once (waited %s)", v.Acked, v.Waited.Round(time.Millisecond))
}

// killService SIGKILLs a node through the supervisor and checks that ZooKeeper and Prometheus
// both drop it, then starts it again and checks they both take it back.
func killService(t *testing.T, c *cluster.Cluster, prom, node, service string) {
	t.Helper()
	addr := c.Addr(node)
	if err := c.Kill(node); err != nil {
		t.Fatalf("kill %s: %v", node, err)
	}
	itest.WaitFor(t, 15*time.Second, node+" to leave ZooKeeper", func() bool { return !registered(c, service, addr) })
	itest.WaitFor(t, 30*time.Second, node+" to leave Prometheus' targets", func() bool {
		return !slices.Contains(targets(prom, service), addr)
	})
	if c.Pid(node) != 0 {
		t.Fatalf("%s was restarted after kill; want it left down", node)
	}
	if err := c.Start(context.Background(), node); err != nil {
		t.Fatalf("start %s: %v", node, err)
	}
	itest.WaitFor(t, 15*time.Second, node+" back in ZooKeeper", func() bool { return registered(c, service, addr) })
	itest.WaitFor(t, 30*time.Second, node+" scraped again", func() bool { return slices.Contains(upTargets(prom), addr) })
}

// killCacheShard kills a cache Redis and checks that redismon marks it DOWN and both postsvcd
// drop it from their rings; then it starts it and checks it comes back ALIVE.
func killCacheShard(t *testing.T, c *cluster.Cluster, node string) {
	t.Helper()
	zkName := node + ":" + c.Addr(node)
	if err := c.Kill(node); err != nil {
		t.Fatalf("kill %s: %v", node, err)
	}
	itest.WaitFor(t, 15*time.Second, node+" marked DOWN in ZooKeeper", func() bool { return shardStatus(c, zkName) == "DOWN" })
	for _, ps := range []string{"postsvc-1", "postsvc-2"} {
		itest.WaitFor(t, 15*time.Second, ps+"'s ring to drop "+node, func() bool { return ringMembers(c.Addr(ps)) == 2 })
	}
	if err := c.Start(context.Background(), node); err != nil {
		t.Fatalf("start %s: %v", node, err)
	}
	itest.WaitFor(t, 15*time.Second, node+" ALIVE again", func() bool { return shardStatus(c, zkName) == "ALIVE" })
	for _, ps := range []string{"postsvc-1", "postsvc-2"} {
		itest.WaitFor(t, 15*time.Second, ps+"'s ring to take "+node+" back", func() bool { return ringMembers(c.Addr(ps)) == 3 })
	}
}

// crashWriteback SIGKILLs a writebackd behind the supervisor's back, as a crash, and checks that
// the supervisor restarts it and it registers again.
func crashWriteback(t *testing.T, c *cluster.Cluster, node string) {
	t.Helper()
	pid := c.Pid(node)
	if pid == 0 {
		t.Fatalf("%s is not running", node)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing %s: %v", node, err)
	}
	itest.WaitFor(t, 30*time.Second, node+" restarted by the supervisor", func() bool {
		p := c.Pid(node)
		return p != 0 && p != pid && httpStatus("http://"+c.Addr(node)+"/readyz") == http.StatusOK
	})
	itest.WaitFor(t, 15*time.Second, node+" registered again", func() bool { return registered(c, "writeback", c.Addr(node)) })
}

func localPage(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<html><head><meta property="og:title" content="E2E page">`+
			`<meta property="og:description" content="a local page"></head><body>hi</body></html>`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/page"
}

type post struct {
	ID    string `json:"post_id_str"`
	URL   string `json:"url"`
	Scrap struct {
		Title string `json:"title"`
	} `json:"scrap"`
}

func writePost(t *testing.T, api string, uid int, contents, url string) string {
	t.Helper()
	body := map[string]any{"user_id": uid, "contents": contents}
	if url != "" {
		body["url"] = url
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(api+"/api/v1/posts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("writing a post: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("writing a post: got %s %s, want 201", resp.Status, out)
	}
	var p post
	if err := json.Unmarshal(out, &p); err != nil || p.ID == "" {
		t.Fatalf("writing a post: bad answer %s (%v)", out, err)
	}
	return p.ID
}

func timeline(t *testing.T, api string, uid int) []post {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/posts/%d?limit=10", api, uid))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var page struct{ Posts []post }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&page) != nil {
		return nil
	}
	return page.Posts
}

func registered(c *cluster.Cluster, service, addr string) bool {
	kids, err := c.ZKChildren(service + "/nodes")
	return err == nil && slices.Contains(kids, addr)
}

func shardStatus(c *cluster.Cluster, zkName string) string {
	data, err := c.ZKGet("cache/nodes/" + zkName)
	if err != nil {
		return "absent"
	}
	var doc struct{ Status string }
	if len(bytes.TrimSpace(data)) == 0 {
		return "ALIVE"
	}
	if json.Unmarshal(data, &doc) != nil {
		return "bad data"
	}
	return strings.ToUpper(doc.Status)
}

// ringMembers reads postsvc_cache_ring_members from a postsvcd's /metrics; -1 if unreadable.
func ringMembers(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "postsvc_cache_ring_members "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	return -1
}

type promTarget struct {
	Labels struct{ Job, Instance string }
	Health string
}

func promTargets(prom string) []promTarget {
	resp, err := http.Get(prom + "/api/v1/targets?state=active")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct{ ActiveTargets []promTarget }
	}
	if json.NewDecoder(resp.Body).Decode(&doc) != nil {
		return nil
	}
	return doc.Data.ActiveTargets
}

// targets lists the instances of one job.
func targets(prom, job string) []string {
	var out []string
	for _, tg := range promTargets(prom) {
		if tg.Labels.Job == job {
			out = append(out, tg.Labels.Instance)
		}
	}
	return out
}

// upTargets lists the instances, of our jobs (ServiceDirs), that Prometheus scraped successfully.
func upTargets(prom string) []string {
	var out []string
	for _, tg := range promTargets(prom) {
		if tg.Health == "up" && slices.Contains(cluster.ServiceDirs, tg.Labels.Job) {
			out = append(out, tg.Labels.Instance)
		}
	}
	return out
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
