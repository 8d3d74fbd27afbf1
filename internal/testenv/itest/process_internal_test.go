package itest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/launch/servers"
)

// A server whose port was taken between FreePort and its bind is started
// again on another port.
func TestStartOnFreePortRetriesTakenPort(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	attempts := 0
	p := startOnFreePort(t, func(port int) (*Process, error) {
		attempts++
		if attempts == 1 {
			port = takenPort
		}
		r := servers.Redis{Dir: t.TempDir(), Port: port}
		return serverProcess(t, "redis", r.Dir, port, r, redisReadyLimit), nil
	})
	if attempts != 2 || p.Port == takenPort || !servers.Pong(p.Addr()) {
		t.Fatalf("got %d attempts, port %d (taken %d), want a second attempt on a free port", attempts, p.Port, takenPort)
	}
}

// missingServer is a description whose executable is not installed.
type missingServer struct{}

func (missingServer) Command() (servers.Command, error) {
	return servers.Command{}, &servers.ErrMissing{Name: "/usr/share/java/zookeeper.jar", Package: "zookeeper"}
}
func (missingServer) Ready(context.Context) bool { return false }

// recordTB records Fatalf and Skipf instead of ending the test.
type recordTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordTB) Helper()                           {}
func (r *recordTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recordTB) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

// TestMissingServerFailsInCI: a server whose executable is missing skips the test locally and
// fails it under CI, naming the package that installs it.
func TestMissingServerFailsInCI(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		rec := &recordTB{TB: t}
		serverProcess(rec, "zookeeper", t.TempDir(), 1, missingServer{}, time.Second)
		got, other := rec.skip, rec.fatal
		if ci != "" {
			got, other = rec.fatal, rec.skip
		}
		if !strings.Contains(got, "apt-get install -y zookeeper") || other != "" {
			t.Errorf("CI=%q: got fatal %q, skip %q; want the apt-get hint as a %s", ci, rec.fatal, rec.skip,
				map[bool]string{true: "failure", false: "skip"}[ci != ""])
		}
	}
}
