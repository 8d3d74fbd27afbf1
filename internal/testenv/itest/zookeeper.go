package itest

import (
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch/servers"
)

const (
	// zkTick lets a test ask for session timeouts from 400ms to 4s.
	zkTick       = 200 * time.Millisecond
	zkReadyLimit = 30 * time.Second
)

// ZooKeeper is a standalone ZooKeeper server.
type ZooKeeper struct{ *Process }

// StartZooKeeper starts a standalone ZooKeeper as internal/launch/servers describes it, with
// tickTime=200ms, so session timeouts from 400ms to 4s are accepted as asked. Kill and Start
// keep its data directory, so persistent nodes survive a restart.
func StartZooKeeper(tb testing.TB) *ZooKeeper {
	tb.Helper()
	return &ZooKeeper{startOnFreePort(tb, func(port int) (*Process, error) {
		z := servers.ZooKeeper{Dir: tb.TempDir(), Port: port, Tick: zkTick}
		if err := z.Prepare(); err != nil {
			return nil, err
		}
		return serverProcess(tb, "zookeeper", z.Dir, port, z, zkReadyLimit), nil
	})}
}

// Servers returns the connect string for zk.Connect: []string{Addr()}.
func (z *ZooKeeper) Servers() []string { return []string{z.Addr()} }

// FourLetterWord sends a ZooKeeper four-letter command ("ruok", "mntr", "cons",
// ...) and returns the reply.
func (z *ZooKeeper) FourLetterWord(cmd string) (string, error) {
	return servers.FourLetterWord(z.Addr(), cmd)
}
