package postqueue

import (
	"context"
	"time"

	"github.com/gomodule/redigo/redis"
)

// keepWarmJob is the no-op job of KeepWarm.
//
// gocraft/work's worker goroutines poll on their own, and one that finds nothing backs off
// through 10 ms, 100 ms and 1 s to 5 s; after a job it starts over. On an idle queue every
// goroutine ends up polling every 5 s, and since a pool's goroutines start together they stay
// nearly in step, so more goroutines hardly help: BenchmarkAckToCommitLagIdle measured a median
// pickup of about 1 s and a maximum near 3 s. A no-op job every KeepWarm resets one goroutine's
// backoff each time, so some goroutine always polls within about 100 ms and a real job is picked
// up that fast. The list is trimmed to keepWarmBacklog so ticks never pile up while the pool is
// busy or gone, and a tick is never retried or kept in the dead set.
const keepWarmJob = JobName + "_keepwarm"

const keepWarmBacklog = 4

func (w *Worker) keepWarm(ctx context.Context, run *poolRun) {
	key := w.k.prefix + "jobs:" + keepWarmJob
	t := time.NewTicker(w.cfg.KeepWarm)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		body, err := newTick(time.Now())
		if err != nil {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, w.cfg.Queue.IOTimeout)
		if c, err := run.rp.GetContext(rctx); err == nil {
			c.Send("LPUSH", key, body)
			c.Send("LTRIM", key, 0, keepWarmBacklog-1)
			_, _ = redis.DoContext(c, rctx, "")
			c.Close()
		}
		cancel()
	}
}
