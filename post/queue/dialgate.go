package queue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// dialGate slows the worker pool's dials while its Redis is down. gocraft's worker goroutines
// retry a failed fetch after 10 ms and print every failure, so without it an outage means
// Concurrency × 100 failed dials and log lines a second. After a failed dial, further dials
// wait out a pause (doubling from 100 ms up to 5 s, the library's own idle poll interval);
// a success ends it.
type dialGate struct {
	addr   string
	cfg    Config
	closed chan struct{} // closed by close: dials fail at once

	mu        sync.Mutex
	until     time.Time
	pause     time.Duration
	closeOnce sync.Once
}

// errGateClosed is what dials return once the pool was cut off its Redis (Worker.Shutdown).
var errGateClosed = errors.New("queue worker shut down")

func (g *dialGate) close() { g.closeOnce.Do(func() { close(g.closed) }) }

const (
	gateMinPause = 100 * time.Millisecond
	gateMaxPause = 5 * time.Second
)

func (g *dialGate) dial(ctx context.Context) (redis.Conn, error) {
	g.mu.Lock()
	wait := time.Until(g.until)
	g.mu.Unlock()
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.closed:
		return nil, errGateClosed
	case <-t.C:
	}
	c, err := dialRedis(ctx, g.addr, g.cfg)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.pause = min(gateMaxPause, max(gateMinPause, 2*g.pause))
		g.until = time.Now().Add(g.pause)
		return nil, err
	}
	g.pause, g.until = 0, time.Time{}
	return c, nil
}
