package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// A ZooKeeper 3.8 mntr answer, cut short.
const sampleMntr = "zk_version\t3.8.0-debian--1, built on 2023-01-01 00:00 UTC\n" +
	"zk_server_state\tstandalone\n" +
	"zk_num_alive_connections\t7\n" +
	"zk_avg_latency\t0.5\n" +
	"zk_ephemerals_count\t12\n" +
	"zk_p99.9_latency\t3\n" +
	"not a figure\n" +
	"zk_watch_count\tmany\n"

func TestParseMntr(t *testing.T) {
	m := parseMntr(sampleMntr)
	want := map[string]float64{
		"zookeeper_num_alive_connections": 7, "zookeeper_avg_latency": 0.5,
		"zookeeper_ephemerals_count": 12, "zookeeper_p99_9_latency": 3,
	}
	if len(m.values) != len(want) {
		t.Errorf("got %d figures %v, want %d", len(m.values), m.values, len(want))
	}
	for k, v := range want {
		if m.values[k] != v {
			t.Errorf("%s: got %v, want %v", k, m.values[k], v)
		}
	}
	if m.state != "standalone" || !strings.HasPrefix(m.version, "3.8.0") {
		t.Errorf("got state %q version %q, want standalone and 3.8.0…", m.state, m.version)
	}
}

var validName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// FuzzParseMntr: whatever a server (or something posing as one) answers, the figures make valid,
// gatherable metrics.
func FuzzParseMntr(f *testing.F) {
	f.Add(sampleMntr)
	f.Add("zk_up\t1\nzk_info\t2\nzk_server_state\t\n")
	f.Add("mntr is not executed because it is not in the whitelist.\n")
	f.Add("zk_a\tNaN\nzk_a\t+Inf\nzk_\u00e9\t1\n\t\t\n")
	f.Fuzz(func(t *testing.T, s string) {
		m := parseMntr(s)
		for name := range m.values {
			if !validName.MatchString(name) {
				t.Fatalf("invalid metric name %q", name)
			}
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(staticCollector(m.metrics("zk:2181")))
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("gathering %q: %v", s, err)
		}
	})
}

// staticCollector collects a fixed list of metrics.
type staticCollector []prometheus.Metric

func (s staticCollector) Describe(chan<- *prometheus.Desc) {}
func (s staticCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range s {
		ch <- m
	}
}

func TestParseTargets(t *testing.T) {
	got, err := parseTargets("redis_exporter=127.0.0.1:9121, node_exporter=127.0.0.1:9100,")
	if err != nil || len(got) != 2 || got[1] != (target{"node_exporter", "127.0.0.1:9100"}) {
		t.Errorf("got %v, %v; want two targets", got, err)
	}
	for _, bad := range []string{"redis_exporter", "=127.0.0.1:1", "a/b=127.0.0.1:1", "x=nohost", "x=h:notaport"} {
		if _, err := parseTargets(bad); err == nil {
			t.Errorf("parseTargets(%q): got nil error", bad)
		}
	}
}

// TestExportsMntrAndAnnouncesExporters runs zkexporter against a real ZooKeeper: its /metrics
// carries the server's mntr figures, it registers itself, and it keeps a node for a stand-in
// exporter exactly while that one answers HTTP.
func TestExportsMntrAndAnnouncesExporters(t *testing.T) {
	zks := itest.StartZooKeeper(t)
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer exporter.Close()
	exporterAddr := strings.TrimPrefix(exporter.URL, "http://")
	listen := "127.0.0.1:" + strconv.Itoa(itest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--zk", zks.Addr(), "--zk-root", "/t", "--listen", listen,
			"--announce", "stand_in_exporter=" + exporterAddr, "--announce-interval", "100ms",
			"--zk-session-timeout", "2s"}, func(string) string { return "" }, &syncWriter{w: &logs})
	}()
	conn, _, err := zk.Connect(zks.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	children := func(dir string) []string {
		kids, _, err := conn.Children(path.Join("/t", dir, "nodes"))
		if err != nil {
			return nil
		}
		return kids
	}
	itest.WaitFor(t, 20*time.Second, "mntr figures on /metrics", func() bool {
		body := get(listen + "/metrics")
		return strings.Contains(body, `zookeeper_up{server="`+zks.Addr()+`"} 1`) &&
			strings.Contains(body, `zookeeper_znode_count{server="`+zks.Addr()+`"}`) &&
			strings.Contains(body, `zookeeper_server_state{server="`+zks.Addr()+`",state="standalone"} 1`)
	})
	itest.WaitFor(t, 20*time.Second, "zkexporter and the stand-in registered", func() bool {
		return slicesEqual(children("zookeeper_exporter"), listen) && slicesEqual(children("stand_in_exporter"), exporterAddr)
	})
	exporter.Close()
	itest.WaitFor(t, 20*time.Second, "the stopped stand-in withdrawn", func() bool {
		return len(children("stand_in_exporter")) == 0
	})
	if got := get(listen + "/nope"); !strings.Contains(got, `"error":"not_found"`) {
		t.Errorf("GET /nope: got %q, want the JSON not_found envelope", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if kids := children("zookeeper_exporter"); len(kids) != 0 {
		t.Errorf("after shutdown: got nodes %v, want none", kids)
	}
}

func slicesEqual(got []string, want ...string) bool {
	return strings.Join(got, ",") == strings.Join(want, ",")
}

func get(hostPath string) string {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + hostPath)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// syncWriter serializes writes from the daemon's goroutines into a buffer the test reads.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
