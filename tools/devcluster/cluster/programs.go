package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// spec is how to run one node: its command and the hooks around its start.
type spec struct {
	bin  string
	args []string
	// prepare runs before every start (initialise a data dir, write a config file).
	prepare func(ctx context.Context) error
	// ready reports whether the node serves; nil means as soon as it runs.
	ready func(ctx context.Context) bool
	// setup runs once the node is ready (accounts, replication); it must be idempotent.
	setup func(ctx context.Context) error
}

// Executables of the machine's servers, looked up in PATH and then the sbin directories, which a
// non-login PATH often lacks (mariadbd lives in /usr/sbin).
var extraBinDirs = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}

// aptPackages names the Debian package providing each executable we run.
var aptPackages = map[string]string{
	"java": "zookeeper", "redis-server": "redis-server", "mariadbd": "mariadb-server",
	"mariadb-install-db": "mariadb-server", "prometheus": "prometheus",
}

// ErrMissing reports an executable that is not installed.
type ErrMissing struct{ Name, Package string }

func (e *ErrMissing) Error() string {
	if e.Package != "" {
		return fmt.Sprintf("%s not found; install it with: sudo apt-get install -y %s", e.Name, e.Package)
	}
	return fmt.Sprintf("%s not found; build our binaries first (go build -o bin/ ./...)", e.Name)
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range extraBinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &ErrMissing{Name: name, Package: aptPackages[name]}
}

// ourBin returns the path of one of our binaries in BinDir.
func (c *Cluster) ourBin(name string) (string, error) {
	p := filepath.Join(c.cfg.BinDir, name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", &ErrMissing{Name: p}
	}
	return p, nil
}

// spec builds the command and hooks of node n.
func (c *Cluster) spec(n Node) (spec, error) {
	switch n.Program {
	case ProgZooKeeper:
		return c.zookeeperSpec(n)
	case ProgRedisCache, ProgRedisQueue:
		return c.redisSpec(n)
	case ProgMariaDB:
		return c.mariadbSpec(n)
	case ProgPrometheus:
		return c.prometheusSpec(n)
	case ProgZooSetup:
		return c.zooSetupSpec(n)
	case ProgGuidd, ProgScrapd, ProgPostsvcd, ProgWritebackd, ProgRedismon, ProgWorkWebUI:
		return c.daemonSpec(n)
	}
	return spec{}, fmt.Errorf("node %s: unknown program %q", n.Name, n.Program)
}

func (c *Cluster) redisSpec(n Node) (spec, error) {
	bin, err := lookPath("redis-server")
	if err != nil {
		return spec{}, err
	}
	dir := c.dataDir(n.Name)
	args := []string{
		"--port", strconv.Itoa(c.port(n.Name)), "--bind", "127.0.0.1", "--dir", dir,
		"--daemonize", "no", "--protected-mode", "no", "--logfile", "",
		"--repl-diskless-sync-delay", "0",
	}
	if n.Program == ProgRedisQueue {
		// A post is acknowledged once its job is in the queue: fsync every write (docs/failure-semantics.md §1).
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	if n.Of != "" {
		args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(c.port(n.Of)))
	}
	addr := c.addr(n.Name)
	return spec{
		bin: bin, args: args,
		prepare: func(context.Context) error { return ensureDir(dir) },
		ready:   func(context.Context) bool { return redisPong(addr) },
	}, nil
}

// commonArgs are the flags every daemon of ours shares.
func (c *Cluster) commonArgs(n Node) []string {
	addr := c.addr(n.Name)
	return []string{
		"--listen", addr, "--advertise", addr,
		"--zk", c.ZKAddr(), "--zk-root", c.cfg.ZKRoot,
		"--zk-session-timeout", c.cfg.ZKSessionTimeout.String(),
	}
}

func (c *Cluster) daemonSpec(n Node) (spec, error) {
	bin, err := c.ourBin(string(n.Program))
	if err != nil {
		return spec{}, err
	}
	args := c.commonArgs(n)
	db := []string{"--db-user", c.cfg.DBUser, "--db-password", c.cfg.DBPassword, "--db-name", c.cfg.DBName}
	switch n.Program {
	case ProgScrapd:
		if c.cfg.ScrapAllowCIDR != "" {
			args = append(args, "--allow-cidr", c.cfg.ScrapAllowCIDR)
		}
	case ProgPostsvcd, ProgWritebackd:
		args = append(args, db...)
	case ProgWorkWebUI:
		// workwebui registers nowhere; it only follows the queue node.
		args = []string{"--listen", c.addr(n.Name), "--zk", c.ZKAddr(), "--zk-root", c.cfg.ZKRoot}
	}
	readyURL := "http://" + c.addr(n.Name) + "/readyz"
	if n.Program == ProgRedismon {
		// Only the elected leader may call itself ready; a standby is still a healthy node.
		readyURL = "http://" + c.addr(n.Name) + "/healthz"
	}
	return spec{
		bin: bin, args: append(args, c.cfg.ExtraArgs[n.Name]...),
		prepare: func(context.Context) error { return ensureDir(c.dataDir(n.Name)) },
		ready:   func(ctx context.Context) bool { return httpOK(ctx, readyURL) },
	}, nil
}

func (c *Cluster) zooSetupSpec(n Node) (spec, error) {
	bin, err := c.ourBin("zoo_setup")
	if err != nil {
		return spec{}, err
	}
	var cache []string
	for _, t := range c.nodes {
		if t.node.Program == ProgRedisCache {
			cache = append(cache, t.node.Name+":"+c.addr(t.node.Name))
		}
	}
	args := []string{
		"--zk", c.ZKAddr(), "--zk-root", c.cfg.ZKRoot,
		"--cache", strings.Join(cache, ","),
		"--queue-primary", c.addr("queue-primary"), "--queue-secondary", c.addr("queue-replica"),
		"--db-primary", c.addr("mariadb-primary"), "--db-replicas", c.addr("mariadb-replica"),
	}
	return spec{bin: bin, args: append(args, c.cfg.ExtraArgs[n.Name]...),
		prepare: func(context.Context) error { return ensureDir(c.dataDir(n.Name)) }}, nil
}
