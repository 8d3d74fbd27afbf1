package main

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/the-red/zkpost/discovery"
)

// addrsUnder returns the normalized addresses of the cache shards registered under dir.
func addrsUnder(c *discovery.Conn, dir string) (map[string]bool, error) {
	names, err := c.Children(dir)
	if errors.Is(err, discovery.ErrNoNode) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		if cn, err := discovery.ParseCacheNode(n, nil); err == nil {
			out[normAddr(cn.Addr)] = true
		}
	}
	return out, nil
}

// queueAddrs returns the normalized addresses the queue node names; none when it is missing.
func queueAddrs(c *discovery.Conn, p string) (map[string]bool, error) {
	data, _, err := c.Get(p)
	if errors.Is(err, discovery.ErrNoNode) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	q, err := discovery.ParseQueue(data)
	if err != nil {
		return map[string]bool{}, nil // an unreadable queue node names nothing
	}
	out := map[string]bool{normAddr(q.Primary): true}
	for _, s := range q.Secondary {
		out[normAddr(s)] = true
	}
	return out, nil
}

// overlapLog reports each server that is both a cache shard and a queue server once, not on
// every probe.
type overlapLog struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (o *overlapLog) report(log *slog.Logger, m *monitorMetrics, addr string) {
	m.refused.Inc()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[addr] {
		return
	}
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	o.seen[addr] = true
	log.Error("server is both a cache shard and a queue server; leaving it alone", "addr", addr)
}
