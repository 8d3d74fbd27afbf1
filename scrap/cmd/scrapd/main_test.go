package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/testenv/daemontest"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestScrapd runs the real binary on a real ZooKeeper: it registers its serverset node, serves a
// preview of a local page (reachable through --allow-cidr), and on SIGTERM deletes its node before
// exiting, so the node is gone at once rather than after the session timeout.
func TestScrapd(t *testing.T) {
	zk := itest.StartZooKeeper(t)
	bin := itest.BuildBinary(t, "./scrap/cmd/scrapd")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><head><meta property="og:title" content="Fixture"></head></html>`)
	}))
	t.Cleanup(page.Close)

	port := itest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	const root = "/scrapd_test"
	p := itest.StartDaemon(t, itest.DaemonSpec{
		Name: "scrapd", Bin: bin, Port: port, ReadyURL: "http://" + addr + "/readyz",
		Args: []string{
			"--listen", addr, "--zk", zk.Addr(), "--zk-root", root, "--zk-session-timeout", "4s",
			"--allow-cidr", "127.0.0.1/32", "--log-format", "text",
		},
	})

	conn, err := discovery.Dial(discovery.Config{Servers: zk.Addr(), Root: root, SessionTimeout: 4 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	node := path.Join(discovery.Layout{Root: root}.Nodes("scrap"), addr)
	itest.WaitFor(t, 10*time.Second, "scrapd's node "+node, func() bool {
		ok, _, err := conn.ZK().Exists(node)
		return err == nil && ok
	})
	data, _, err := conn.ZK().Get(node)
	if err != nil {
		t.Fatal(err)
	}
	var ss discovery.ServerSet
	if err := json.Unmarshal(data, &ss); err != nil || ss.ServiceEndpoint.String() != addr || ss.Status != "ALIVE" {
		t.Fatalf("node data %s: want a serverset for %s (err %v)", data, addr, err)
	}

	resp, err := http.Get("http://" + addr + "/api/v1/scrap?url=" + url.QueryEscape(page.URL+"/p"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !json.Valid(body) {
		t.Fatalf("scrap: got %d %s, want 200", resp.StatusCode, body)
	}
	var env struct {
		Code  int `json:"code"`
		Scrap struct {
			Title *string `json:"title"`
		} `json:"scrap"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Scrap.Title == nil || *env.Scrap.Title != "Fixture" {
		t.Fatalf("scrap: got %s, want the fixture's title", body)
	}

	p.Stop()
	if p.Running() {
		t.Fatal("scrapd still running after SIGTERM")
	}
	// The session (4s) outlives the process; only a deregistration removes the node this early.
	ok, _, err := conn.ZK().Exists(node)
	if err != nil || ok {
		t.Fatalf("node %s after SIGTERM: exists=%v err=%v, want it deleted before exit", node, ok, err)
	}
	if log := p.Log(); !strings.Contains(log, "zk registered") || !strings.Contains(log, "stopped") {
		t.Errorf("log lacks the register/stop events:\n%s", log)
	}
}

// TestLifecycle: scrapd starts with ZooKeeper down and serves (its job needs no ZooKeeper, so it
// is ready), registers once ZooKeeper is up, counts requests and errors by kind, and deletes its
// node on SIGTERM.
func TestLifecycle(t *testing.T) {
	z := itest.StartZooKeeper(t)
	port := itest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	base := "http://" + addr
	layout := discovery.Layout{Root: "/scrapd_lifecycle"}
	daemontest.Lifecycle{
		ZK: z, Base: base, Root: layout.Root, NodeDir: layout.Nodes("scrap"), Node: addr, ReadyWithoutZooKeeper: true,
		Spec: itest.Launch(t, launch.Scrapd, launch.Instance{Listen: addr, ZK: z.Addr(), ZKRoot: layout.Root,
			ZKSessionTimeout: 4 * time.Second}, "--log-format", "text"),
		WhileReady: func(t *testing.T) {
			for _, tc := range []struct {
				target string
				want   int
			}{
				{"not a url", 400},
				{"http://10.0.0.1/", 403},
				{"http://169.254.169.254/latest/meta-data/", 403},
			} {
				if code, body := daemontest.Get(t, base+"/api/v1/scrap?url="+url.QueryEscape(tc.target)); code != tc.want {
					t.Errorf("scrap %q: got %d %s, want %d", tc.target, code, body, tc.want)
				}
			}
			m := daemontest.Metrics(t, base)
			for series, want := range map[string]string{
				`http_requests_total{route="scrap",status="400"}`:                 "1",
				`http_requests_total{route="scrap",status="403"}`:                 "2",
				`http_errors_total{error="invalid_url",route="scrap"}`:            "1",
				`http_errors_total{error="blocked_address",route="scrap"}`:        "2",
				`http_request_duration_seconds_count{route="scrap",status="403"}`: "2",
			} {
				if got := m[series]; got != want {
					t.Errorf("%s: got %q, want %q", series, got, want)
				}
			}
		},
	}.Run(t)
}
