package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	zkJar     = "/usr/share/java/zookeeper.jar"
	zkLogJar  = "/usr/share/java/slf4j-simple.jar" // optional: makes ZooKeeper's log visible
	zkConfDir = "/etc/zookeeper/conf"
	zkMain    = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	// zkTickMillis lets sessions run from 1s to 10s (2–20 ticks): our daemons ask for a few
	// seconds, so a killed node leaves ZooKeeper quickly.
	zkTickMillis = 500
)

// zkJVMFlags keep the JVM small and quick to start; a development server needs neither a big
// heap nor the optimizing JIT.
var zkJVMFlags = []string{
	"-Xmx256m", "-Xms32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
	"-Djava.net.preferIPv4Stack=true", "-Dzookeeper.admin.enableServer=false",
	"-Dzookeeper.jmx.log4j.disable=true",
}

func (c *Cluster) zookeeperSpec(n Node) (spec, error) {
	java, err := lookPath("java")
	if err != nil {
		return spec{}, err
	}
	if _, err := os.Stat(zkJar); err != nil {
		return spec{}, &ErrMissing{Name: zkJar, Package: "zookeeper"}
	}
	dir := c.dataDir(n.Name)
	cfgPath := filepath.Join(dir, "zoo.cfg")
	cp := []string{zkConfDir, zkJar}
	if _, err := os.Stat(zkLogJar); err == nil {
		cp = append(cp, zkLogJar)
	}
	args := append(append([]string{}, zkJVMFlags...), "-cp", strings.Join(cp, ":"), zkMain, cfgPath)
	addr := c.ZKAddr()
	return spec{
		bin: java, args: args,
		prepare: func(context.Context) error {
			if err := ensureDir(filepath.Join(dir, "data")); err != nil {
				return err
			}
			return os.WriteFile(cfgPath, []byte(zkConfig(dir, c.port(n.Name))), 0o644)
		},
		ready: func(context.Context) bool { return zkServing(addr) },
	}, nil
}

func zkConfig(dir string, port int) string {
	return strings.Join([]string{
		fmt.Sprintf("tickTime=%d", zkTickMillis),
		"dataDir=" + filepath.Join(dir, "data"),
		fmt.Sprintf("clientPort=%d", port),
		"clientPortAddress=127.0.0.1",
		"maxClientCnxns=0",
		"4lw.commands.whitelist=*",
		"admin.enableServer=false",
		"autopurge.snapRetainCount=3",
		"autopurge.purgeInterval=1",
		"",
	}, "\n")
}

// zkServing reports whether ZooKeeper answers "srvr" with its mode, which it does only once it
// serves requests ("ruok" answers as soon as the port is open).
func zkServing(addr string) bool {
	out, err := zk4lw(addr, "srvr")
	return err == nil && strings.Contains(out, "Mode: standalone")
}

func zk4lw(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", fmt.Errorf("sending %q: %w", cmd, err)
	}
	b, err := io.ReadAll(bufio.NewReader(conn))
	return string(b), err
}
