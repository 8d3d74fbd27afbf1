package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
)

// promTargets is the part of Prometheus's /api/v1/targets the check reads.
type promTargets struct {
	Data struct {
		ActiveTargets []struct {
			DiscoveredLabels map[string]string `json:"discoveredLabels"`
			ScrapePool       string            `json:"scrapePool"`
			ScrapeURL        string            `json:"scrapeUrl"`
			Health           string            `json:"health"`
			LastError        string            `json:"lastError"`
		} `json:"activeTargets"`
	} `json:"data"`
}

// prometheusAddr finds the service that runs Prometheus (by its --web.listen-address flag) and
// returns its address on the project network.
func prometheusAddr(ctx context.Context, s *stack) (string, error) {
	for _, name := range sortedNames(s.project) {
		for _, arg := range s.project.Services[name].Command {
			if listen, ok := strings.CutPrefix(arg, "--web.listen-address="); ok {
				_, port, _ := net.SplitHostPort(listen)
				p, _ := strconv.Atoi(port)
				return s.addr(ctx, name, p)
			}
		}
	}
	return "", errors.New("no service runs Prometheus with --web.listen-address")
}

// checkPrometheusTargets waits until every active target is up and every member registered in
// ZooKeeper is a target found by serverset discovery. Targets added later (more jobs, more
// services) are covered without a change here.
func checkPrometheusTargets(ctx context.Context, s *stack, tree zkTree) error {
	addr, err := prometheusAddr(ctx, s)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	return poll(ctx, 90*time.Second, 2*time.Second, func() error {
		var t promTargets
		if err := getJSON(ctx, hc, "http://"+addr+"/api/v1/targets?state=active", &t); err != nil {
			return err
		}
		return judgeTargets(t, tree)
	})
}

func judgeTargets(t promTargets, tree zkTree) error {
	var problems []string
	discovered := map[string]bool{}
	for _, tg := range t.Data.ActiveTargets {
		if _, ok := tg.DiscoveredLabels["__meta_serverset_path"]; ok {
			discovered[tg.DiscoveredLabels["__address__"]] = true
		}
		if tg.Health != "up" {
			problems = append(problems, fmt.Sprintf("%s %s is %q (%s)", tg.ScrapePool, tg.ScrapeURL, tg.Health, tg.LastError))
		}
	}
	for dir, members := range tree.members() {
		for _, m := range members {
			if !discovered[m.addr()] {
				problems = append(problems, fmt.Sprintf("%s member %s is not a serverset target", dir, m.addr()))
			}
		}
	}
	if len(discovered) == 0 {
		problems = append(problems, "no target found through ZooKeeper")
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// sessionTimeout is the ZooKeeper session timeout the service's daemon asks for: its
// <BINARY>_ZK_SESSION_TIMEOUT, else the flag's default.
func sessionTimeout(svc service) (time.Duration, error) {
	var cfg discovery.Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if len(svc.Command) > 0 {
		if v := svc.env(strings.ToUpper(svc.Command[0]) + "_ZK_SESSION_TIMEOUT"); v != "" {
			if err := fs.Set("zk-session-timeout", v); err != nil {
				return 0, fmt.Errorf("session timeout %q: %w", v, err)
			}
		}
	}
	return cfg.SessionTimeout, nil
}

// zkAddr is ZooKeeper's address on the project network, from zoo_setup's ZOO_SETUP_ZK.
func zkAddr(ctx context.Context, s *stack) (string, error) {
	host, port, err := net.SplitHostPort(s.project.Services["zoo_setup"].env("ZOO_SETUP_ZK"))
	if err != nil {
		return "", fmt.Errorf("zoo_setup's ZOO_SETUP_ZK: %w", err)
	}
	p, _ := strconv.Atoi(port)
	return s.addr(ctx, host, p)
}

// checkGuidKill kills the last guidd container with SIGKILL while posts are written, and measures
// how long its node stays in ZooKeeper (read directly, every 100 ms). It returns that time.
func checkGuidKill(ctx context.Context, log *slog.Logger, s *stack, w *writer, tree zkTree) (time.Duration, error) {
	guids := servicesRunning(s.project, "guidd")
	if len(guids) < 2 {
		return 0, fmt.Errorf("found %d guidd services, want at least 2", len(guids))
	}
	victim := guids[len(guids)-1]
	node, err := nodeOf(tree, "guid", s.project.Services[victim].env("GUIDD_ADVERTISE"))
	if err != nil {
		return 0, err
	}
	timeout, err := sessionTimeout(s.project.Services[victim])
	if err != nil {
		return 0, err
	}
	conn, err := dialZK(ctx, s)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	dir := discovery.Layout{Root: tree.Root}.Nodes("guid")
	if err := nodePresent(conn, dir, node); err != nil {
		return 0, err
	}
	if _, err := s.compose(ctx, "kill", "--signal", "SIGKILL", victim); err != nil {
		return 0, err
	}
	killed := time.Now()
	writes := make(chan error, 1)
	go func() { writes <- writeSome(ctx, w, "during the guidd's session timeout", 6) }()
	gone := poll(ctx, timeout+2*time.Second, 100*time.Millisecond, func() error { return nodeAbsent(conn, dir, node) })
	took := time.Since(killed)
	log.Info("killed guidd", "service", victim, "node", node, "gone_after", took, "session_timeout", timeout)
	return took, errors.Join(gone, prefix("writes right after the kill", <-writes),
		prefix("writes after its node left", writeSome(ctx, w, "after the guidd left", 6)))
}

func prefix(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// writeSome writes n posts, round robin over the postsvcds.
func writeSome(ctx context.Context, w *writer, what string, n int) error {
	var errs []error
	for range n {
		if _, err := w.next(ctx, what); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d failed: %w", len(errs), n, errors.Join(errs...))
	}
	return nil
}

func nodeOf(tree zkTree, dir, addr string) (string, error) {
	for _, m := range tree.Services[dir] {
		if m.addr() == addr {
			return m.Node, nil
		}
	}
	return "", fmt.Errorf("no %s member advertises %s", dir, addr)
}

func dialZK(ctx context.Context, s *stack) (*zk.Conn, error) {
	addr, err := zkAddr(ctx, s)
	if err != nil {
		return nil, err
	}
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		return nil, fmt.Errorf("connecting to ZooKeeper at %s: %w", addr, err)
	}
	return conn, nil
}

// quietZK drops the client library's log lines.
type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

func nodePresent(conn *zk.Conn, dir, node string) error {
	children, _, err := conn.Children(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	if !slices.Contains(children, node) {
		return fmt.Errorf("%s/%s is not there before the kill", dir, node)
	}
	return nil
}

func nodeAbsent(conn *zk.Conn, dir, node string) error {
	children, _, err := conn.Children(dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	if slices.Contains(children, node) {
		return fmt.Errorf("%s/%s is still there", dir, node)
	}
	return nil
}
