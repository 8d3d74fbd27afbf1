package itest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	zkJar = "/usr/share/java/zookeeper.jar"
	// zkLogJar makes ZooKeeper's slf4j logging visible in the server log;
	// without a binding slf4j drops everything. Optional.
	zkLogJar     = "/usr/share/java/slf4j-simple.jar"
	zkConfDir    = "/etc/zookeeper/conf"
	zkMainClass  = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	zkTickTime   = 200 * time.Millisecond
	zkReadyLimit = 30 * time.Second
)

// ZooKeeper is a standalone ZooKeeper server.
type ZooKeeper struct{ *Process }

// zkJVMFlags keep the JVM small and quick to start: a server for tests needs
// neither a big heap nor the optimizing JIT.
var zkJVMFlags = []string{
	"-Xmx256m", "-Xms32m", "-XX:+UseSerialGC",
	"-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Xshare:auto", "-Xss512k",
	"-Djava.net.preferIPv4Stack=true",
	"-Dzookeeper.admin.enableServer=false",
	"-Dzookeeper.jmx.log4j.disable=true",
}

// StartZooKeeper starts a standalone ZooKeeper with tickTime=200ms, so session
// timeouts from 400ms to 4s are accepted as asked, all four-letter words
// allowed and the admin server off. Kill and Start keep its data directory,
// so persistent nodes survive a restart.
func StartZooKeeper(tb testing.TB) *ZooKeeper {
	tb.Helper()
	java := Require(tb, "java")
	requireFile(tb, zkJar)
	return &ZooKeeper{startOnFreePort(tb, func(port int) (*Process, error) {
		return newZooKeeper(tb.TempDir(), java, port)
	})}
}

func newZooKeeper(dir, java string, port int) (*Process, error) {
	cfg := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfg, []byte(zkConfig(dir, port)), 0o644); err != nil {
		return nil, fmt.Errorf("writing zoo.cfg: %w", err)
	}
	args := append(append([]string{}, zkJVMFlags...), "-cp", zkClasspath(), zkMainClass, cfg)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ready := func() bool { return zkServing(addr) }
	return newProcess("zookeeper", port, dir, java, args, ready, zkReadyLimit), nil
}

// Servers returns the connect string for zk.Connect: []string{Addr()}.
func (z *ZooKeeper) Servers() []string { return []string{z.Addr()} }

// FourLetterWord sends a ZooKeeper four-letter command ("ruok", "mntr", "cons",
// ...) and returns the reply.
func (z *ZooKeeper) FourLetterWord(cmd string) (string, error) {
	return zk4lw(z.Addr(), cmd)
}

func zkConfig(dir string, port int) string {
	return strings.Join([]string{
		fmt.Sprintf("tickTime=%d", zkTickTime.Milliseconds()),
		"dataDir=" + filepath.Join(dir, "data"),
		fmt.Sprintf("clientPort=%d", port),
		"clientPortAddress=127.0.0.1",
		"maxClientCnxns=0",
		"4lw.commands.whitelist=*",
		"admin.enableServer=false",
		// Commits are still written to the OS before they are acknowledged,
		// so a SIGKILL loses nothing; only fsync is skipped.
		"forceSync=no",
		"",
	}, "\n")
}

func zkClasspath() string {
	cp := []string{zkConfDir, zkJar}
	if _, err := os.Stat(zkLogJar); err == nil {
		cp = append(cp, zkLogJar)
	}
	return strings.Join(cp, ":")
}

// zkServing reports whether the server answers "srvr" with its mode, which it
// does only once it serves requests (unlike "ruok", which answers "imok" as
// soon as the port is open).
func zkServing(addr string) bool {
	out, err := zk4lw(addr, "srvr")
	return err == nil && strings.Contains(out, "Mode: standalone")
}

func zk4lw(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", fmt.Errorf("sending %q: %w", cmd, err)
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		return string(b), fmt.Errorf("reading %q reply: %w", cmd, err)
	}
	return string(b), nil
}
