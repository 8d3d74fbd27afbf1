//go:build pprof

package daemon

// Built only with -tags pprof (docs/benchmarks.md#profiling): a daemon built so, started with
// $ZKPOST_PPROF_DIR set, serves net/http/pprof on a free loopback port and writes that address
// to $ZKPOST_PPROF_DIR/<program>-<pid>. Normal builds have no profiling endpoint.

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"path/filepath"
)

func init() {
	dir := os.Getenv("ZKPOST_PPROF_DIR")
	if dir == "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	name := fmt.Sprintf("%s-%d", filepath.Base(os.Args[0]), os.Getpid())
	_ = os.WriteFile(filepath.Join(dir, name), []byte(ln.Addr().String()), 0o644)
	go func() { _ = http.Serve(ln, nil) }()
}
