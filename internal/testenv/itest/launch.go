package itest

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch"
	"github.com/the-red/zkpost/internal/launch/servers"
)

// Launch returns the DaemonSpec that starts one instance of prog as internal/launch describes
// it (the description devcluster and the compose file follow too): built from prog's package,
// given prog's flags for in, then extra, and ready once prog's readiness path answers 200.
func Launch(tb testing.TB, prog launch.Program, in launch.Instance, extra ...string) DaemonSpec {
	tb.Helper()
	_, port, err := net.SplitHostPort(in.Listen)
	if err != nil {
		tb.Fatalf("launching %s: listen address %q: %v", prog.Binary, in.Listen, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		tb.Fatalf("launching %s: listen port %q: %v", prog.Binary, port, err)
	}
	return DaemonSpec{
		Name: prog.Binary, Bin: BuildBinary(tb, prog.Package), Port: n,
		Args: append(prog.Args(in), extra...), ReadyURL: prog.ReadyURL(in.Listen),
	}
}

// server is what serverProcess needs of a description in internal/launch/servers.
type server interface {
	Command() (servers.Command, error)
	Ready(ctx context.Context) bool
}

// serverProcess describes the process of srv, ending the test as Require does when its
// executable is missing.
func serverProcess(tb testing.TB, name, dir string, port int, srv server, limit time.Duration) *Process {
	tb.Helper()
	cmd, err := srv.Command()
	if err != nil {
		requireInstalled(tb, err)
	}
	ready := func() bool { return srv.Ready(context.Background()) }
	return newProcess(name, port, dir, cmd.Bin, cmd.Args, ready, limit)
}
