package postsvc

// Timeline coverage: when the cache alone can answer a page (docs/architecture.md#timeline-coverage).
//
// pl:<uid> holds ids only ever added (by writes and by merges) and removed oldest-first by trims.
// It can be missing, partial (cold, or a write's cache step failed), trimmed, or stale (built under
// another ring while the user's writes went to another shard). So beside it, the marker plc:<uid>,
// a hash {v: ring version, x: member X}, records: under ring version v, the list holds every post
// of the user with id ≥ X (X = 0: every post). This file owns that marker: its format, its
// parsing, the decision it supports, and every step that writes it (fill, trim, drop).
//
//   - A page (ids ≤ f) is served from Redis alone when the marker's version is the current ring's
//     (any change of R/cache/nodes invalidates every marker) and the page's limit+1 ids all lie at
//     or above X — or X is 0 (the list holds everything) and the list runs out first.
//   - Otherwise the cache's top limit+1 ids ≤ f are merged with the database's top limit+1, the
//     merged page is returned, and its ids are ZADDed back with the new marker: X = the lowest id
//     down to which both sources were read in full (0 when both ran out), recorded outright for a
//     first page and as an extension of a marker that already reaches f for a later one.
//   - A merge never deletes: a write landing during a rebuild is ZADDed and stays. Trims raise X to
//     the oldest id kept whenever the list is full, atomically with the removal. A marker whose
//     list vanished (expired, evicted) is ignored, and deleted by the next fill before it recreates
//     the list; a merge does not claim coverage when the list vanished under it.
//
// What must be atomic, and is therefore Lua: a trim with its marker raise (trimScript), and a
// fill's conditional marker update with its ZADDs and trim (fillScript, one JSON argument with
// named fields). Everything else is a plain pipeline: a write's SET/ZADD/PEXPIRE, a fill's post
// bodies, and the page read, which is one MULTI/EXEC (marker, list, version token) so that it
// never pairs a marker with a list from before or after a trim.
//
// plv:<uid> is the list's version token: a random value replaced by every write to the list and
// deleted with the marker when a write's cache step failed. A page read from Redis alone is proven by the marker at the
// moment of its MULTI, which also reads the token; the in-process page cache (pages.go) may serve
// that page again only while the token is unchanged, checked with one GET per request. So a post
// acknowledged by any postsvcd (its write replaced the token before the 201) is on the next page
// read through any other.
//
// Posts in flight: a post whose job is queued but not yet persisted is in the list only if its
// write cached it there. Under the current ring that holds unless the cache step failed — then the
// write deletes the marker and token, at once or, when the shard is cut off, as soon as it answers
// again (repair.go). A post cached on another shard under an earlier ring does not; so for
// --coverage-settle after this process installs a ring (a bound on the write-back lag), merges
// claim no coverage and every page is merged with the database. What remains — a crash between
// enqueue and cache write, a shard losing its data without redismon noticing, write-back lagging
// past the settle time — can hide a post from cache-only pages until the marker's TTL
// (--coverage-ttl) ends and the next read merges with the database again.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/post"
)

func coverageKey(uid uint64) string { return "plc:" + strconv.FormatUint(uid, 10) }
func versionKey(uid uint64) string  { return "plv:" + strconv.FormatUint(uid, 10) }

// The marker's fields; the Lua below names them literally.
const (
	markerVersion = "v"
	markerX       = "x"
)

// marker is one state of plc:<uid>.
type marker struct {
	version int64  // ring version it was written under
	x       uint64 // the list holds every post with id ≥ x
	ok      bool   // false: no marker, or one that cannot be read
}

// parseMarker reads the marker from the values HMGET plc v x returned (nil for a missing field).
func parseMarker(v, x any) marker {
	vs, ok1 := v.(string)
	xs, ok2 := x.(string)
	if !ok1 || !ok2 {
		return marker{}
	}
	ver, err1 := strconv.ParseInt(vs, 10, 64)
	low, err2 := parseMember(xs)
	if err1 != nil || err2 != nil {
		return marker{}
	}
	return marker{version: ver, x: low, ok: true}
}

