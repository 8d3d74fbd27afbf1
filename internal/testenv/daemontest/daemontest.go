// Package daemontest checks the ZooKeeper life cycle every daemon shares
// (docs/zookeeper.md#the-rules): it starts while ZooKeeper is down (alive, not ready, nothing
// registered), becomes ready and registers its serverset node once ZooKeeper is up, exposes the
// ZooKeeper metrics, and on SIGTERM deletes its node before it exits — at once, not after the
// session timeout.
//
// Each daemon's cmd test calls Lifecycle.Run with its binary and dependencies; the daemon's own
// metrics and routes are checked in the WhileReady hook.
package daemontest

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// Lifecycle describes one daemon for Run.
type Lifecycle struct {
	// ZK is the test's ZooKeeper. Run kills it before starting the daemon and starts it again.
	ZK *itest.ZooKeeper
	// Spec starts the daemon; its Args must point it at ZK with a short session timeout.
	// ReadyURL and Port are ignored: Run polls Base+"/healthz" and "/readyz" itself.
	Spec itest.DaemonSpec
	// Base is the daemon's HTTP base URL ("http://127.0.0.1:port").
	Base string
	// Root is the daemon's ZooKeeper root (--zk-root).
	Root string
	// NodeDir and Node name its serverset node (NodeDir/Node); Node is its advertised host:port.
	NodeDir, Node string
	// ReadyWithoutZooKeeper is set for a daemon whose job does not need ZooKeeper (scrapd):
	// its /readyz stays 200 while ZooKeeper is down.
	ReadyWithoutZooKeeper bool
	// WhileDown, if set, runs while ZooKeeper is down and the daemon is alive.
	WhileDown func(t *testing.T)
	// OnZooKeeperUp, if set, runs right after ZooKeeper is back (to write the nodes the daemon
	// needs to become ready).
	OnZooKeeperUp func(t *testing.T, conn *discovery.Conn)
	// WhileReady, if set, runs once the daemon is ready and registered.
	WhileReady func(t *testing.T)
	// AfterStop, if set, runs after the SIGTERM exit, with the node already checked gone.
	AfterStop func(t *testing.T, conn *discovery.Conn)
}

// Run drives the life cycle and returns the daemon's process (stopped by then).
func (l Lifecycle) Run(t *testing.T) *itest.Process {
	t.Helper()
	l.ZK.Kill()
	l.Spec.ReadyURL, l.Spec.Port = "", 0
	p := itest.StartDaemonNoWait(t, l.Spec)
	l.checkZooKeeperDown(t, p)

	l.ZK.Start(t)
	conn := Dial(t, l.ZK, l.Root)
	if l.OnZooKeeperUp != nil {
		l.OnZooKeeperUp(t, conn)
	}
	node := path.Join(l.NodeDir, l.Node)
	l.checkReady(t, conn, node)
	if l.WhileReady != nil {
		l.WhileReady(t)
	}

	p.Stop()
	if exited, err := p.Wait(0); !exited || err != nil {
		t.Fatalf("after SIGTERM: exited %v, err %v; want a clean exit", exited, err)
	}
	// The session timeout (seconds) outlives the exit by far: only a deregistration, or the
	// session closed on the way out, removes the node this early.
	if ok, _, err := conn.Exists(node); err != nil || ok {
		t.Fatalf("node %s right after SIGTERM: exists=%v err=%v, want it deleted before exit", node, ok, err)
	}
	if l.AfterStop != nil {
		l.AfterStop(t, conn)
	}
	return p
}

// checkZooKeeperDown checks the daemon p while ZooKeeper is down: alive, ready only if it needs
// no ZooKeeper, disconnected in its metrics, and still running after WhileDown.
func (l Lifecycle) checkZooKeeperDown(t *testing.T, p *itest.Process) {
	t.Helper()
	itest.WaitFor(t, 20*time.Second, l.Spec.Name+" alive (/healthz 200) with ZooKeeper down", func() bool {
		code, _ := Get(t, l.Base+"/healthz")
		return code == http.StatusOK
	})
	wantDown := http.StatusServiceUnavailable
	if l.ReadyWithoutZooKeeper {
		wantDown = http.StatusOK
	}
	if code, body := Get(t, l.Base+"/readyz"); code != wantDown {
		t.Fatalf("/readyz with ZooKeeper down: got %d %s, want %d", code, body, wantDown)
	}
	WaitMetric(t, l.Base, "zk_session_connected", 0)
	if l.WhileDown != nil {
		l.WhileDown(t)
	}
	if !p.Running() {
		t.Fatalf("%s exited while ZooKeeper was down", l.Spec.Name)
	}
}

