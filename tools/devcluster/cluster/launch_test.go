package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch"
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
