package itest

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisReadyLimit = 15 * time.Second

// Redis is a redis-server process.
type Redis struct{ *Process }

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// AOF turns on the append-only file with fsync on every write, so data
	// survives Kill and Start. Without it nothing is persisted.
	AOF bool
	// ReplicaOf ("host:port") starts the server as a replica of that primary.
	ReplicaOf string
}

// StartRedis starts redis-server on a free port of 127.0.0.1 with its
// directory in a temp dir and waits until it answers PING.
func StartRedis(tb testing.TB, opts RedisOptions) *Redis {
	tb.Helper()
	bin := Require(tb, "redis-server")
	return &Redis{startOnFreePort(tb, func(port int) (*Process, error) {
		dir := tb.TempDir()
		args, err := redisArgs(dir, port, opts)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ready := func() bool { return redisPong(addr) }
		return newProcess("redis", port, dir, bin, args, ready, redisReadyLimit), nil
	})}
}

func redisArgs(dir string, port int, opts RedisOptions) ([]string, error) {
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", "", // stdout, which is our log file
		// A replica's first sync would otherwise wait 5s for more replicas.
		"--repl-diskless-sync-delay", "0",
	}
	if opts.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	if opts.ReplicaOf != "" {
		host, rport, err := net.SplitHostPort(opts.ReplicaOf)
		if err != nil {
			return nil, fmt.Errorf("ReplicaOf %q: %w", opts.ReplicaOf, err)
		}
		args = append(args, "--replicaof", host, rport)
	}
	return args, nil
}

// Client returns a go-redis client for this server, closed when the test ends.
func (r *Redis) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:         r.Addr(),
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		// Without this go-redis ignores context deadlines on reads.
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { c.Close() })
	return c
}

// redisPong reports whether the server at addr answers PING with PONG.
func redisPong(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}
