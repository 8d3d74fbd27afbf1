package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrNotReplicated means no replica acknowledged a job within the replica wait and the job was
// taken back off the queue: it is not queued and will never be persisted.
var ErrNotReplicated = errors.New("no queue replica acknowledged the job in time; the job was withdrawn")

// ErrMaybeQueued means the queue Redis did not answer after the job was sent and the job could not
// be found and withdrawn: it may still be queued, and then it will be persisted although Enqueue
// failed. It is the one case where a refused post can appear later (see the package doc).
var ErrMaybeQueued = errors.New("the job may still be queued")

const (
	// replicaPoll is how often the primary's INFO replication is read.
	replicaPoll = time.Second
	// replicaMaxLag is how long since a replica's last acknowledgement (INFO's lag, whole
	// seconds; replicas acknowledge every second) it still counts as attached. A hung replica
	// stays "online" until repl-timeout (60 s); past this lag, writes stop waiting for it.
	replicaMaxLag = 3
)

// replicaWatch follows, in the background, how many replicas are attached to the queue primary
// and acknowledging, so that Enqueue knows without a round trip whether to WAIT.
type replicaWatch struct {
	attached atomic.Int32 // -1 until known (and after a failed poll): Enqueue then waits
	stop     context.CancelFunc
	done     chan struct{}
}

// watchReplicas starts polling pool's INFO replication every replicaPoll until stopped.
func watchReplicas(pool *redis.Pool, cfg Config, log *slog.Logger, addr string) *replicaWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &replicaWatch{stop: cancel, done: make(chan struct{})}
	w.attached.Store(-1)
	go w.run(ctx, pool, cfg, log, addr)
	return w
}

func (w *replicaWatch) run(ctx context.Context, pool *redis.Pool, cfg Config, log *slog.Logger, addr string) {
	defer close(w.done)
	t := time.NewTicker(replicaPoll)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.IOTimeout)
		n, err := attachedReplicas(pctx, pool)
		cancel()
		if err != nil {
			n = -1
		}
		if old := w.attached.Swap(int32(n)); old != int32(n) && ctx.Err() == nil {
			log.Info("queue replicas", "primary", addr, "attached", n, "was", old, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close stops the watch and waits for its poll to end.
func (w *replicaWatch) close() {
	w.stop()
	<-w.done
}

// waitFor is how long Enqueue waits for a replica: wait while a replica is attached or while
// that is unknown, 0 (no WAIT) once the primary is known to have none.
func (w *replicaWatch) waitFor(wait time.Duration) time.Duration {
	if w == nil || w.attached.Load() == 0 {
		return 0
	}
	return wait
}

// attachedReplicas counts the replicas INFO replication lists as online and recently
// acknowledging.
func attachedReplicas(ctx context.Context, pool *redis.Pool) (int, error) {
	c, err := pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading replication info: %w", err)
	}
	defer c.Close()
	info, err := redis.String(redis.DoContext(c, ctx, "INFO", "replication"))
	if err != nil {
		return 0, fmt.Errorf("reading replication info: %w", err)
	}
	return countAttached(info), nil
}

// countAttached parses INFO replication's "slaveN:ip=…,port=…,state=online,offset=…,lag=…" lines.
func countAttached(info string) int {
	n := 0
	for line := range strings.Lines(info) {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "slave") || strings.Contains(name, "_") {
			continue
		}
		var online, current bool
		for kv := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "state":
				online = v == "online"
			case "lag":
				// Redis computes the lag from its cached clock, so an acknowledgement that came
				// in during the current second can show as lag=-1: negative is current too.
				lag, err := strconv.Atoi(v)
				current = err == nil && lag <= replicaMaxLag
			}
		}
		if online && current {
			n++
		}
	}
	return n
}

// waitMillis is WAIT's timeout argument for d: at least 1, since WAIT 1 0 would block forever.
func waitMillis(d time.Duration) int64 {
	return max(1, (d + time.Millisecond - 1).Milliseconds())
}

// withdraw removes each job body from the queue with LREM on c (pipelined, one round trip) and
// reports which were there.
func (e *Enqueuer) withdraw(ctx context.Context, c redis.Conn, bodies [][]byte) ([]bool, error) {
	for _, b := range bodies {
		_ = c.Send("LREM", e.k.jobs(), 1, b)
	}
	replies, err := redis.Values(redis.DoContext(c, ctx, ""))
	if err != nil {
		return nil, fmt.Errorf("withdrawing jobs: %w", err)
	}
	removed := make([]bool, len(bodies))
	for i, r := range replies {
		n, err := redis.Int(r, nil)
		if err != nil {
			return nil, fmt.Errorf("withdrawing jobs: %w", err)
		}
		removed[i] = n == 1
	}
	return removed, nil
}

// withdrawFresh withdraws bodies on a new connection to addr, within the dial and I/O timeouts:
// the connection the jobs went out on has failed, and the caller's deadline may have passed.
func (e *Enqueuer) withdrawFresh(ctx context.Context, addr string, bodies [][]byte) ([]bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.DialTimeout+e.cfg.IOTimeout)
	defer cancel()
	c, err := dialRedis(ctx, addr, e.cfg)
	if err != nil {
		return nil, fmt.Errorf("withdrawing jobs: %w", err)
	}
	defer c.Close()
	return e.withdraw(ctx, c, bodies)
}