// listRead is one atomic read of a user's list: up to n ids ≤ the page's f, newest first, with the
// marker and token as they were at that moment.
type listRead struct {
	marker   marker
	exists   bool // pl:<uid> existed
	ids      []uint64
	token    string        // plv:<uid>, "" when the read could not establish one
	markerTL time.Duration // what remained of the marker's TTL
	size     int64         // ids in the list
	oldest   uint64        // the list's oldest id (0 when empty)
}

// below tells whether a merge's ids all lie below what a full list holds: its trim would remove
// them again at once, so writing them back is wasted work.
func (r listRead) below(ids []uint64, listMax int) bool {
	if r.size < int64(listMax) {
		return false
	}
	for _, id := range ids {
		if id >= r.oldest {
			return false
		}
	}
	return true
}

// servable tells whether the list alone is the true page of limit ids under ring version
// version, and returns it and the next page's start.
func (r listRead) servable(version int64, limit int) (ids []uint64, next uint64, ok bool) {
	m := r.marker
	// A marker without its list means the list was evicted or expired first: trust nothing.
	if !m.ok || !r.exists || m.version != version {
		return nil, 0, false
	}
	if len(r.ids) > limit && r.ids[limit] >= m.x {
		return r.ids[:limit], r.ids[limit], true
	}
	if len(r.ids) <= limit && m.x == 0 {
		return r.ids, 0, true
	}
	return nil, 0, false
}

// coverage reads, fills and trims users' lists and their markers.
type coverage struct {
	listMax   int
	listTTL   time.Duration // pl, plv and post bodies
	markerTTL time.Duration // never more than listTTL: a marker must not outlive its list
	log       *slog.Logger
	metrics   *serviceMetrics
}

func newCoverage(cfg Config, log *slog.Logger, m *serviceMetrics) *coverage {
	return &coverage{listMax: cfg.ListMax, listTTL: cfg.PostTTL, markerTTL: min(cfg.CoverageTTL, cfg.PostTTL), log: log, metrics: m}
}

// newToken returns a fresh list version token. Random rather than a counter: a counter restarts
// when a shard loses its data, and an old page could then match a new list's token.
func newToken() string { return strconv.FormatUint(rand.Uint64(), 36) }

// read reads up to n ids ≤ maxID (0: no bound) of uid's list, with the marker, the token, the
// list's size and oldest id, in one MULTI/EXEC. When the list has no token yet, the read creates one (SET NX), so that the page can
// be kept in process; any later write or fill replaces it.
func (c *coverage) read(ctx context.Context, sh *shard, uid, maxID uint64, n int) (listRead, error) {
	from := "+"
	if maxID != 0 {
		from = "[" + member(maxID)
	}
	tok := newToken()
	var tokCmd *redis.Cmd
	var mCmd *redis.SliceCmd
	var exCmd *redis.IntCmd
	var ttlCmd *redis.DurationCmd
	var idsCmd, oldestCmd *redis.StringSliceCmd
	var sizeCmd *redis.IntCmd
	_, err := sh.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		tokCmd = p.Do(ctx, "SET", versionKey(uid), tok, "NX", "GET", "PX", c.listTTL.Milliseconds())
		mCmd = p.HMGet(ctx, coverageKey(uid), markerVersion, markerX)
		exCmd = p.Exists(ctx, listKey(uid))
		ttlCmd = p.PTTL(ctx, coverageKey(uid))
		idsCmd = p.ZRevRangeByLex(ctx, listKey(uid), &redis.ZRangeBy{Max: from, Min: "-", Count: int64(n)})
		sizeCmd = p.ZCard(ctx, listKey(uid))
		oldestCmd = p.ZRange(ctx, listKey(uid), 0, 0)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return listRead{}, fmt.Errorf("reading list of user %d on %s: %w", uid, sh.name, err)
	}
	r := listRead{exists: exCmd.Val() == 1, markerTL: ttlCmd.Val(), token: tok, size: sizeCmd.Val()}
	if o := oldestCmd.Val(); len(o) == 1 {
		r.oldest, _ = parseMember(o[0])
	}
	if old, err := tokCmd.Text(); err == nil {
		r.token = old
	}
	if vals := mCmd.Val(); len(vals) == 2 {
		r.marker = parseMarker(vals[0], vals[1])
	}
	r.ids = make([]uint64, 0, len(idsCmd.Val()))
	for _, m := range idsCmd.Val() {
		id, err := parseMember(m)
		if err != nil {
			return listRead{}, fmt.Errorf("reading list of user %d on %s: %w", uid, sh.name, err)
		}
		r.ids = append(r.ids, id)
	}
	return r, nil
}

