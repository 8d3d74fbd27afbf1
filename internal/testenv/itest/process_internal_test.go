package itest

import (
	"net"
	"testing"

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
