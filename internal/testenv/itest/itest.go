// Package itest starts real servers — ZooKeeper, Redis, MariaDB and our own
// daemons — as OS processes for integration tests, in the manner of
// go-zookeeper's StartTestCluster and ardanlabs' dbtest.
//
// How each server is started (command, configuration, readiness, replication) is
// internal/launch/servers' and internal/launch's, shared with tools/devcluster; this package
// runs them the way a test needs.
//
// Every server gets a free loopback port, a data directory from tb.TempDir(),
// its own process group and a log file in its directory. Start* helpers poll
// readiness with a deadline and register a tb.Cleanup that kills the process
// and, when the test failed, prints the tail of its log.
//
// The CI rule: a missing server binary skips the test locally (with the
// apt-get command that installs it) but fails it when the CI environment
// variable is set, so CI can never pass by skipping.
package itest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch/servers"
)

// pollInterval is how often WaitFor and Eventually re-check their condition.
const pollInterval = 20 * time.Millisecond

// Require returns the absolute path of the executable name, looked up as
// internal/launch/servers does (PATH, then the sbin and bin directories). When it is missing
// the test fails if CI is set and is skipped otherwise.
func Require(tb testing.TB, name string) string {
	tb.Helper()
	p, err := servers.LookPath(name)
	if err != nil {
		requireInstalled(tb, err)
	}
	return p
}

// SkipShort skips a slow test in -short mode, except when CI is set: CI runs every test, so no
// flag can make it pass by skipping.
func SkipShort(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() && os.Getenv("CI") == "" {
		tb.Skip(why)
	}
}

// requireInstalled ends the test for err: for something not installed (*servers.ErrMissing)
// Fatal in CI and Skip elsewhere, naming the package that provides it; for anything else Fatal.
func requireInstalled(tb testing.TB, err error) {
	tb.Helper()
	var m *servers.ErrMissing
	if !errors.As(err, &m) {
		tb.Fatalf("preparing a server: %v", err)
		return
	}
	pkg := m.Package
	if pkg == "" {
		pkg = filepath.Base(m.Name)
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s not found and CI is set: install it (apt-get install -y %s); integration tests must not skip in CI", m.Name, pkg)
		return
	}
	tb.Skipf("%s not found; install it with: sudo apt-get install -y %s", m.Name, pkg)
}

// handedOut remembers ports FreePort returned, so parallel tests in one
// process never get the same port even before a server has bound it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and has
// not been returned before by this test process. Start* helpers retry on
// another port if a server still finds its port taken.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("finding a free port: %v", err)
		}
		handedOut.Lock()
		fresh := !handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if fresh {
			return port
		}
	}
	tb.Fatalf("finding a free port: no fresh port after 100 tries")
	return 0
}

// Ports are drawn from below the kernel's ephemeral range: a port from
// there (what listening on :0 gives) can be taken at any moment as the source
// port of some outgoing connection — readiness probes make many — and then a
// server cannot bind it. The floor stays clear of the default ports in
// docs/operations.md#ports, so a local dev cluster does not collide either.
const (
	portFloor   = 20000
	portCeiling = 32767 // below Linux's default ephemeral range
)

func freePort() (int, error) {
	hi := min(portCeiling, ephemeralLow()-1)
	for range 200 {
		if hi <= portFloor {
			break
		}
		port := portFloor + rand.IntN(hi-portFloor+1)
		if canBind(port) {
			return port, nil
		}
	}
	return kernelPort()
}

// ephemeralLow returns the bottom of the kernel's ephemeral port range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return portCeiling + 1
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return portCeiling + 1
	}
	return lo
}

func canBind(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// kernelPort is the fallback when the range below the ephemeral ports is
// too small or full: let the kernel choose.
func kernelPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listening on 127.0.0.1:0: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("listener address is not TCP")
	}
	return addr.Port, nil
}

// WaitFor polls cond about every 20ms until it returns true, and fails the
// test if that does not happen within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Eventually(timeout, cond) {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Eventually polls cond about every 20ms until it returns true (reporting
// true) or timeout passes (reporting false). cond is always called at least
// once, and once more at the deadline.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// dialable reports whether something accepts TCP connections at addr.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
