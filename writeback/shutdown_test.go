package writeback_test

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestShutdownWithEveryDependencyDead is the devcluster finding: ZooKeeper, the queue Redis and
// MariaDB all die while posts are in flight, then writebackd gets SIGTERM. It
// must exit within its --shutdown-timeout (plus a margin for process exit), not hang on a
// deregistration, a pool stop, a batch or a database close that can no longer complete.
func TestShutdownWithEveryDependencyDead(t *testing.T) {
	e := newEnv(t)
	z := itest.StartZooKeeper(t)
	conn := dialZK(t, z)
	layout := discovery.Layout{Root: "/wbshutdown"}
	setNode(t, conn, layout.DB(), discovery.DBEndpoints{Primary: e.db.Addr()})
	setNode(t, conn, layout.Queue(), discovery.QueueEndpoints{Primary: e.redis.Addr()})

	const shutdownTimeout = 3 * time.Second
	port := itest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	d := itest.StartDaemon(t, itest.DaemonSpec{
		Name: "writebackd",
		Bin:  itest.BuildBinary(t, "./writeback/cmd/writebackd"),
		Args: []string{"--listen", addr, "--zk", z.Addr(), "--zk-root", layout.Root, "--zk-session-timeout", "2s",
			"--db-user", "root", "--db-name", "zkpost", "--queue-namespace", namespace, "--concurrency", "16",
			"--shutdown-timeout", shutdownTimeout.String(), "--log-format", "text"},
		Port:         port,
		ReadyURL:     "http://" + addr + "/readyz",
		ReadyTimeout: 30 * time.Second,
	})
	for id, ok := range enqueueAll(t, e.enq, 1, 200, 4) {
		if !ok {
			t.Fatalf("post %d not enqueued", id)
		}
	}
	itest.WaitFor(t, 20*time.Second, "some posts committed", func() bool {
		n, _ := countRows(t, e.sql)
		return n > 0
	})
	// The database goes first, so that jobs are in flight, their batch held or failing, when
	// the rest dies: that is what a drain without a deadline waits on.
	e.db.Kill()
	enqueueAll(t, e.enq, 1000, 200, 4)
	itest.WaitFor(t, 20*time.Second, "jobs in flight with the database dead", func() bool {
		return inProgress(t, e) > 0
	})
	z.Kill()
	e.redis.Kill()
	// The batch in flight committed or failed; its acknowledgement now retries against the dead
	// queue, each refused dial doubling the pause (post/queue's dialGate) up to 5 s: a drain
	// without a deadline would wait on it forever.
	refused := "dial tcp " + e.redis.Addr() + ": connect: connection refused"
	itest.WaitFor(t, 30*time.Second, "the worker retrying against the dead queue", func() bool {
		return strings.Count(d.Log(), refused) >= 3
	})
	start := time.Now()
	if err := syscall.Kill(d.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	bound := shutdownTimeout + 2*time.Second
	exited, _ := d.Wait(bound)
	if !exited {
		t.Fatalf("writebackd still running %s after SIGTERM with every dependency dead (bound %s)", time.Since(start), bound)
	}
	t.Logf("writebackd exited %s after SIGTERM", time.Since(start).Round(10*time.Millisecond))
}
