// Package cluster runs the whole zkpost topology (docs/architecture.md#the-processes) as local
// processes: ZooKeeper, Redis, MariaDB and Prometheus from the machine's installed binaries, and
// our daemons from a directory of built binaries. ZooKeeper, Redis and MariaDB are started as
// internal/launch/servers describes them and our daemons as internal/launch does: the
// descriptions the test harness (internal/testenv/itest) starts them from too. It is the engine behind `devcluster` and the
// end-to-end test.
//
// A Cluster starts every node in dependency order (independent nodes in parallel), waits until
// each is ready, and supervises them: a daemon of ours that exits is restarted with backoff
// unless it was stopped or killed through the Cluster. Everything binds to 127.0.0.1; state,
// logs and data live under Config.Dir (logs/<node>.log, data/<node>/, state.json).
//
// MariaDB's root has no password on loopback: this is for development only. The services use
// their own user (Config.DBUser).
package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config says where a cluster lives and how it is wired.
type Config struct {
	// Dir holds state.json, logs/ and data/ (default ".devcluster").
	Dir string
	// BinDir holds our binaries: guidd, scrapd, postsvcd, writebackd, zoo_setup, redismon,
	// workwebui (default "bin").
	BinDir string
	// Ports overrides the default port of a node, by node name.
	Ports map[string]int
	// PortOffset is added to every default port not overridden by Ports, to run a second
	// cluster beside the first.
	PortOffset int
	// ZKRoot is the ZooKeeper root of the service tree (default /the_red/my_service).
	ZKRoot string
	// ZKSessionTimeout is given to our daemons (default 4s, so a killed node vanishes quickly).
	ZKSessionTimeout time.Duration
	// DBUser, DBPassword and DBName are the services' MariaDB account and database
	// (default zkpost/zkpost/zkpost).
	DBUser, DBPassword, DBName string
	// ScrapAllowCIDR is passed to scrapd's --allow-cidr (dev and tests only; default none).
	ScrapAllowCIDR string
	// ScrapeInterval is Prometheus' scrape and discovery refresh interval (default 5s).
	ScrapeInterval time.Duration
	// ReadyTimeout bounds the wait for one node to become ready (default 90s).
	ReadyTimeout time.Duration
	// ExtraArgs are appended to a node's command line, by node name.
	ExtraArgs map[string][]string
	// Skip names nodes not to run (for example "prometheus").
	Skip []string
	// Log receives the supervisor's events (default: discarded).
	Log *slog.Logger

	socket string // the supervisor's control socket, recorded in state.json
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		c.Dir = ".devcluster"
	}
	if c.BinDir == "" {
		c.BinDir = "bin"
	}
	var err error
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return c, fmt.Errorf("resolving %s: %w", c.Dir, err)
	}
	if c.BinDir, err = filepath.Abs(c.BinDir); err != nil {
		return c, fmt.Errorf("resolving %s: %w", c.BinDir, err)
	}
	if c.ZKRoot == "" {
		c.ZKRoot = "/the_red/my_service"
	}
	if c.ZKSessionTimeout == 0 {
		c.ZKSessionTimeout = 4 * time.Second
	}
	if c.DBUser == "" {
		c.DBUser = "zkpost"
	}
	if c.DBPassword == "" {
		c.DBPassword = "zkpost"
	}
	if c.DBName == "" {
		c.DBName = "zkpost"
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = 5 * time.Second
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 90 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// FreePorts returns a port for every node of the topology that serves one, each free on
// 127.0.0.1 a moment ago, for running a cluster beside another (tests, CI).
func FreePorts() (map[string]int, error) {
	ports := map[string]int{}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for _, n := range Topology {
		if n.Port == 0 {
			continue
		}
		// Held open until all are chosen, so no two nodes get the same port.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		held = append(held, l)
		ports[n.Name] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// hostPort returns "127.0.0.1:<port>".
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// ensureDir creates dir and its parents.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return nil
}
