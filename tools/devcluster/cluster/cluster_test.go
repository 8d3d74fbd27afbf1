package cluster

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTopologyIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	ports := map[int]string{}
	for _, n := range Topology {
		if seen[n.Name] {
			t.Errorf("node %s listed twice", n.Name)
		}
		for _, d := range n.Deps {
			if !seen[d] {
				t.Errorf("node %s depends on %s, which is not listed before it", n.Name, d)
			}
		}
		if n.Of != "" && !slices.Contains(n.Deps, n.Of) {
			t.Errorf("replica %s does not depend on its primary %s", n.Name, n.Of)
		}
		if other, dup := ports[n.Port]; dup && n.Port != 0 {
			t.Errorf("nodes %s and %s share port %d", other, n.Name, n.Port)
		}
		if n.Service != "" && !slices.Contains(ServiceDirs, n.Service) {
			t.Errorf("node %s registers in %s, which Prometheus does not discover", n.Name, n.Service)
		}
		seen[n.Name], ports[n.Port] = true, n.Name
	}
}

func TestTiersStopDependentsFirstAndZooKeeperLast(t *testing.T) {
	c := &Cluster{byName: map[string]*proc{}}
	for _, n := range Topology {
		p := &proc{node: n}
		c.nodes = append(c.nodes, p)
		c.byName[n.Name] = p
	}
	tiers := c.tiers()
	at := map[string]int{}
	for i, tier := range tiers {
		for _, p := range tier {
			at[p.node.Name] = i
		}
	}
	for _, n := range Topology {
		for _, d := range n.Deps {
			if at[n.Name] >= at[d] {
				t.Errorf("%s (tier %d) is stopped no earlier than its dependency %s (tier %d)", n.Name, at[n.Name], d, at[d])
			}
		}
	}
	if last := tiers[len(tiers)-1]; len(last) != 1 || last[0].node.Name != "zookeeper" {
		t.Errorf("last tier: got %v, want only zookeeper", last)
	}
}

func TestPorts(t *testing.T) {
	c := &Cluster{cfg: Config{PortOffset: 1000, Ports: map[string]int{"guid-1": 1234}}}
	for _, tc := range []struct {
		node string
		want int
	}{{"guid-1", 1234}, {"guid-2", 9011}, {"zookeeper", 3181}, {"zoo_setup", 0}, {"nope", 0}} {
		if got := c.port(tc.node); got != tc.want {
			t.Errorf("port(%s): got %d, want %d", tc.node, got, tc.want)
		}
	}
	free, err := FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for name, p := range free {
		if p == 0 || seen[p] {
			t.Errorf("FreePorts gave %s port %d (zero or repeated)", name, p)
		}
		seen[p] = true
	}
}

func TestPrometheusConfigDiscoversFromZooKeeper(t *testing.T) {
	b, err := RenderPrometheusConfig(PrometheusConfig{
		ZK: "127.0.0.1:2181", Root: "/r", Services: ServiceDirs, Interval: 5 * time.Second,
		SessionTimeout: 4 * time.Second, Self: "127.0.0.1:9090",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{
		"scrape_interval: 5s", `servers: ["127.0.0.1:2181"]`, `paths: ["/r/guid/nodes"]`,
		`paths: ["/r/scrap/nodes"]`, `paths: ["/r/postsvc/nodes"]`, `paths: ["/r/writeback/nodes"]`, `paths: ["/r/redismon/nodes"]`,
		"timeout: 4s", `targets: ["127.0.0.1:9090"]`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if got := strings.Count(cfg, "serverset_sd_configs"); got != 5 {
		t.Errorf("got %d serverset_sd_configs, want 5", got)
	}
}

func TestAlive(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), self) || !Alive(os.Getpid(), "") {
		t.Error("Alive(own pid): got false, want true")
	}
	if Alive(os.Getpid(), "/usr/bin/something-else") {
		t.Error("Alive(own pid, another binary): got true, want false (a reused pid is not ours)")
	}
	if Alive(0, "") || Alive(-1, "") {
		t.Error("Alive(0 or -1): got true")
	}
}

func TestCleanEnvDropsOurFallbacks(t *testing.T) {
	got := cleanEnv([]string{"PATH=/bin", "GUIDD_DC=3", "POSTSVCD_ZK=x", "HOME=/root", "DEVCLUSTER_DIR=y"})
	if want := []string{"PATH=/bin", "HOME=/root"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestMissingExecutableNamesThePackage(t *testing.T) {
	_, err := New(Config{Dir: t.TempDir(), BinDir: t.TempDir()})
	if err == nil {
		t.Fatal("New with an empty bin dir: got nil error")
	}
	if !strings.Contains(err.Error(), "guidd") {
		t.Errorf("got %v, want it to name the missing guidd", err)
	}
}
