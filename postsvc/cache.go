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

// Key names (docs/architecture.md#cache-keys). All of a user's keys live on the shard owning
// listKey(uid).
func listKey(uid uint64) string     { return "pl:" + strconv.FormatUint(uid, 10) }
func coverageKey(uid uint64) string { return "plc:" + strconv.FormatUint(uid, 10) }
func postKey(id uint64) string      { return "post:" + strconv.FormatUint(id, 10) }
func urlKey(u string) string        { return "url:" + u }

// member is the sorted-set form of an id: 20 zero-padded digits, so lexicographic order is numeric
// order for every uint64 (a float64 score would round ids past 2^53).
func member(id uint64) string { return fmt.Sprintf("%020d", id) }

func parseMember(m string) (uint64, error) {
	if len(m) != 20 {
		return 0, fmt.Errorf("list member %q: want 20 digits", m)
	}
	return strconv.ParseUint(m, 10, 64)
}

// coverage is the marker plc:<uid> = "<ring version>:<member X>": under that ring version, pl:<uid>
// holds every post of the user with id ≥ X (X = 0: every post). See timeline.go.
type coverage struct {
	version int64
	x       uint64
	ok      bool
}

func parseCoverage(s string) coverage {
	v, x, found := strings.Cut(s, ":")
	if !found {
		return coverage{}
	}
	ver, err1 := strconv.ParseInt(v, 10, 64)
	low, err2 := parseMember(x)
	if err1 != nil || err2 != nil {
		return coverage{}
	}
	return coverage{version: ver, x: low, ok: true}
}

// trimLua trims a list to its newest max members and, whenever the list is full, raises the
// coverage marker to the oldest member left. A full list may have been trimmed before, by this
// step or an earlier one, so a marker just written below its oldest member (by a merge that read
// before the trim) would claim ids that are gone; raising it keeps every claim true.
const trimLua = `
local function trim(pl, plc, max)
  local n = redis.call('ZCARD', pl)
  if n < max then return 0 end
  if n > max then redis.call('ZREMRANGEBYRANK', pl, 0, n - max - 1) end
  local cov = redis.call('GET', plc)
  if cov then
    local v, x = string.match(cov, '^(.-):(%d+)$')
    local low = redis.call('ZRANGE', pl, 0, 0)[1]
    if x and low and low > x then
      redis.call('SET', plc, v .. ':' .. low, 'KEEPTTL')
    end
  end
  return math.max(n - max, 0)
end
`

// writeScript adds one new post: its body, its id in the list, the list's TTL and the trim, in
// one atomic step. KEYS: pl, post, plc. ARGV: member, json, ttl ms, list max.
var writeScript = redis.NewScript(trimLua + `
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return trim(KEYS[1], KEYS[3], tonumber(ARGV[4]))
`)

// readScript reads a page in one round trip and one atomic step: the coverage marker, whether the
// list exists, up to n ids ≤ max (newest first), and the body of each (false when missing).
// KEYS: pl, plc. ARGV: max ("+" or "[<member>"), n.
var readScript = redis.NewScript(`
local out = {redis.call('GET', KEYS[2]), redis.call('EXISTS', KEYS[1])}
local ids = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], '-', 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(ids) do
  local id = string.gsub(m, '^0+', '')
  out[#out + 1] = m
  out[#out + 1] = redis.call('GET', 'post:' .. id)
end
return out
`)

// fillScript merges ids and bodies read from the database into a list, then records what the
// list now covers. A first page (from = "") sets the marker outright; a later page only extends
// a marker of the same version that already reaches its start, keeping that marker's TTL.
// KEYS: pl, plc. ARGV: list max, list ttl ms, coverage ttl ms, version, from member or "",
// new X member or "" (claim nothing), post ttl ms, n, n members, "1" if the list existed when
// the page was read, then (key, json) pairs.
var fillScript = redis.NewScript(trimLua + `
local n = tonumber(ARGV[8])
local x = ARGV[6]
-- The list vanished (expired, evicted) since the page was read: ids read from it may be gone.
if ARGV[9 + n] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then x = '' end
for i = 9, 8 + n do redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
for i = 10 + n, #ARGV, 2 do redis.call('SET', ARGV[i], ARGV[i + 1], 'PX', ARGV[7]) end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if x ~= '' then
  if ARGV[5] == '' then
    redis.call('SET', KEYS[2], ARGV[4] .. ':' .. x, 'PX', ARGV[3])
  else
    local cov = redis.call('GET', KEYS[2])
    if cov then
      local v, cx = string.match(cov, '^(.-):(%d+)$')
      if v == ARGV[4] and cx and cx <= ARGV[5] and x < cx then
        redis.call('SET', KEYS[2], v .. ':' .. x, 'KEEPTTL')
      end
    end
  end
end
return trim(KEYS[1], KEYS[2], tonumber(ARGV[1]))
`)

