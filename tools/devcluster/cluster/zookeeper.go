package cluster

import (
	"context"
	"time"

	"github.com/the-red/zkpost/internal/launch/servers"
)

// zkTick lets sessions run from 1s to 10s (2–20 ticks): our daemons ask for a few seconds, so a
// killed node leaves ZooKeeper quickly.
const zkTick = 500 * time.Millisecond

// zookeeperSpec starts ZooKeeper as internal/launch/servers describes it, kept across restarts.
func (c *Cluster) zookeeperSpec(n Node) (spec, error) {
	z := servers.ZooKeeper{Dir: c.dataDir(n.Name), Port: c.port(n.Name), Tick: zkTick, LongLived: true}
	cmd, err := z.Command()
	if err != nil {
		return spec{}, err
	}
	return spec{
		bin: cmd.Bin, args: cmd.Args,
		prepare: func(context.Context) error { return z.Prepare() },
		ready:   z.Ready,
	}, nil
}
