package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/launch/servers"
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

// lookPath finds one of the machine's executables as internal/launch/servers does; a missing
// one is a *servers.ErrMissing naming its Debian package.
func lookPath(name string) (string, error) { return servers.LookPath(name) }

// ourBin returns the path of one of our binaries in BinDir.
func (c *Cluster) ourBin(name string) (string, error) {
	p := filepath.Join(c.cfg.BinDir, name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("%w; build our binaries first (make build)", &servers.ErrMissing{Name: p})
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

// redisSpec starts a Redis as internal/launch/servers describes it: the queue's with AOF, a
// replica following its Of.
func (c *Cluster) redisSpec(n Node) (spec, error) {
	r := servers.Redis{Dir: c.dataDir(n.Name), Port: c.port(n.Name), AOF: n.Program == ProgRedisQueue}
	if n.Of != "" {
		r.ReplicaOf = c.addr(n.Of)
	}
	cmd, err := r.Command()
	if err != nil {
		return spec{}, err
	}
	return spec{
		bin: cmd.Bin, args: cmd.Args,
		prepare: func(context.Context) error { return r.Prepare() },
		ready:   r.Ready,
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
		ready:   func(ctx context.Context) bool { return launch.Ready(ctx, readyURL) },
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