// cachedPage is what readScript returned.
type cachedPage struct {
	cov    coverage
	exists bool
	ids    []uint64          // newest first
	bodies map[uint64][]byte // present bodies only
}

func (s *shard) readPage(ctx context.Context, uid, maxID uint64, n int) (cachedPage, error) {
	from := "+"
	if maxID != 0 {
		from = "[" + member(maxID)
	}
	res, err := readScript.Run(ctx, s.rdb, []string{listKey(uid), coverageKey(uid)}, from, n).Slice()
	if err != nil {
		return cachedPage{}, fmt.Errorf("reading list of user %d on %s: %w", uid, s.name, err)
	}
	page := cachedPage{bodies: map[uint64][]byte{}}
	if len(res) < 2 || len(res)%2 != 0 {
		return cachedPage{}, fmt.Errorf("reading list of user %d on %s: malformed reply", uid, s.name)
	}
	// A marker without its list means the list was evicted or expired first: trust nothing.
	page.exists = res[1] == int64(1)
	if cov, ok := res[0].(string); ok && page.exists {
		page.cov = parseCoverage(cov)
	}
	for i := 2; i+1 < len(res); i += 2 {
		m, _ := res[i].(string)
		id, err := parseMember(m)
		if err != nil {
			return cachedPage{}, fmt.Errorf("reading list of user %d on %s: %w", uid, s.name, err)
		}
		page.ids = append(page.ids, id)
		if body, ok := res[i+1].(string); ok {
			page.bodies[id] = []byte(body)
		}
	}
	return page, nil
}

func (s *shard) addPost(ctx context.Context, uid, id uint64, body []byte, ttl time.Duration, listMax int) error {
	keys := []string{listKey(uid), postKey(id), coverageKey(uid)}
	if err := writeScript.Run(ctx, s.rdb, keys, member(id), body, ttl.Milliseconds(), listMax).Err(); err != nil {
		return fmt.Errorf("caching post %d on %s: %w", id, s.name, err)
	}
	return nil
}

// fillArgs is one merge of database rows into a user's list.
type fillArgs struct {
	uid             uint64
	listMax         int
	listTTL, covTTL time.Duration
	postTTL         time.Duration
	version         int64
	from            uint64 // the page's f; 0 for a first page
	claim           bool   // whether newX may be recorded
	listExisted     bool   // pl:<uid> existed when the page was read
	newX            uint64
	ids             []uint64
	bodies          map[uint64][]byte
}

func (s *shard) fill(ctx context.Context, a fillArgs) error {
	from, x := "", ""
	if a.from != 0 {
		from = member(a.from)
	}
	if a.claim {
		x = member(a.newX)
	}
	args := []any{a.listMax, a.listTTL.Milliseconds(), min(a.covTTL, a.listTTL).Milliseconds(),
		strconv.FormatInt(a.version, 10), from, x, a.postTTL.Milliseconds(), len(a.ids)}
	for _, id := range a.ids {
		args = append(args, member(id))
	}
	existed := "0"
	if a.listExisted {
		existed = "1"
	}
	args = append(args, existed)
	for id, body := range a.bodies {
		args = append(args, postKey(id), body)
	}
	if err := fillScript.Run(ctx, s.rdb, []string{listKey(a.uid), coverageKey(a.uid)}, args...).Err(); err != nil {
		return fmt.Errorf("filling list of user %d on %s: %w", a.uid, s.name, err)
	}
	return nil
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
