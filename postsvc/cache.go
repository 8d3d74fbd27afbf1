package postsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
)

// Cache is the set of ALIVE cache shards on a consistent-hash ring, swapped atomically whenever
// ZooKeeper's R/cache/nodes changes. A request takes one view (ring + clients + version) and uses
// it throughout, so a ring change mid-request can only make it stamp an outdated version.
type Cache struct {
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger
	metrics *serviceMetrics

	mu  sync.Mutex // serializes Update
	cur atomic.Pointer[ringView]

	repairs  repairs // coverage markers still to delete (repair.go)
	stop     chan struct{}
	stopOnce sync.Once
}

// ringView is one immutable state of the ring.
type ringView struct {
	version int64     // zxid of the snapshot it was built from; identical in every postsvcd
	since   time.Time // when this process installed it
	ring    *discovery.Ring
	shards  map[string]*shard // by shard name
}

// shard is one cache Redis, in one incarnation: the epoch and run_id redismon recorded.
type shard struct {
	name, addr string
	epoch      int64
	runID      string // "" when redismon has recorded none
	rdb        *redis.Client
	tokens     *tokenReads
	writes     *postWrites // grouped post writes (cachewrite.go)
}

// NewCache returns a cache with no shards: every read goes to the database until Update.
func NewCache(timeout time.Duration, now func() time.Time, log *slog.Logger, m *serviceMetrics) *Cache {
	c := &Cache{timeout: timeout, now: now, log: log, metrics: m, stop: make(chan struct{}),
		repairs: repairs{pending: map[*shard]map[uint64]time.Time{}}}
	c.cur.Store(&ringView{shards: map[string]*shard{}, since: now()})
	go c.repairLoop(c.stop)
	return c
}

// UpdateFromSnapshot rebuilds the ring from a snapshot of R/cache/nodes (read WithData): only
// ALIVE shards are members, and the snapshot's zxid versions the ring.
func (c *Cache) UpdateFromSnapshot(s discovery.Snapshot) {
	var nodes []discovery.CacheNode
	for name, data := range s.Children {
		n, err := discovery.ParseCacheNode(name, data)
		if err != nil {
			c.log.Warn("cache node ignored", "node", name, "err", err)
			continue
		}
		nodes = append(nodes, n)
	}
	c.Update(s.Zxid, nodes)
}

// Update installs the ALIVE nodes as the ring of the given version. Clients of shards that stay
// (same name and address) are kept; the others are closed after the swap, so a request still
// holding the old view sees an error and falls back to the database.
func (c *Cache) Update(version int64, nodes []discovery.CacheNode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cur.Load()
	next := &ringView{version: version, since: c.now(), shards: map[string]*shard{}}
	var names []string
	for _, n := range nodes {
		if n.Status != discovery.StatusAlive {
			continue
		}
		if _, dup := next.shards[n.Name]; dup {
			c.log.Warn("duplicate cache shard name", "shard", n.Name, "addr", n.Addr)
			continue
		}
		sh := old.shards[n.Name]
		if sh == nil || sh.addr != n.Addr || sh.epoch != n.Epoch || sh.runID != n.RunID {
			// A new incarnation (flushed and revived, or another process vouched for) gets a
			// fresh pool: no connection made under the old one's expectations is reused.
			sh = &shard{name: n.Name, addr: n.Addr, epoch: n.Epoch, runID: n.RunID, rdb: c.newClient(n.Addr, n.RunID)}
			sh.tokens = newTokenReads(sh, c.timeout)
			sh.writes = newPostWrites(sh, c.timeout)
		}
		next.shards[n.Name] = sh
		names = append(names, n.Name)
	}
	sort.Strings(names)
	next.ring = discovery.NewRing(names)
	c.cur.Store(next)
	for name, sh := range old.shards {
		if next.shards[name] != sh {
			sh.rdb.Close()
		}
	}
	c.metrics.ringMembers.Set(float64(len(names)))
	c.metrics.ringVersion.Set(float64(version))
	c.log.Info("cache ring", "version", version, "members", names)
}

