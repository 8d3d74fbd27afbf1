package postsvc

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config holds postsvcd's own flags (ZooKeeper, database, queue and log flags are registered by
// their packages).
type Config struct {
	Listen    string // host:port to bind
	Advertise string // host:port written to ZooKeeper; "" = derived from the bound address

	MaxContents  int           // bytes of contents accepted
	ScrapTimeout time.Duration // bounded wait for a link preview; the post is written without one after it
	ListMax      int           // newest ids kept in a user's cached list
	PostTTL      time.Duration // TTL of post:<id> and pl:<uid>
	URLTTL       time.Duration // TTL of url:<url> previews
	CoverageTTL  time.Duration // how long a list's coverage marker is trusted (see timeline.go)
	Settle       time.Duration // how long after a ring change merges claim no coverage (see timeline.go)
	CacheTimeout time.Duration // per-call deadline on a cache shard
	PageCache    int           // timeline pages kept in process (pages.go); 0 = none
	EnqueueWait  time.Duration // per-write deadline on the queue
	StoreTimeout time.Duration // per-call deadline on the database
	DrainTimeout time.Duration // how long shutdown waits for in-flight requests
	// WriteMode is WriteBack (a post is acknowledged once its job is durably queued) or
	// WriteThrough (once its row committed on the database primary); see docs/benchmarks.md.
	WriteMode string
	// IDBlock is how many ids postsvcd takes from guidd per request at most (concurrent writes
	// share one request); IDMaxAge bounds how long a spare id waits (guid.ClientOptions).
	IDBlock  int
	IDMaxAge time.Duration

	StreamMax       int           // open timeline streams per process; beyond, 503 (stream.go)
	StreamHeartbeat time.Duration // idle time after which a stream sends a comment line
}

// The write modes of --write-mode.
const (
	WriteBack    = "back"
	WriteThrough = "through"
)

// Limits that are part of the API rather than tunables.
const (
	MaxURLBytes     = 2048 // matches posts.url VARCHAR(2048)
	DefaultLimit    = 10
	MaxLimit        = 100
	defaultListen   = "0.0.0.0:8000"
	urlPreviewTTL   = 48 * time.Hour
	minListMax      = MaxLimit + 1
	bodySlackBytes  = 16 << 10 // JSON punctuation, user_id and url around the contents
	jsonEscapeRatio = 6        // "\u0000" is six bytes of JSON for one byte of contents
)

// RegisterFlags adds postsvcd's flags to fs with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", defaultListen, "host:port to serve HTTP on")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port registered in ZooKeeper (default: the bound address, or the primary IP when bound to 0.0.0.0)")
	fs.IntVar(&c.MaxContents, "max-contents", 10000, "maximum contents length in bytes")
	fs.DurationVar(&c.ScrapTimeout, "scrap-timeout", 1500*time.Millisecond, "bounded wait for a link preview; past it the post is written with an empty preview")
	fs.IntVar(&c.ListMax, "list-max", 1000, "newest post ids kept in a user's cached list (at least 101)")
	fs.DurationVar(&c.PostTTL, "post-ttl", 24*time.Hour, "TTL of cached posts and lists")
	fs.DurationVar(&c.URLTTL, "url-ttl", urlPreviewTTL, "TTL of cached link previews")
	fs.DurationVar(&c.CoverageTTL, "coverage-ttl", 30*time.Second, "how long a cached list is trusted as complete without asking the database")
	fs.DurationVar(&c.Settle, "coverage-settle", 15*time.Second, "after a cache ring change, how long lists are not declared complete (bound on write-back lag)")
	fs.DurationVar(&c.CacheTimeout, "cache-timeout", 250*time.Millisecond, "per-call deadline on a cache shard")
	fs.IntVar(&c.PageCache, "page-cache", 10000, "timeline pages kept in process, each checked against its list's version in the cache on every read (0: none)")
	fs.DurationVar(&c.EnqueueWait, "enqueue-timeout", 2*time.Second, "per-write deadline on the queue")
	fs.DurationVar(&c.StoreTimeout, "db-timeout", 3*time.Second, "per-call deadline on the database")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
	fs.IntVar(&c.IDBlock, "id-block", 64, "ids taken from guidd per request at most, shared by concurrent writes (1: one request per id)")
	fs.DurationVar(&c.IDMaxAge, "id-max-age", 5*time.Millisecond, "how long a spare id may wait; an id's time is its post's created_at")
	fs.StringVar(&c.WriteMode, "write-mode", WriteBack,
		"back: acknowledge a post once its job is durably queued for writebackd; through: upsert it into the database primary inside the request (the baseline write-back is measured against)")
	fs.IntVar(&c.StreamMax, "stream-max", 1000, "open timeline streams (GET /api/v1/posts/<uid>/stream) per process; beyond it the answer is 503")
	fs.DurationVar(&c.StreamHeartbeat, "stream-heartbeat", 15*time.Second, "idle time after which a timeline stream sends a heartbeat comment")
}

// DefaultConfig returns the flag defaults, for tests and embedding.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// Validate checks the values that would make the service misbehave.
func (c Config) Validate() error {
	var errs []error
	if c.WriteMode != WriteBack && c.WriteMode != WriteThrough {
		errs = append(errs, fmt.Errorf("--write-mode must be %q or %q, not %q", WriteBack, WriteThrough, c.WriteMode))
	}
	if c.PageCache < 0 {
		errs = append(errs, errors.New("--page-cache must not be negative"))
	}
	if c.IDBlock < 1 || c.IDBlock > 4096 {
		errs = append(errs, errors.New("--id-block must be 1–4096"))
	}
	if c.MaxContents < 1 {
		errs = append(errs, errors.New("--max-contents must be positive"))
	}
	if c.StreamMax < 0 {
		errs = append(errs, errors.New("--stream-max must not be negative"))
	}
	if c.ListMax < minListMax {
		errs = append(errs, fmt.Errorf("--list-max must be at least %d (one page plus the next id)", minListMax))
	}
	durations := []struct {
		name string
		d    time.Duration
	}{{"--scrap-timeout", c.ScrapTimeout}, {"--post-ttl", c.PostTTL}, {"--url-ttl", c.URLTTL},
		{"--coverage-ttl", c.CoverageTTL}, {"--coverage-settle", c.Settle}, {"--cache-timeout", c.CacheTimeout}, {"--enqueue-timeout", c.EnqueueWait},
		{"--db-timeout", c.StoreTimeout}, {"--drain-timeout", c.DrainTimeout}, {"--id-max-age", c.IDMaxAge},
		{"--stream-heartbeat", c.StreamHeartbeat}}
	for _, d := range durations {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	return errors.Join(errs...)
}

// maxBodyBytes bounds a JSON request body: the largest legal contents fully escaped, plus slack.
func (c Config) maxBodyBytes() int {
	return c.MaxContents*jsonEscapeRatio + MaxURLBytes*jsonEscapeRatio + bodySlackBytes
}
