package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/the-red/zkpost/internal/launch"
)

// The exporters of docs/monitoring.md: Debian's Redis, MySQL and node exporters, each an
// Optional Infra node (left out when its package is missing), and our zkexporter (Infra too),
// which exports ZooKeeper's mntr and announces the others in ZooKeeper so Prometheus discovers
// them.
const (
	ProgRedisExporter Program = "redis-exporter" // exports the Redis of Node.Of
	ProgMySQLExporter Program = "mysqld-exporter"
	ProgNodeExporter  Program = "node-exporter"
	ProgZKExporter    Program = "zkexporter"
)

// ExporterDirs are the ZooKeeper service directories of the exporters, and Prometheus' job
// names for them.
var ExporterDirs = []string{"redis_exporter", "mysqld_exporter", "node_exporter", "zookeeper_exporter"}

// exporterDir names the directory an exporter node is announced in.
var exporterDir = map[Program]string{
	ProgRedisExporter: "redis_exporter", ProgMySQLExporter: "mysqld_exporter",
	ProgNodeExporter: "node_exporter", ProgZKExporter: "zookeeper_exporter",
}

func (c *Cluster) exporterSpec(n Node) (spec, error) {
	if n.Program == ProgZKExporter {
		return c.zkExporterSpec(n)
	}
	exe := map[Program]string{ProgRedisExporter: "prometheus-redis-exporter",
		ProgMySQLExporter: "prometheus-mysqld-exporter", ProgNodeExporter: "prometheus-node-exporter"}[n.Program]
	bin, err := lookPath(exe)
	if err != nil {
		return spec{}, err
	}
	dir := c.dataDir(n.Name)
	listen := "--web.listen-address=" + c.addr(n.Name)
	var args []string
	prepare := func(context.Context) error { return ensureDir(dir) }
	switch n.Program {
	case ProgRedisExporter:
		args = []string{"--redis.addr=redis://" + c.addr(n.Of), listen}
	case ProgMySQLExporter:
		cnf := filepath.Join(dir, "my.cnf")
		args = []string{"--config.my-cnf=" + cnf, listen, "--collect.slave_status"}
		prepare = func(context.Context) error {
			if err := ensureDir(dir); err != nil {
				return err
			}
			return os.WriteFile(cnf, []byte(c.exporterMyCnf(n.Of)), 0o600)
		}
	case ProgNodeExporter:
		args = []string{listen}
	}
	return spec{
		bin: bin, args: append(args, c.cfg.ExtraArgs[n.Name]...), prepare: prepare,
		ready: func(ctx context.Context) bool { return launch.Ready(ctx, "http://"+c.addr(n.Name)+"/") },
	}, nil
}

// exporterMyCnf is mysqld_exporter's client configuration: the services' user, which may read
// global status and replication state (setupPrimary grants it REPLICATION CLIENT).
func (c *Cluster) exporterMyCnf(db string) string {
	return fmt.Sprintf("[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nport=%d\n",
		c.cfg.DBUser, c.cfg.DBPassword, c.port(db))
}

// zkExporterProgram starts zkexporter with the flags every daemon of ours takes, plus its
// --announce list; so it is not one of launch.Daemons, whose command lines are exactly launch's.
var zkExporterProgram = launch.Program{Binary: "zkexporter", Package: "./tools/zkexporter",
	Service: "zookeeper_exporter", ReadyPath: "/readyz"}

// zkExporterSpec runs our zkexporter: mntr of this cluster's ZooKeeper, and an announcement for
// every other exporter node of the topology that runs.
func (c *Cluster) zkExporterSpec(n Node) (spec, error) {
	bin, err := c.ourBin(string(n.Program))
	if err != nil {
		return spec{}, err
	}
	var announce []string
	for _, t := range Topology {
		// Topology lists zkexporter after the other exporters, so byName no longer holds one
		// that New left out.
		if _, running := c.byName[t.Name]; running && t.Program != ProgZKExporter && exporterDir[t.Program] != "" {
			dir := exporterDir[t.Program]
			announce = append(announce, dir+"="+c.addr(t.Name))
		}
	}
	addr := c.addr(n.Name)
	args := append(zkExporterProgram.Args(launch.Instance{Listen: addr, Advertise: addr, ZK: c.ZKAddr(),
		ZKRoot: c.cfg.ZKRoot, ZKSessionTimeout: c.cfg.ZKSessionTimeout}),
		"--announce", strings.Join(announce, ","), "--announce-interval", "1s")
	return spec{
		bin: bin, args: append(args, c.cfg.ExtraArgs[n.Name]...),
		prepare: func(context.Context) error { return ensureDir(c.dataDir(n.Name)) },
		ready:   func(ctx context.Context) bool { return launch.Ready(ctx, zkExporterProgram.ReadyURL(addr)) },
	}, nil
}
