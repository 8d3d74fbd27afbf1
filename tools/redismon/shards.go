package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// shardDoc is the data redismon keeps on a cache node. Readers need only status (empty data or
// no status means ALIVE) and epoch; the rest explains the status to people and lets any leader,
// not just the one that last probed, notice that the shard restarted.
type shardDoc struct {
	Status string `json:"status"`
	Since  string `json:"since,omitempty"`
	Epoch  int64  `json:"epoch"`
	// RunID is the run_id of the Redis process the shard was last vouched for: the one that was
	// flushed, or the one first seen serving. Another run_id means the process restarted and may
	// have reloaded data from before its outage.
	RunID  string `json:"run_id,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func parseShardDoc(node string, data []byte) (discovery.CacheNode, shardDoc, error) {
	n, err := discovery.ParseCacheNode(node, data)
	if err != nil {
		return n, shardDoc{}, err
	}
	d := shardDoc{}
	if len(bytes.TrimSpace(data)) > 0 {
		_ = json.Unmarshal(data, &d) // ParseCacheNode accepted it as JSON already
	}
	d.Status, d.Epoch = n.Status, n.Epoch
	return n, d, nil
}

// shardProbe is one probe's outcome.
type shardProbe struct {
	info serverInfo
	err  error
}

// shardCounts are the consecutive probe outcomes of one shard in this leadership term.
type shardCounts struct{ fails, rises int }

// shards watches the health of the cache shards and writes their status. Its state (consecutive
// failures and successes) lives for one leadership term: a new leader starts counting afresh.
//
// The rules (docs/failure-semantics.md §6: a shard that comes back never serves data from before its
// outage):
//   - ALIVE, FailThreshold consecutive failed probes → DOWN.
//   - ALIVE, answering with a run_id other than the one recorded → DOWN at once: the process
//     restarted (perhaps faster than FailThreshold probes) and may have reloaded an AOF or RDB
//     file from before its outage.
//   - DOWN, RiseThreshold consecutive good probes → FLUSHALL, check DBSIZE is 0 and the run_id is
//     still the one flushed, then ALIVE with epoch+1 and that run_id. ALIVE is written only after
//     the flush, so no reader that follows ZooKeeper routes to the shard before it is empty.
//
// A flapping shard therefore costs a flush per comeback, never stale data; RiseThreshold damps
// how often it can re-enter the ring. Every write is conditional on the node's version, so a
// concurrent writer (zoo_setup, an operator, a deposed leader) is never overwritten blindly.
type shards struct {
	cfg     Config
	zk      *discovery.Conn
	dir     string
	redis   *clients
	log     *slog.Logger
	metrics *monitorMetrics
	now     func() time.Time
	counts  map[string]*shardCounts // by node name

	queuePath string
	overlap   overlapLog
}

// tick probes every shard at once and acts on the outcomes one by one.
func (s *shards) tick(ctx context.Context) {
	names, err := s.zk.Children(s.dir)
	if err != nil {
		if !errors.Is(err, discovery.ErrNoNode) {
			s.log.Warn("listing cache shards failed", "err", err)
		}
		return
	}
	probes := make([]shardProbe, len(names))
	var wg sync.WaitGroup
	for i, node := range names {
		n, err := discovery.ParseCacheNode(node, nil)
		if err != nil {
			probes[i].err = err
			continue
		}
		wg.Go(func() {
			info, err := s.redis.probeServer(ctx, n.Addr, s.cfg.ProbeTimeout)
			probes[i] = shardProbe{info: info, err: err}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, node := range names {
		if ctx.Err() != nil {
			return
		}
		seen[node] = true
		s.step(ctx, node, probes[i])
	}
	for node := range s.counts {
		if !seen[node] {
			delete(s.counts, node) // deregistered
		}
	}
}

// step applies one probe outcome to one shard, reading its node afresh.
func (s *shards) step(ctx context.Context, node string, p shardProbe) {
	p0 := path.Join(s.dir, node)
	data, stat, err := s.zk.Get(p0)
	if err != nil {
		if !errors.Is(err, discovery.ErrNoNode) {
			s.log.Warn("reading cache shard failed", "shard", node, "err", err)
		}
		return
	}
	n, doc, err := parseShardDoc(node, data)
	if err != nil {
		s.log.Warn("cache shard unreadable", "shard", node, "err", err)
		return
	}
	c := s.counts[node]
	if c == nil {
		c = &shardCounts{}
		s.counts[node] = c
	}
	if p.err != nil {
		s.metrics.probeFailures.WithLabelValues(n.Name).Inc()
		c.fails++
		c.rises = 0
		if doc.Status == discovery.StatusAlive && c.fails >= s.cfg.FailThreshold {
			s.log.Warn("shard unreachable", "shard", node, "failures", c.fails, "err", p.err)
			s.markDown(node, doc, stat.Version, "unreachable")
		}
		return
	}
	c.fails = 0
	switch doc.Status {
	case discovery.StatusAlive:
		switch doc.RunID {
		case p.info.RunID:
		case "":
			// First sight (zoo_setup's empty node): remember which process we vouch for.
			doc.RunID = p.info.RunID
			s.write(node, doc, stat.Version)
		default:
			s.log.Warn("shard restarted", "shard", node, "run_id", p.info.RunID, "was", doc.RunID)
			s.markDown(node, doc, stat.Version, "restarted")
		}
	case discovery.StatusDown:
		c.rises++
		if c.rises >= s.cfg.RiseThreshold && s.revive(ctx, n, doc, stat.Version, p.info.RunID) {
			c.rises = 0
		}
	}
	// Any other status was set by hand (maintenance): leave it to whoever set it.
}

func (s *shards) markDown(node string, doc shardDoc, version int32, reason string) {
	doc.Status, doc.Since, doc.Reason = discovery.StatusDown, s.now().UTC().Format(time.RFC3339Nano), reason
	if s.write(node, doc, version) {
		s.transition(node, doc.Status)
	}
}

// revive empties the shard and marks it ALIVE with the next epoch. It reports whether it did.
func (s *shards) revive(ctx context.Context, n discovery.CacheNode, doc shardDoc, version int32, runID string) bool {
	node := discovery.CacheNodeName(n.Name, n.Addr)
	queue, err := queueAddrs(s.zk, s.queuePath)
	if err != nil {
		s.log.Warn("reading queue node failed", "err", err)
		return false
	}
	if queue[normAddr(n.Addr)] {
		s.overlap.report(s.log, s.metrics, n.Addr) // flushing it would wipe the queue: stays DOWN
		return false
	}
	if err := s.flush(ctx, n.Addr, runID); err != nil {
		s.log.Warn("shard flush failed", "shard", node, "err", err)
		return false
	}
	doc = shardDoc{Status: discovery.StatusAlive, Since: s.now().UTC().Format(time.RFC3339Nano),
		Epoch: doc.Epoch + 1, RunID: runID, Reason: "flushed"}
	if !s.write(node, doc, version) {
		return false
	}
	s.transition(node, doc.Status)
	return true
}

func (s *shards) transition(node, status string) {
	name, _, _ := strings.Cut(node, ":")
	s.metrics.transitions.WithLabelValues(name, status).Inc()
}

// flush runs FLUSHALL and checks that the server is empty and is still the process probed: a
// restart in between could have reloaded old data.
func (s *shards) flush(ctx context.Context, addr, runID string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl := s.redis.get(addr)
	if err := cl.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("FLUSHALL: %w", err)
	}
	n, err := cl.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("DBSIZE: %w", err)
	}
	if n != 0 {
		return fmt.Errorf("DBSIZE %d after FLUSHALL: something writes to a DOWN shard", n)
	}
	info, err := s.redis.probeServer(ctx, addr, s.cfg.ProbeTimeout)
	if err != nil {
		return err
	}
	if info.RunID != runID {
		return fmt.Errorf("restarted during the flush (run_id %s, flushed %s)", info.RunID, runID)
	}
	return nil
}

// write stores doc on the shard's node if the node still has version.
func (s *shards) write(node string, doc shardDoc, version int32) bool {
	b, err := json.Marshal(doc)
	if err != nil {
		s.log.Error("encoding shard status failed", "shard", node, "err", err)
		return false
	}
	if _, err := s.zk.Set(path.Join(s.dir, node), b, version); err != nil {
		if errors.Is(err, discovery.ErrBadVersion) {
			s.log.Info("shard changed meanwhile; re-reading next probe", "shard", node)
		} else {
			s.log.Warn("writing shard status failed", "shard", node, "err", err)
		}
		return false
	}
	s.metrics.zkWrites.Inc()
	s.log.Info("shard status written", "shard", node, "status", doc.Status, "epoch", doc.Epoch, "reason", doc.Reason)
	return true
}