// sawDownTo returns the X a merge may claim: the merge of up to limit+1 database rows and the
// cached ids saw everything both sources hold at or above it. A source that returned more than
// limit ids was seen down to its oldest one read; one that returned fewer ran out, and bounds
// nothing.
func sawDownTo(rows []post.Post, cachedIDs []uint64, limit int) uint64 {
	x := uint64(0)
	if len(rows) > limit {
		x = max(x, minID(rows))
	}
	if len(cachedIDs) > limit {
		x = max(x, slices.Min(cachedIDs))
	}
	return x
}

func minID(rows []post.Post) uint64 {
	m := rows[0].ID
	for _, r := range rows[1:] {
		m = min(m, r.ID)
	}
	return m
}

// merge is what a merged page writes back into a user's list.
type merge struct {
	uid         uint64
	version     int64  // the ring version the page was read under
	from        uint64 // the page's f; 0 for a first page
	claim       bool   // whether x may be recorded (false within --coverage-settle)
	listExisted bool   // pl:<uid> existed when the page was read
	x           uint64 // what the merge saw down to (sawDownTo)
	ids         []uint64
	bodies      map[uint64][]byte // valid JSON objects only: reads serve them unchecked
}

// fillArgs are fillScript's named arguments, as one JSON object.
type fillArgs struct {
	Members     []string `json:"members"`
	ListMax     int      `json:"list_max"`
	ListTTLMS   int64    `json:"list_ttl_ms"`
	MarkerTTLMS int64    `json:"marker_ttl_ms"`
	Version     string   `json:"version"`
	From        string   `json:"from"` // member of the page's f, "" for a first page
	X           string   `json:"x"`    // member to claim, "" to claim nothing
	ListExisted bool     `json:"list_existed"`
}

// fill writes a merge back: the bodies, then (atomically) the ids, the marker and the trim. It
// leaves the token alone: a fill adds only posts already persisted, and a page proven complete
// before it stays true (only a new post changes a timeline, and its write replaces the token), so
// the pages kept in process of a user whose older pages are being filled stay valid.
func (c *coverage) fill(ctx context.Context, sh *shard, m merge) error {
	a := fillArgs{Members: make([]string, 0, len(m.ids)), ListMax: c.listMax, ListTTLMS: c.listTTL.Milliseconds(),
		MarkerTTLMS: c.markerTTL.Milliseconds(), Version: strconv.FormatInt(m.version, 10), ListExisted: m.listExisted}
	for _, id := range m.ids {
		a.Members = append(a.Members, member(id))
	}
	if m.from != 0 {
		a.From = member(m.from)
	}
	if m.claim {
		a.X = member(m.x)
	}
	args, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding fill of user %d: %w", m.uid, err)
	}
	_, err = sh.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id, b := range m.bodies {
			p.Set(ctx, postKey(id), b, c.listTTL)
		}
		if len(m.ids) > 0 || m.claim {
			fillScript.Eval(ctx, p, []string{listKey(m.uid), coverageKey(m.uid)}, args)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("filling list of user %d on %s: %w", m.uid, sh.name, err)
	}
	return nil
}

// addPost makes one new post visible in its author's list and publishes it to the author's
// streams (streamhub.go): body first (a reader that sees the id finds it), id, TTL, a new token
// (after the id: a reader that sees the token sees the post), the list's length, and last the
// PUBLISH (a stream that hears of the post finds it cached). None of it needs atomicity, so it is
// pipelined, and grouped with the posts of concurrent writes (cachewrite.go); only the trim does,
// when the list outgrew --list-max, and it runs as its own script. published is the PUBLISH's
// outcome; err the cache write's.
func (s *shard) addPost(ctx context.Context, uid, id uint64, body []byte, ttl time.Duration, listMax int) (published, err error) {
	n, published, err := s.writes.write(ctx, &postWrite{uid: uid, id: id, body: body, ttl: ttl})
	if err != nil || n <= int64(listMax) {
		return published, err
	}
	if err := trimScript.Run(ctx, s.rdb, []string{listKey(uid), coverageKey(uid)}, listMax).Err(); err != nil {
		return published, fmt.Errorf("trimming list of user %d on %s: %w", uid, s.name, err)
	}
	return published, nil
}

