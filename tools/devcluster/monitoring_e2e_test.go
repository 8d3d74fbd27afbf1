package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/tools/devcluster/cluster"
)

// TestMonitoringWithRealProcesses runs the whole cluster with its exporters and checks
// docs/monitoring.md end to end: Prometheus finds every exporter through ZooKeeper, evaluates
// every rule without error and alerts on nothing while all is well; a killed cache shard makes
// the real CacheShardDown alert pending, which clears once the shard is back.
func TestMonitoringWithRealProcesses(t *testing.T) {
	itest.SkipShort(t, "the whole cluster: skipped in -short")
	for _, bin := range []string{"prometheus-redis-exporter", "prometheus-mysqld-exporter", "prometheus-node-exporter"} {
		itest.Require(t, bin)
	}
	// Scrapes of 31 processes on 2 shared cores can take over a second: 1s scrapes would time out.
	c := startCluster(t, func(cfg *cluster.Config) {
		cfg.ScrapeInterval = 5 * time.Second
		cfg.Skip = nil // with the exporters
	})
	prom := "http://" + c.Addr("prometheus")

	// 5 Redis, 2 MariaDB, the host and ZooKeeper: 9 exporters, none a static target.
	want := map[string]int{"redis_exporter": 5, "mysqld_exporter": 2, "node_exporter": 1, "zookeeper_exporter": 1}
	if !itest.Eventually(3*time.Minute, func() bool {
		for job, n := range want {
			if len(upTargetsOf(prom, job)) != n {
				return false
			}
		}
		return true
	}) {
		resp, err := http.Get(prom + "/api/v1/targets?state=active")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("targets: %s", b)
		}
		t.Fatalf("want %v exporters up", want)
	}
	for _, q := range []string{`redis_up == 1`, `mysql_up == 1`, `zookeeper_up == 1`, `node_load1`,
		`queue_backlog_jobs{state="queued"}`, `queue_oldest_job_age_seconds`, `job:up:sum{job="guid"} == 3`} {
		itest.WaitFor(t, time.Minute, "a series for "+q, func() bool { return len(query(prom, q)) > 0 })
	}
	itest.WaitFor(t, time.Minute, "every rule evaluated without error", func() bool {
		bad, n := ruleErrors(prom)
		return n > 0 && len(bad) == 0
	})
	// Other alerts may be right to fire on a machine this busy (a ZooKeeper session lost under
	// load); the one under test must not.
	got := alerts(prom)
	t.Logf("alerts on the healthy cluster: %v", got)
	if slices.ContainsFunc(got, func(a string) bool { return strings.HasPrefix(a, "CacheShardDown/") }) {
		t.Fatalf("CacheShardDown with every shard up: %v", got)
	}
	checkConsole(t, prom)

	if err := c.Kill("redis2"); err != nil {
		t.Fatal(err)
	}
	// Pending first (for: 1m); firing if this machine is slow enough to take a minute.
	itest.WaitFor(t, time.Minute, "CacheShardDown pending for redis2", func() bool {
		a := alerts(prom)
		return slices.Contains(a, "CacheShardDown/redis2/pending") || slices.Contains(a, "CacheShardDown/redis2/firing")
	})
	if err := c.Start(context.Background(), "redis2"); err != nil {
		t.Fatal(err)
	}
	itest.WaitFor(t, time.Minute, "CacheShardDown cleared", func() bool {
		return !slices.ContainsFunc(alerts(prom), func(a string) bool { return strings.HasPrefix(a, "CacheShardDown/") })
	})
}

// checkConsole fetches the zkpost console: it renders, with its graphs and the live summary.
func checkConsole(t *testing.T, prom string) {
	t.Helper()
	resp, err := http.Get(prom + "/consoles/zkpost.html")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if resp.StatusCode != http.StatusOK || strings.Count(page, "new PromConsole.Graph") < 30 ||
		!strings.Contains(page, "<td>redis_exporter</td><td>5</td>") {
		t.Fatalf("GET /consoles/zkpost.html: status %d, want 200 with 30+ graphs and 5 live redis exporters:\n%.2000s",
			resp.StatusCode, page)
	}
}

func upTargetsOf(prom, job string) []string {
	var out []string
	for _, tg := range promTargets(prom) {
		if tg.Health == "up" && tg.Labels.Job == job {
			out = append(out, tg.Labels.Instance)
		}
	}
	return out
}

// query runs an instant query and returns its series' labels.
func query(prom, q string) []map[string]string {
	resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			Result []struct{ Metric map[string]string }
		}
	}
	if json.NewDecoder(resp.Body).Decode(&doc) != nil {
		return nil
	}
	var out []map[string]string
	for _, r := range doc.Data.Result {
		out = append(out, r.Metric)
	}
	return out
}

// alerts lists the pending and firing alerts as name/shard/state.
func alerts(prom string) []string {
	resp, err := http.Get(prom + "/api/v1/alerts")
	if err != nil {
		return []string{"unreachable: " + err.Error()}
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return []string{"undecodable: " + err.Error()}
	}
	var out []string
	for _, a := range doc.Data.Alerts {
		out = append(out, a.Labels["alertname"]+"/"+a.Labels["shard"]+"/"+a.State)
	}
	return out
}

// ruleErrors returns the rules whose last evaluation failed, and how many rules were evaluated.
func ruleErrors(prom string) (bad []string, evaluated int) {
	resp, err := http.Get(prom + "/api/v1/rules")
	if err != nil {
		return []string{err.Error()}, 0
	}
	defer resp.Body.Close()
	var doc struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return []string{err.Error()}, 0
	}
	for _, g := range doc.Data.Groups {
		for _, r := range g.Rules {
			switch r.Health {
			case "ok":
				evaluated++
			case "unknown": // not evaluated yet
			default:
				bad = append(bad, r.Name+": "+r.LastError)
			}
		}
	}
	return bad, evaluated
}

// exporterNodes names the topology's exporter nodes.
func exporterNodes() []string {
	var out []string
	for _, n := range cluster.Topology {
		switch n.Program {
		case cluster.ProgRedisExporter, cluster.ProgMySQLExporter, cluster.ProgNodeExporter, cluster.ProgZKExporter:
			out = append(out, n.Name)
		}
	}
	return out
}
