package itest

import (
	"net"
	"strconv"
	"testing"
)

// A server whose port was taken between FreePort and its bind is started
// again on another port.
func TestStartOnFreePortRetriesTakenPort(t *testing.T) {
	t.Parallel()
	bin := Require(t, "redis-server")
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
		dir := t.TempDir()
		args, err := redisArgs(dir, port, RedisOptions{})
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		return newProcess("redis", port, dir, bin, args, func() bool { return redisPong(addr) }, redisReadyLimit), nil
	})
	if attempts != 2 || p.Port == takenPort || !redisPong(p.Addr()) {
		t.Fatalf("got %d attempts, port %d (taken %d), want a second attempt on a free port", attempts, p.Port, takenPort)
	}
}
