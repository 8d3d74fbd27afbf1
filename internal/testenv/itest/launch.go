package itest

import (
	"net"
	"strconv"
	"testing"

	"github.com/the-red/zkpost/internal/launch"
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
