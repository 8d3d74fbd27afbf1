package servers

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
	zkJar = "/usr/share/java/zookeeper.jar"
	// zkLogJar makes ZooKeeper's slf4j logging visible in the server log; without a binding
	// slf4j drops everything. Optional.
	zkLogJar  = "/usr/share/java/slf4j-simple.jar"
	zkConfDir = "/etc/zookeeper/conf"
	zkMain    = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
)

// zkJVMFlags keep the JVM small and quick to start: a server on one machine needs neither a big
// heap nor the optimizing JIT.
var zkJVMFlags = []string{
	"-Xmx256m", "-Xms32m", "-XX:+UseSerialGC",
	"-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Xshare:auto", "-Xss512k",
	"-Djava.net.preferIPv4Stack=true",
	"-Dzookeeper.admin.enableServer=false",
	"-Dzookeeper.jmx.log4j.disable=true",
}

// ZooKeeper is a standalone ZooKeeper server: Debian's jar run by java, configured by a zoo.cfg
// in Dir, its data in Dir/data. All four-letter words are allowed and the admin server is off.
type ZooKeeper struct {
	Dir  string
	Port int
	// Tick is tickTime: the server grants session timeouts from 2 to 20 ticks.
	Tick time.Duration
	// LongLived is for a cluster kept across restarts (devcluster): every commit is fsynced and
	// old snapshots are purged hourly. Without it (a test's server) commits still reach the OS
	// before they are acknowledged, so a SIGKILL loses nothing; only the fsync is skipped.
	LongLived bool
}

// Addr returns the client address.
func (z ZooKeeper) Addr() string { return Addr(z.Port) }

// Config returns the contents of zoo.cfg.
func (z ZooKeeper) Config() string {
	lines := []string{
		fmt.Sprintf("tickTime=%d", z.Tick.Milliseconds()),
		"dataDir=" + filepath.Join(z.Dir, "data"),
		fmt.Sprintf("clientPort=%d", z.Port),
		"clientPortAddress=" + Host,
		"maxClientCnxns=0",
		"4lw.commands.whitelist=*",
		"admin.enableServer=false",
	}
	if z.LongLived {
		lines = append(lines, "autopurge.snapRetainCount=3", "autopurge.purgeInterval=1")
	} else {
		lines = append(lines, "forceSync=no")
	}
	return strings.Join(append(lines, ""), "\n")
}

// Command returns the java command line, or an *ErrMissing when java or the jar is not there.
func (z ZooKeeper) Command() (Command, error) {
	java, err := LookPath("java")
	if err != nil {
		return Command{}, err
	}
	if _, err := requireFile(zkJar, "zookeeper.jar"); err != nil {
		return Command{}, err
	}
	cp := []string{zkConfDir, zkJar}
	if _, err := os.Stat(zkLogJar); err == nil {
		cp = append(cp, zkLogJar)
	}
	args := append(append([]string{}, zkJVMFlags...), "-cp", strings.Join(cp, ":"), zkMain, z.configPath())
	return Command{Bin: java, Args: args}, nil
}

func (z ZooKeeper) configPath() string { return filepath.Join(z.Dir, "zoo.cfg") }

// Prepare creates the data directory and writes zoo.cfg; run it before every start.
func (z ZooKeeper) Prepare() error {
	if err := ensureDir(filepath.Join(z.Dir, "data")); err != nil {
		return err
	}
	if err := os.WriteFile(z.configPath(), []byte(z.Config()), 0o644); err != nil {
		return fmt.Errorf("writing zoo.cfg: %w", err)
	}
	return nil
}

// Ready reports whether the server answers "srvr" with its mode, which it does only once it
// serves requests (unlike "ruok", which answers "imok" as soon as the port is open).
func (z ZooKeeper) Ready(context.Context) bool {
	out, err := FourLetterWord(z.Addr(), "srvr")
	return err == nil && strings.Contains(out, "Mode: standalone")
}

// FourLetterWord sends a ZooKeeper four-letter command ("ruok", "mntr", "srvr", ...) to addr and
// returns the reply.
func FourLetterWord(addr, cmd string) (string, error) {
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