// newClient returns a client for the shard at addr. When redismon recorded the run_id of the
// process it vouches for, every new connection first checks that the server answering is that
// process (docs/failure-semantics.md §6): a shard killed and restarted faster than redismon's
// failure threshold may have reloaded data from before its outage (AOF, RDB), and until redismon's
// DOWN reaches this process through ZooKeeper (up to a probe interval plus the watch delivery) the
// ring still routes to it. Such a connection is refused, so the request falls back to the database
// like on any cache error. Established connections cannot outlive the process they were made to.
func (c *Cache) newClient(addr, runID string) *redis.Client {
	var onConnect func(context.Context, *redis.Conn) error
	if runID != "" {
		onConnect = func(ctx context.Context, cn *redis.Conn) error {
			info, err := cn.Info(ctx, "server").Result()
			if err != nil {
				return fmt.Errorf("checking run_id of cache shard %s: %w", addr, err)
			}
			if got := infoField(info, "run_id"); got != runID {
				return fmt.Errorf("cache shard %s: run_id %q, redismon vouches for %q: restarted, not flushed yet", addr, got, runID)
			}
			return nil
		}
	}
	return redis.NewClient(&redis.Options{
		OnConnect:             onConnect,
		Addr:                  addr,
		DialTimeout:           c.timeout,
		ReadTimeout:           c.timeout,
		WriteTimeout:          c.timeout,
		ContextTimeoutEnabled: true,
		// A dead or slow shard must cost a request one short timeout, not retries with backoff:
		// the request falls back to the database instead.
		MaxRetries:    -1,
		DialerRetries: 1,
		PoolSize:      64,
		// RESP2 and no CLIENT SETINFO: we use no push notifications (RESP3 makes go-redis look for
		// one before every reply, ~5 % of a write's CPU here) and nothing reads the client's name.
		Protocol:        2,
		DisableIdentity: true,
	})
}

// infoField returns the value of key in an INFO reply ("key:value" lines), or "".
func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return ""
}

// Close stops the background repairs and closes every client.
func (c *Cache) Close() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.cur.Swap(&ringView{shards: map[string]*shard{}})
	for _, sh := range v.shards {
		sh.rdb.Close()
	}
}

func (c *Cache) view() *ringView { return c.cur.Load() }

// shardFor returns the shard owning key, or nil when the ring is empty.
func (v *ringView) shardFor(key string) *shard {
	name, ok := v.ring.Locate(key)
	if !ok {
		return nil
	}
	return v.shards[name]
}

// Key names (docs/architecture.md#cache-keys). All of a user's keys (pl, plc, plv) live on the
// shard owning listKey(uid); coverage.go owns plc and plv.
func listKey(uid uint64) string { return "pl:" + strconv.FormatUint(uid, 10) }
func postKey(id uint64) string  { return "post:" + strconv.FormatUint(id, 10) }
func urlKey(u string) string    { return "url:" + u }

// member is the sorted-set form of an id: 20 zero-padded digits, so lexicographic order is numeric
// order for every uint64 (a float64 score would round ids past 2^53).
func member(id uint64) string {
	d := strconv.FormatUint(id, 10)
	return "00000000000000000000"[:20-len(d)] + d
}

func parseMember(m string) (uint64, error) {
	if len(m) != 20 {
		return 0, fmt.Errorf("list member %q: want 20 digits", m)
	}
	return strconv.ParseUint(m, 10, 64)
}

// posts returns the bodies of ids cached on s, in one MGET: nil where a body is missing.
func (s *shard) posts(ctx context.Context, ids []uint64) ([][]byte, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = postKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("MGET of %d posts on %s: %w", len(ids), s.name, err)
	}
	out := make([][]byte, len(ids))
	for i, v := range vals {
		if b, ok := v.(string); ok {
			out[i] = []byte(b)
		}
	}
	return out, nil
}

// get returns the value of key, or nil when it is missing.
func (s *shard) get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", key, s.name, err)
	}
	return b, nil
}

func (s *shard) set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, key, val, ttl).Err(); err != nil {
		return fmt.Errorf("SET %s on %s: %w", key, s.name, err)
	}
	return nil
}
