package discovery_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// metricValue returns the value of the series name{label="value"} (no label: "" ), and whether
// the registry has it.
func metricValue(t *testing.T, g prometheus.Gatherer, name, label string) (float64, bool) {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := ""
			for _, lp := range m.GetLabel() {
				got = lp.GetValue()
			}
			if got != label {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func waitMetric(t *testing.T, g prometheus.Gatherer, name, label string, want float64) {
	t.Helper()
	var got float64
	ok := itest.Eventually(20*time.Second, func() bool {
		v, ok := metricValue(t, g, name, label)
		got = v
		return ok && v == want
	})
	if !ok {
		t.Fatalf("%s{%s}: got %v, want %v", name, label, got, want)
	}
}

// TestMetricsFollowZooKeeper: the session gauge drops to 0 when ZooKeeper dies and returns to 1
// when it is back; a watcher's snapshots are counted and their age grows while ZooKeeper is away.
func TestMetricsFollowZooKeeper(t *testing.T) {
	z := itest.StartZooKeeper(t)
	// The session must outlast the restart below: go-zookeeper retries a lone server once a
	// second, and the restarted server counts the session's timeout from when it loaded it, so
	// with sessionTimeout (1.2 s) a slow restart on a busy machine could expire it before the
	// client is back. 4 s is the most the test server grants.
	c, err := discovery.Dial(discovery.Config{Servers: z.Addr(), SessionTimeout: 4 * time.Second}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := prometheus.NewRegistry()
	if err := c.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterMetrics(reg); err == nil {
		t.Errorf("registering twice on one registry: got no error")
	}
	waitMetric(t, reg, "zk_session_connected", "", 1)
	waitMetric(t, reg, "zk_sessions_established_total", "", 1)

	dir := "/t/metrics/nodes"
	// The directory exists before the watches start, so each sees exactly two snapshots: empty,
	// then with "a". Created by Register instead, a watcher could also catch it empty in between.
	if err := c.EnsurePath(dir); err != nil {
		t.Fatal(err)
	}
	w := c.WatchChildren(dir, discovery.WatchOptions{Resync: time.Hour})
	second := c.WatchChildren(dir, discovery.WatchOptions{Resync: time.Hour}) // one series per path
	waitMetric(t, reg, "zk_watch_snapshots_total", dir, 2)
	c.Register(dir, "a", nil)
	childrenOf(t, w, "a")
	childrenOf(t, second, "a")
	waitMetric(t, reg, "zk_watch_snapshots_total", dir, 4)
	second.Stop()
	waitMetric(t, reg, "zk_watch_snapshots_total", dir, 2)
	ageUp, _ := metricValue(t, reg, "zk_watch_snapshot_age_seconds", dir)

	z.Kill()
	waitMetric(t, reg, "zk_session_connected", "", 0)
	waitMetric(t, reg, "zk_disconnects_total", "", 1)
	itest.WaitFor(t, 10*time.Second, "snapshot age to grow while ZooKeeper is down", func() bool {
		age, ok := metricValue(t, reg, "zk_watch_snapshot_age_seconds", dir)
		return ok && age > ageUp+0.5
	})
	z.Start(t)
	waitMetric(t, reg, "zk_session_connected", "", 1)
	// ZooKeeper restores its sessions on restart and the client resumes its own: no new one.
	if got, _ := metricValue(t, reg, "zk_sessions_established_total", ""); got != 1 {
		t.Errorf("sessions after a ZooKeeper restart: got %v, want 1 (the session resumed)", got)
	}
	w.Stop()
	if _, ok := metricValue(t, reg, "zk_watch_snapshots_total", dir); ok {
		t.Errorf("a stopped watcher's path still reported")
	}
}

// TestMetricsCountNewSessions cuts the client off from a live ZooKeeper (through a proxy) for
// longer than its session timeout: the server expires the session, and the client's next one
// is counted.
func TestMetricsCountNewSessions(t *testing.T) {
	z := itest.StartZooKeeper(t)
	px := newProxy(t, z.Addr())
	c, err := discovery.Dial(discovery.Config{Servers: px.addr(), SessionTimeout: sessionTimeout}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := prometheus.NewRegistry()
	if err := c.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, reg, "zk_session_connected", "", 1)
	first, _ := c.Session()
	// An ephemeral node of the session shows when the server has expired it.
	const marker = "/t/metrics-marker"
	if err := c.CreateEphemeral(marker, nil, first, false); err != nil {
		t.Fatal(err)
	}

	px.cut(true)
	waitMetric(t, reg, "zk_session_connected", "", 0)
	probe := dial(t, z)
	itest.WaitFor(t, 15*time.Second, "the server to expire the cut-off session", func() bool {
		ok, _, err := probe.ZK().Exists(marker)
		return err == nil && !ok
	})
	px.cut(false)
	waitMetric(t, reg, "zk_session_connected", "", 1)
	waitMetric(t, reg, "zk_sessions_established_total", "", 2)
	if id, _ := c.Session(); id == first {
		t.Errorf("session after expiry: got the old id %#x, want a new one", id)
	}
}

// proxy forwards TCP connections to a target until cut, which also drops the open ones.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	go p.accept()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { io.Copy(out, in); out.Close() }()
		go func() { io.Copy(in, out); in.Close() }()
	}
}
