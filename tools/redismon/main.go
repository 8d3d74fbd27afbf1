// Command redismon watches the cache shards and the queue Redis and writes what it finds to
// ZooKeeper (docs/operations.md#redismon). Instances elect a leader through ZooKeeper; only the
// leader acts.
//
// The leader marks a cache shard DOWN after repeated failed probes, or at once when the shard's
// Redis restarted; when a DOWN shard answers again it flushes it and only then marks it ALIVE with
// the next epoch, so a shard never serves data from before its outage (docs/failure-semantics.md
// §6). It fails the queue Redis over to the most up-to-date secondary when the primary stops
// answering, and makes the old primary a replica of the new one when it returns.
//
// How far a reader can be behind (the questions of a flapping shard and of a postsvcd that has not
// yet seen DOWN):
//   - A dead shard is marked DOWN within FailThreshold × ProbeInterval + ProbeTimeout (1.75 s with
//     the defaults), and readers learn it through their ZooKeeper watch a few ms later. Until then
//     their reads and writes to it fail, and docs/failure-semantics.md §5 (fall back to the
//     database) covers that.
//   - A shard that restarts with old data (AOF/RDB) is caught by its new run_id at the next probe,
//     however quickly it restarted, and marked DOWN; it is flushed before it is ALIVE again. A
//     reader that reconnected to it before its watch delivered DOWN would read old data for up to
//     ProbeInterval + ProbeTimeout + the watch delivery, so postsvc closes that window: on every
//     new connection (go-redis Options.OnConnect) it compares INFO server's run_id with the run_id
//     recorded here in the shard's node, refuses a connection to any other process, and falls back
//     to the database (TestRestartedShardNeverServesStaleKeys). devcluster also runs cache shards
//     without persistence, so a restart there comes back empty. What remains: a shard restarted
//     before redismon ever recorded its run_id (or while no redismon runs) is adopted as it is.
//   - A postsvcd that has not yet seen DOWN and writes to a returning shard: writes before the
//     flush are erased by it (the post is in the queue and reaches the database,
//     docs/failure-semantics.md §3's "unless that cache shard is down"); writes after the flush are
//     post-outage data. DBSIZE 0 is checked immediately before ALIVE is written; a shard found
//     non-empty is flushed again on a later probe. Such a write may create a partial list on the
//     fresh shard, which readers already merge with the database (docs/failure-semantics.md §4).
//   - A flapping shard costs one flush per comeback and a new epoch each time; it re-enters the
//     ring only after RiseThreshold consecutive good probes, which damps the churn.
//   - A postsvcd cut off from ZooKeeper learns nothing and keeps its last snapshot
//     (docs/zookeeper.md#the-rules).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/internal/daemon"
)

const binary = "redismon"

func main() { daemon.Main(binary, run) }

// shutdownLimit bounds how long the leader's current round may take to finish after a signal;
// past it the ZooKeeper session is closed, which fails any call still waiting on it.
const shutdownLimit = 10 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg Config
	spec := daemon.Spec{Name: binary, Flags: cfg.RegisterFlags}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		// go-redis logs dial failures of a down server on its own global logger; they are
		// expected here, and redismon logs what it concludes from them.
		redis.SetLogger(redisLogger{p.Log})
		m, err := New(cfg, p.Conn, p.Layout, p.Log, p.Metrics)
		if err != nil {
			return err
		}
		p.Log.Info("listening", "addr", m.Addr().String())
		// The Monitor's Run keeps its registration beside its election: when ctx ends it leaves
		// the election (a standby takes over at once), deregisters, and stops its HTTP server.
		return p.Serve(ctx, m, shutdownLimit)
	})
}

// redisLogger sends go-redis' printf-style logs to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, args ...any) {
	l.log.Debug("redis client", "msg", fmt.Sprintf(format, args...))
}
