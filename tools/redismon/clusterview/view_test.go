package clusterview

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/headless"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

func serverSet(t *testing.T, addr string) []byte {
	t.Helper()
	b, err := discovery.NewServerSet(addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildNamesRolesAndDiffs(t *testing.T) {
	tr := tree{nodes: map[string]discovery.Snapshot{
		"guid":     {Children: map[string][]byte{"member_0001": serverSet(t, "10.0.0.1:8010"), "10.0.0.2:8011": nil}},
		"redismon": {Children: map[string][]byte{"member_0001": serverSet(t, "10.0.0.9:8040"), "member_0002": serverSet(t, "10.0.0.9:8041")}},
	},
		workers: discovery.Snapshot{Children: map[string][]byte{"3": []byte("10.0.0.1:8010"), "5": []byte("10.0.0.1:8010")}},
		leader: discovery.Snapshot{Children: map[string][]byte{"_c_ab-n_0000000007": []byte("10.0.0.9:8041"),
			"_c_cd-n_0000000009": []byte("10.0.0.9:8040")}},
		cache: discovery.Snapshot{Children: map[string][]byte{"redis1:10.0.0.5:16380": []byte(`{"status":"DOWN","epoch":3}`),
			"bad": []byte("{")}},
		queue: discovery.Snapshot{Exists: true, Data: []byte(`{"primary":"10.0.0.6:16379","secondary":["10.0.0.6:16383"]}`)},
		db:    discovery.Snapshot{Exists: true, Data: []byte(`{"primary":"10.0.0.7:13306","replicas":["10.0.0.7:13307"]}`)},
	}
	st := tr.build()
	guid := st.Services[slices.IndexFunc(st.Services, func(s Service) bool { return s.Name == "guid" })]
	wantGuid := []Node{{Addr: "10.0.0.1:8010", Role: "worker 3, 5"}, {Addr: "10.0.0.2:8011"}}
	if !slices.Equal(guid.Nodes, wantGuid) {
		t.Errorf("guid nodes: got %+v, want %+v", guid.Nodes, wantGuid)
	}
	mon := st.Services[len(st.Services)-1]
	if mon.Nodes[0].Role != "standby" || mon.Nodes[1].Role != "leader" {
		t.Errorf("redismon roles: got %+v, want standby 8040, leader 8041 (lowest sequence)", mon.Nodes)
	}
	if len(st.Cache) != 1 || st.Cache[0] != (Shard{Name: "redis1", Addr: "10.0.0.5:16380", Status: "DOWN", Epoch: 3}) || len(st.Problems) != 1 {
		t.Errorf("cache: got %+v, problems %v; want redis1 DOWN epoch 3 and one problem", st.Cache, st.Problems)
	}
	if st.Queue.Primary != "10.0.0.6:16379" || st.DB.Replicas[0] != (Replica{Addr: "10.0.0.7:13307", LagSeconds: -1}) {
		t.Errorf("endpoints: got %+v %+v", st.Queue, st.DB)
	}
	next := tr
	next.nodes = map[string]discovery.Snapshot{"guid": {Children: map[string][]byte{"member_0003": serverSet(t, "10.0.0.3:8012")}},
		"redismon": tr.nodes["redismon"]}
	next.queue = discovery.Snapshot{Exists: true, Data: []byte(`{"primary":"10.0.0.6:16383","secondary":[]}`)}
	got := strings.Join(diff(st, next.build()), "\n")
	for _, want := range []string{"guid 10.0.0.3:8012 joined", "guid 10.0.0.1:8010 left", "guid 10.0.0.2:8011 left", "queue: primary 10.0.0.6:16383"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

func TestRequestTotals(t *testing.T) {
	text := `# TYPE http_requests_total counter
http_requests_total{route="guid",status="200"} 10
http_requests_total{route="guid",status="503"} 2
http_requests_total{route="metrics",status="200"} 99
# TYPE db_replica_lag_seconds gauge
db_replica_lag_seconds{addr="10.0.0.7:13307"} 1.5
`
	fams, err := metrics.ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	req, errs := requestTotals(fams)
	if req != 12 || errs != 2 {
		t.Errorf("totals: got %v requests, %v errors; want 12, 2", req, errs)
	}
	hist := `# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route="guid",status="200",le="+Inf"} 7
http_request_duration_seconds_sum{route="guid",status="200"} 0.1
http_request_duration_seconds_count{route="guid",status="200"} 7
http_request_duration_seconds_bucket{route="guid",status="500",le="+Inf"} 1
http_request_duration_seconds_sum{route="guid",status="500"} 0.1
http_request_duration_seconds_count{route="guid",status="500"} 1
`
	hf, err := metrics.ParseText(strings.NewReader(hist))
	if err != nil {
		t.Fatal(err)
	}
	if req, errs := requestTotals(hf); req != 8 || errs != 1 {
		t.Errorf("totals from the histogram: got %v requests, %v errors; want 8, 1", req, errs)
	}
	if lags := replicaLags(fams["db_replica_lag_seconds"]); lags["10.0.0.7:13307"] != 1.5 {
		t.Errorf("lags: got %v", lags)
	}
}

// TestClusterViewFollowsKillAndRestart runs ZooKeeper, a guidd and a redismon as real processes and
// watches redismon's /cluster in headless Chromium: the guidd is listed with its worker id; killed
// with SIGKILL it leaves the page once its session expires, and the change is listed; started
// again it returns.
func TestClusterViewFollowsKillAndRestart(t *testing.T) {
	itest.SkipShort(t, "real processes and a browser: skipped with -short")
	zk := itest.StartZooKeeper(t)
	const root = "/clusterview_test"
	guidPort := itest.FreePort(t)
	guidAddr := "127.0.0.1:" + strconv.Itoa(guidPort)
	guid := itest.StartDaemon(t, itest.DaemonSpec{Name: "guidd", Bin: itest.BuildBinary(t, "./guid/cmd/guidd"),
		Args: []string{"--listen", guidAddr, "--zk", zk.Addr(), "--zk-root", root, "--zk-session-timeout", "2s", "--log-format", "text"},
		Port: guidPort, ReadyURL: "http://" + guidAddr + "/readyz", ReadyTimeout: 40 * time.Second})
	monPort := itest.FreePort(t)
	monAddr := "127.0.0.1:" + strconv.Itoa(monPort)
	itest.StartDaemon(t, itest.DaemonSpec{Name: "redismon", Bin: itest.BuildBinary(t, "./tools/redismon"),
		Args: []string{"--listen", monAddr, "--zk", zk.Addr(), "--zk-root", root, "--zk-session-timeout", "2s", "--log-format", "text"},
		Port: monPort, ReadyURL: "http://" + monAddr + "/readyz", ReadyTimeout: 40 * time.Second})

	b := headless.Start(t)
	b.Navigate("http://" + monAddr + "/cluster")
	row := fmt.Sprintf(`document.querySelector('#nodes tr[data-key="guid %s"]')`, guidAddr)
	b.WaitTrue(20*time.Second, "the guidd listed with its worker id",
		row+` !== null && `+row+`.children[2].textContent.startsWith("worker ")`)
	b.WaitTrue(20*time.Second, "redismon listed as leader",
		fmt.Sprintf(`(r => r !== null && r.children[2].textContent === "leader")(document.querySelector('#nodes tr[data-key="redismon %s"]'))`, monAddr))
	b.WaitTrue(20*time.Second, "the guidd's request rate scraped", row+`.children[3].textContent.endsWith("/s")`)

	guid.Kill()
	b.WaitTrue(20*time.Second, "the killed guidd gone from the page", row+` === null`)
	b.WaitTrue(5*time.Second, "its departure among the latest changes",
		`[...document.querySelectorAll("#changes td")].some(td => td.textContent === "guid `+guidAddr+` left")`)
	guid.Start(t)
	b.WaitTrue(30*time.Second, "the restarted guidd back on the page", row+` !== null`)
}

// FuzzBuild feeds arbitrary node names and data, as a foreign or damaged tree may hold, to the
// state builder and the diff: they never panic, and every service is listed.
func FuzzBuild(f *testing.F) {
	f.Add("member_0001", []byte(`{"serviceEndpoint":{"host":"h","port":1}}`), []byte(`{"primary":"a"}`))
	f.Add("_c_x-n_00000000x1", []byte("{"), []byte(`{"replicas":[1]}`))
	f.Add("redis1:h:1", []byte(`{"status":"ALIVE","epoch":-1}`), []byte(nil))
	f.Fuzz(func(t *testing.T, name string, data, endpoint []byte) {
		snap := discovery.Snapshot{Exists: true, Data: endpoint, Children: map[string][]byte{name: data}}
		tr := tree{nodes: map[string]discovery.Snapshot{"guid": snap, "redismon": snap},
			workers: snap, leader: snap, cache: snap, queue: snap, db: snap}
		st := tr.build()
		if len(st.Services) != len(Services) {
			t.Fatalf("got %d services, want %d", len(st.Services), len(Services))
		}
		_ = diff(State{}, st)
		_ = diff(st, State{})
	})
}
