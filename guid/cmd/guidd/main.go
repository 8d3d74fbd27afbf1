// Command guidd is the Snowflake ID server: it leases a worker id in ZooKeeper, registers itself
// under R/guid/nodes and serves IDs over HTTP (see package guid). Its life cycle is
// internal/daemon's.
package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/daemon"
)

const binary = "guidd"

// deregisterLimit is how long a deregistration may wait on ZooKeeper (discovery.Registration.Close).
const deregisterLimit = 3 * time.Second

func main() { daemon.Main(binary, run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg guid.Config
	spec := daemon.Spec{Name: binary, Flags: func(fs *flag.FlagSet) { cfg.RegisterFlags(fs) }}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		cfg.SessionTimeout = p.ZK.SessionTimeout
		srv, err := guid.New(cfg, guid.Deps{Conn: p.Conn, Layout: p.Layout, Registry: p.Metrics, Log: p.Log})
		if err != nil {
			return err
		}
		// guid registers only once a worker id is leased (the serverset carries it), so its Run
		// keeps the registration and takes it back first when ctx ends, then drains within
		// ShutdownTimeout; the session closes after both.
		return p.Serve(ctx, srv, deregisterLimit+cfg.ShutdownTimeout)
	})
}
