package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/the-red/zkpost/internal/launch"
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
	"prometheus-redis-exporter": "prometheus-redis-exporter", "prometheus-mysqld-exporter": "prometheus-mysqld-exporter",
	"prometheus-node-exporter": "prometheus-node-exporter",
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
	case ProgRedisExporter, ProgMySQLExporter, ProgNodeExporter, ProgZKExporter:
		return c.exporterSpec(n)
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

// daemonSpec starts one of our daemons as internal/launch describes it, at this cluster's
// address and ZooKeeper.
func (c *Cluster) daemonSpec(n Node) (spec, error) {
	prog, ok := launch.ByBinary(string(n.Program))
	if !ok {
		return spec{}, fmt.Errorf("node %s: %q is not one of our daemons", n.Name, n.Program)
	}
	bin, err := c.ourBin(prog.Binary)
	if err != nil {
		return spec{}, err
	}
	addr := c.addr(n.Name)
	args := prog.Args(launch.Instance{
		Listen: addr, Advertise: addr, ZK: c.ZKAddr(), ZKRoot: c.cfg.ZKRoot,
		ZKSessionTimeout: c.cfg.ZKSessionTimeout,
		DB:               launch.Account{User: c.cfg.DBUser, Password: c.cfg.DBPassword, Name: c.cfg.DBName},
	})
	if n.Program == ProgScrapd && c.cfg.ScrapAllowCIDR != "" {
		args = append(args, "--allow-cidr", c.cfg.ScrapAllowCIDR)
	}
	readyURL := prog.ReadyURL(addr)
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
