package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/testenv/itest"
)

// The daemon as operators run it: kill -9 the leader and the standby takes over once ZooKeeper
// expires the dead leader's session; SIGTERM the new leader and it leaves the election at once.
func TestDaemonFailoverAndGracefulExit(t *testing.T) {
	itest.SkipShort(t, "builds the binary")
	r := newRig(t)
	bin := itest.BuildBinary(t, "./tools/redismon")
	start := func(name string) (*itest.Process, string) {
		port := itest.FreePort(t)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		p := itest.StartDaemon(t, itest.DaemonSpec{
			Name: name, Bin: bin, Port: port, ReadyURL: base + "/readyz",
			Args: []string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--zk", r.zk.Addr(), "--zk-root", r.layout.Root,
				"--zk-session-timeout", "2s", "--probe-interval", "100ms", "--log-format", "text"},
		})
		return p, base
	}
	first, firstURL := start("redismon-a")
	itest.WaitFor(t, 10*time.Second, "first instance leading", func() bool { return isLeader(t, firstURL) })
	second, secondURL := start("redismon-b")
	if isLeader(t, secondURL) {
		t.Fatal("second instance leads while the first does")
	}

	first.Kill()
	killed := time.Now()
	itest.WaitFor(t, 15*time.Second, "standby leading after the leader's session expired", func() bool { return isLeader(t, secondURL) })
	t.Logf("standby took over %s after kill -9 (session timeout 2s)", time.Since(killed).Round(10*time.Millisecond))

	second.Stop()
	if exited, err := second.Wait(0); !exited || err != nil {
		t.Fatalf("after SIGTERM: exited %v, err %v; want a clean exit", exited, err)
	}
	kids, _, err := r.conn.Children(r.layout.RedismonLeader())
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 0 {
		t.Fatalf("got candidates %v right after SIGTERM, want none: the leader must leave before it exits", kids)
	}
}

// isLeader reads redismon_is_leader from /metrics.
func isLeader(t *testing.T, base string) bool {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != 200 {
		return false
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "redismon_is_leader "); ok {
			return strings.TrimSpace(v) == fmt.Sprint(1)
		}
	}
	return false
}