// queueAddPost queues addPost's commands for pw on p.
func queueAddPost(ctx context.Context, p redis.Pipeliner, pw *postWrite) postCmds {
	pl := listKey(pw.uid)
	c := postCmds{cached: []redis.Cmder{
		p.Set(ctx, postKey(pw.id), pw.body, pw.ttl),
		p.ZAdd(ctx, pl, redis.Z{Member: member(pw.id)}),
		p.PExpire(ctx, pl, pw.ttl),
		p.Set(ctx, versionKey(pw.uid), newToken(), pw.ttl),
	}}
	c.card = p.ZCard(ctx, pl)
	c.publish = p.Publish(ctx, channelOf(pw.uid), pw.body)
	return c
}

// trimLua is trim(pl, plc, max): it trims a list to its newest max members and, whenever the list
// is full, raises the marker's x to the oldest member left. A full list may have been trimmed
// before, so a marker just written below its oldest member (by a merge that read before the trim)
// would claim ids that are gone; raising it keeps every claim true.
const trimLua = `
local function trim(pl, plc, max)
  local n = redis.call('ZCARD', pl)
  if n < max then return 0 end
  if n > max then redis.call('ZREMRANGEBYRANK', pl, 0, n - max - 1) end
  local low = redis.call('ZRANGE', pl, 0, 0)[1]
  local x = redis.call('HGET', plc, 'x')
  if x and low and low > x then redis.call('HSET', plc, 'x', low) end
  return math.max(n - max, 0)
end
`

// trimScript trims one list. KEYS: pl, plc. ARGV: list max.
var trimScript = redis.NewScript(trimLua + `
local pl, plc, max = KEYS[1], KEYS[2], tonumber(ARGV[1])
return trim(pl, plc, max)
`)

// fillScript merges a merge's ids into a list, then records what the list now covers. A first
// page (from = "") sets the marker outright; a later page only lowers the x of a marker of the
// same version that already reaches its start, keeping that marker's TTL. A marker whose list is
// gone is deleted first: a later page's fill would otherwise recreate the list with its own ids
// only and extend a marker that still claims the newer ids (TestPaginationModel, seed
// 1796307711479645191). KEYS: pl, plc. ARGV: one JSON object (fillArgs).
var fillScript = redis.NewScript(trimLua + `
local pl, plc = KEYS[1], KEYS[2]
local a = cjson.decode(ARGV[1])
local x = a.x
if redis.call('EXISTS', pl) == 0 then
  -- The list vanished (expired, evicted): a marker left from it claims ids that are gone, and
  -- the ZADDs below would make a list of this page's ids alone look like the one it described.
  redis.call('DEL', plc)
  -- Vanished since the page was read: ids read from it may be gone, so claim nothing either.
  if a.list_existed then x = '' end
end
for _, m in ipairs(a.members) do redis.call('ZADD', pl, 0, m) end
if #a.members > 0 then redis.call('PEXPIRE', pl, a.list_ttl_ms) end
if x ~= '' then
  if a.from == '' then
    redis.call('DEL', plc)
    redis.call('HSET', plc, 'v', a.version, 'x', x)
    redis.call('PEXPIRE', plc, a.marker_ttl_ms)
  else
    local cur = redis.call('HMGET', plc, 'v', 'x')
    if cur[1] == a.version and cur[2] and cur[2] <= a.from and x < cur[2] then
      redis.call('HSET', plc, 'x', x)
    end
  end
end
return trim(pl, plc, a.list_max)
`)

// dropKeys are what a failed cache write deletes so that the list is no longer trusted: the marker
// (no page is served from Redis alone) and the token (no page is served from process memory).
func dropKeys(uid uint64) []string { return []string{coverageKey(uid), versionKey(uid)} }
