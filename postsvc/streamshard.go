package postsvc

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardSub is this process's pub/sub connection to one cache shard (one incarnation of it): the
// channels of every author with local subscribers whose posts live there.
type shardSub struct {
	h      *hub
	sh     *shard
	want   map[string]struct{} // channels wanted; guarded by h.mu
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex // guards ps and have, and serializes SUBSCRIBE/UNSUBSCRIBE
	ps   *redis.PubSub
	have map[string]struct{} // channels the server confirmed or was sent
}

func (h *hub) startShardSub(sh *shard) *shardSub {
	ctx, cancel := context.WithCancel(h.ctx)
	ss := &shardSub{h: h, sh: sh, want: map[string]struct{}{}, ctx: ctx, cancel: cancel,
		ps: sh.rdb.Subscribe(ctx), have: map[string]struct{}{}}
	go ss.receive()
	return ss
}

// stop ends the subscription; its reader exits. The connection is closed in the background:
// stop is called under the hub's lock, which sync takes while holding ss.mu.
func (ss *shardSub) stop() {
	ss.cancel()
	go func() {
		ss.mu.Lock()
		_ = ss.ps.Close()
		ss.mu.Unlock()
	}()
}

// sync sends the SUBSCRIBE and UNSUBSCRIBE that bring the connection to the wanted channels. A
// failed command is retried by the next sync (the reader calls one after each reconnect).
func (ss *shardSub) sync() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var add, del []string
	ss.h.mu.RLock()
	for ch := range ss.want {
		if _, ok := ss.have[ch]; !ok {
			add = append(add, ch)
		}
	}
	for ch := range ss.have {
		if _, ok := ss.want[ch]; !ok {
			del = append(del, ch)
		}
	}
	ss.h.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ss.ctx, ss.h.cfg.CacheTimeout)
	defer cancel()
	if len(add) > 0 {
		if err := ss.ps.Subscribe(ctx, add...); err != nil {
			ss.h.log.Debug("stream subscribe failed", "shard", ss.sh.name, "err", err)
		} else {
			for _, ch := range add {
				ss.have[ch] = struct{}{}
			}
		}
	}
	if len(del) > 0 {
		if err := ss.ps.Unsubscribe(ctx, del...); err == nil {
			for _, ch := range del {
				delete(ss.have, ch)
			}
		}
	}
}

func (ss *shardSub) pubsub() *redis.PubSub {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.ps
}

// receive reads the shard's messages until stopped. An idle connection is pinged; one that fails
// or does not answer the ping is replaced, and once the new one confirms a subscription every
// subscriber on this shard resyncs, since what was published in between is lost.
func (ss *shardSub) receive() {
	broken, pinged := false, false
	for ss.ctx.Err() == nil {
		ps := ss.pubsub()
		msg, err := ps.ReceiveTimeout(ss.ctx, streamPing)
		if err != nil {
			if ss.ctx.Err() != nil {
				return
			}
			if isTimeout(err) && !pinged {
				pinged = true
				if ps.Ping(ss.ctx) == nil {
					continue
				}
			}
			if !broken {
				ss.h.log.Warn("stream shard connection lost", "shard", ss.sh.name, "err", err)
				ss.h.m.reconnects.Inc()
			}
			broken, pinged = true, false
			ss.reconnect()
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			if uid, ok := uidOfChannel(m.Channel); ok {
				ss.h.deliver(ss.sh, uid, []byte(m.Payload))
			}
		case *redis.Subscription:
			if broken && m.Kind == "subscribe" {
				broken = false
				ss.h.log.Info("stream shard connection back", "shard", ss.sh.name)
				ss.h.resyncShard(ss.sh)
			}
		}
	}
}

// reconnect waits a moment, replaces the connection and subscribes the wanted channels again.
func (ss *shardSub) reconnect() {
	select {
	case <-ss.ctx.Done():
		return
	case <-time.After(streamRetryPause):
	}
	ss.mu.Lock()
	_ = ss.ps.Close()
	ss.ps = ss.sh.rdb.Subscribe(ss.ctx)
	ss.have = map[string]struct{}{}
	ss.mu.Unlock()
	ss.sync()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
