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
	"github.com/the-red/zkpost/internal/itest"
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
