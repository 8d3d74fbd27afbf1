package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/launch/servers"
	"github.com/the-red/zkpost/internal/testenv/itest"
)

// TestDaemonsStartAsLaunchDescribes: every daemon node is one of internal/launch's programs,
// registers where launch says, and is started with launch's flags at its own address and
// polled at launch's readiness path.
func TestDaemonsStartAsLaunchDescribes(t *testing.T) {
	bin := t.TempDir()
	for _, p := range launch.Daemons {
		if err := os.WriteFile(filepath.Join(bin, p.Binary), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &Cluster{cfg: Config{BinDir: bin, ZKRoot: "/r", ZKSessionTimeout: 3 * time.Second,
		DBUser: "u", DBPassword: "p", DBName: "n"}, byName: map[string]*proc{}}
	for _, n := range Topology {
		if n.Kind != Daemon {
			continue
		}
		prog, ok := launch.ByBinary(string(n.Program))
		if !ok {
			t.Errorf("node %s runs %s, which internal/launch does not describe", n.Name, n.Program)
			continue
		}
		if n.Service != prog.Service {
			t.Errorf("node %s registers in %q, launch says %q", n.Name, n.Service, prog.Service)
		}
		s, err := c.spec(n)
		if err != nil {
			t.Fatalf("spec(%s): %v", n.Name, err)
		}
		addr := c.addr(n.Name)
		want := prog.Args(launch.Instance{Listen: addr, Advertise: addr, ZK: c.ZKAddr(), ZKRoot: "/r",
			ZKSessionTimeout: 3 * time.Second, DB: launch.Account{User: "u", Password: "p", Name: "n"}})
		if !slices.Equal(s.args, want) {
			t.Errorf("node %s args: got %q, want %q", n.Name, s.args, want)
		}
	}
}

// TestServersStartAsServersDescribes: ZooKeeper, the Redis servers and the MariaDB servers are
// started with internal/launch/servers' command lines: the queue with AOF, each replica following
// its primary, the MariaDB replica with its own server id and parallel apply.
func TestServersStartAsServersDescribes(t *testing.T) {
	for _, exe := range []string{"java", "redis-server", "mariadbd", "mariadb-install-db"} {
		itest.Require(t, exe)
	}
	c := &Cluster{cfg: Config{Dir: t.TempDir(), PortOffset: 30000}, byName: map[string]*proc{}}
	want := map[string]interface {
		Command() (servers.Command, error)
	}{
		"zookeeper": servers.ZooKeeper{Dir: c.dataDir("zookeeper"), Port: 32181, Tick: zkTick, LongLived: true},
		"redis2":    servers.Redis{Dir: c.dataDir("redis2"), Port: 46381},
		"queue-replica": servers.Redis{Dir: c.dataDir("queue-replica"), Port: 46383, AOF: true,
			ReplicaOf: "127.0.0.1:46379"},
		"mariadb-replica": servers.MariaDB{Dir: c.dataDir("mariadb-replica"), Port: 43307, ServerID: 2,
			Socket: servers.SocketPath(c.dataDir("mariadb-replica")), InnoDB: servers.ClusterInnoDB,
			ParallelApply: servers.ClusterParallelApply},
	}
	for name, desc := range want {
		n, ok := nodeNamed(name)
		if !ok {
			t.Fatalf("no node %s in the topology", name)
		}
		s, err := c.spec(n)
		if err != nil {
			t.Fatalf("spec(%s): %v", name, err)
		}
		cmd, err := desc.Command()
		if err != nil {
			t.Fatal(err)
		}
		if s.bin != cmd.Bin || !slices.Equal(s.args, cmd.Args) {
			t.Errorf("node %s: got %s %q, want %s %q", name, s.bin, s.args, cmd.Bin, cmd.Args)
		}
	}
}

func nodeNamed(name string) (Node, bool) {
	i := slices.IndexFunc(Topology, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return Node{}, false
	}
	return Topology[i], true
}
