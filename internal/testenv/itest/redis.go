package itest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/internal/launch/servers"
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

// StartRedis starts redis-server as internal/launch/servers describes it, on a free port of
// 127.0.0.1 with its directory in a temp dir, and waits until it answers PING.
func StartRedis(tb testing.TB, opts RedisOptions) *Redis {
	tb.Helper()
	return &Redis{startOnFreePort(tb, func(port int) (*Process, error) {
		r := servers.Redis{Dir: tb.TempDir(), Port: port, AOF: opts.AOF, ReplicaOf: opts.ReplicaOf}
		return serverProcess(tb, "redis", r.Dir, port, r, redisReadyLimit), nil
	})}
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