// checkReady waits until the daemon is ready with its serverset node in place, and checks the
// node's data and the metrics every daemon exposes.
func (l Lifecycle) checkReady(t *testing.T, conn *discovery.Conn, node string) {
	t.Helper()
	itest.WaitFor(t, 30*time.Second, l.Spec.Name+" ready once ZooKeeper is up", func() bool {
		code, _ := Get(t, l.Base+"/readyz")
		return code == http.StatusOK
	})
	itest.WaitFor(t, 10*time.Second, "serverset node "+node, func() bool {
		ok, _, err := conn.Exists(node)
		return err == nil && ok
	})
	data, _, err := conn.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	var ss discovery.ServerSet
	if err := json.Unmarshal(data, &ss); err != nil || ss.ServiceEndpoint.String() != l.Node ||
		ss.AdditionalEndpoints["http"].String() != l.Node || ss.Status != discovery.StatusAlive {
		t.Fatalf("node %s data: got %s (err %v), want a serverset for %s", node, data, err, l.Node)
	}
	CheckHTTPEdges(t, l.Base)
	WaitMetric(t, l.Base, "zk_session_connected", 1)
	RequireSeries(t, l.Base,
		`http_requests_total{route="healthz",status="200"}`,
		`http_request_duration_seconds_count{route="healthz",status="200"}`,
		"zk_sessions_established_total", "zk_disconnects_total")
}

// CheckHTTPEdges checks what every daemon's HTTP server owes a client at the edges of HTTP/1.1
// (docs/api.md): a request whose lines end in a bare LF is answered at once, not after the read
// timeout; a method /healthz does not take gets 405 with an Allow header.
func CheckHTTPEdges(t *testing.T, base string) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Far below every daemon's read timeout (10 s or more), which used to be the only answer.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\nHost: "+addr+"\nConnection: close\n\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz with bare-LF line ends: %v %v, want 200 at once", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodDelete, base+"/healthz", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Fatalf("DELETE /healthz: %d Allow=%q, want 405 with an Allow header naming GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// Dial connects to z for the test's own reads and writes.
func Dial(t *testing.T, z *itest.ZooKeeper, root string) *discovery.Conn {
	t.Helper()
	conn, err := discovery.Dial(discovery.Config{Servers: z.Addr(), Root: root, SessionTimeout: 4 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

var client = &http.Client{Timeout: 5 * time.Second}

// Get returns the status and body of a GET, or 0 when the request failed.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metrics scrapes base+"/metrics" into a map from series (`name{label="v",...}` as exposed, or
// the bare name) to its value text.
func Metrics(t testing.TB, base string) map[string]string {
	t.Helper()
	code, body := Get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: got %d, want 200", code)
	}
	out := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			out[line[:i]] = line[i+1:]
		}
	}
	return out
}

// WaitMetric polls /metrics until series has the value want.
func WaitMetric(t testing.TB, base, series string, want float64) {
	t.Helper()
	var got string
	ok := itest.Eventually(20*time.Second, func() bool {
		got = Metrics(t, base)[series]
		return got == formatValue(want)
	})
	if !ok {
		t.Fatalf("%s: got %q, want %v", series, got, want)
	}
}

func formatValue(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// RequireSeries fails unless every series is exposed (any value).
func RequireSeries(t testing.TB, base string, series ...string) {
	t.Helper()
	m := Metrics(t, base)
	for _, s := range series {
		if _, ok := m[s]; !ok {
			t.Errorf("/metrics lacks %s", s)
		}
	}
}

// CreateNode creates the persistent node p (and its parents) with data, retrying while the
// connection is still coming up.
func CreateNode(t testing.TB, conn *discovery.Conn, p string, data []byte) {
	t.Helper()
	ok := itest.Eventually(10*time.Second, func() bool {
		if err := conn.EnsurePath(path.Dir(p)); err != nil {
			return false
		}
		err := conn.Create(p, data)
		return err == nil
	})
	if !ok {
		t.Fatalf("creating %s", p)
	}
}

// JSON marshals v, which must marshal.
func JSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
