package scrap

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/the-red/zkpost/internal/httpapi"
)

// Config holds the fetch, safety and cache settings of a Service.
type Config struct {
	Timeout        time.Duration // total deadline of one scrap: robots.txt, redirects and body
	ConnectTimeout time.Duration
	TLSTimeout     time.Duration
	MaxBody        int64
	MaxRedirects   int
	AllowCIDR      string // comma list of prefixes reachable on any port: development and tests only
	AllowPorts     string // comma list of ports allowed elsewhere
	Robots         bool
	RobotsTTL      time.Duration
	CacheTTL       time.Duration
	NegativeTTL    time.Duration
	CacheSize      int
	UserAgent      string
}

// DefaultUserAgent names scrapd to the sites it fetches; its product token is what robots.txt
// groups are matched against.
const DefaultUserAgent = "zkpost-scrap/1.0 (+https://github.com/the-red/zkpost)"

// RegisterFlags adds the service's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "total deadline of one scrap (robots.txt, redirects, body)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 2*time.Second, "deadline of one TCP connect")
	fs.DurationVar(&c.TLSTimeout, "tls-timeout", 2*time.Second, "deadline of one TLS handshake")
	fs.Int64Var(&c.MaxBody, "max-body", 1<<20, "bytes of page body read at most; the prefix is parsed")
	fs.IntVar(&c.MaxRedirects, "max-redirects", 5, "redirects followed at most")
	fs.StringVar(&c.AllowCIDR, "allow-cidr", "", "comma list of CIDR ranges allowed on any port despite the SSRF guard (development and tests only)")
	fs.StringVar(&c.AllowPorts, "allow-ports", "80,443", "comma list of destination ports allowed outside --allow-cidr")
	fs.BoolVar(&c.Robots, "robots", true, "respect robots.txt")
	fs.DurationVar(&c.RobotsTTL, "robots-ttl", time.Hour, "how long a robots.txt is cached")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", 10*time.Minute, "how long a preview is cached")
	fs.DurationVar(&c.NegativeTTL, "negative-ttl", 30*time.Second, "how long a failed scrap is cached")
	fs.IntVar(&c.CacheSize, "cache-size", 10000, "previews and failures cached at most")
	fs.StringVar(&c.UserAgent, "user-agent", DefaultUserAgent, "User-Agent sent to sites")
}

// DefaultConfig returns the flag defaults.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// ParseFunc turns a fetched HTML body into a preview; pageURL is the URL after redirects.
type ParseFunc func(body []byte, contentType string, pageURL *url.URL) (*Preview, error)

// Deps are a Service's collaborators; zero values get the production ones.
type Deps struct {
	Resolver Resolver // default: Go's own resolver
	Now      func() time.Time
	Log      *slog.Logger
	Metrics  prometheus.Registerer // may be nil
	Parse    ParseFunc             // default: Decode then Extract
}

// Service scraps URLs: validates, answers from the cache, collapses concurrent requests for one
// URL into one fetch, checks robots.txt, fetches under the SSRF guard and limits, and extracts.
type Service struct {
	cfg     Config
	fetcher *Fetcher
	robots  *robotsChecker // nil when robots.txt is not respected
	cache   *ttlCache[cached]
	flight  singleflight.Group
	parse   ParseFunc
	log     *slog.Logger
	m       *serviceMetrics
}

// cached is a cache entry: the preview's JSON or the error clients got.
type cached struct {
	preview json.RawMessage
	err     *httpapi.Error
}

// NewService checks cfg and builds a Service.
func NewService(cfg Config, d Deps) (*Service, error) {
	allow, err := ParseAllowCIDR(cfg.AllowCIDR)
	if err != nil {
		return nil, err
	}
	ports, err := ParsePorts(cfg.AllowPorts)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 || cfg.MaxBody <= 0 || cfg.MaxRedirects < 0 {
		return nil, errors.New("scrap config: timeout and max-body must be positive, max-redirects not negative")
	}
	if d.Resolver == nil {
		d.Resolver = &net.Resolver{PreferGo: true}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Parse == nil {
		d.Parse = parseHTML
	}
	f := NewFetcher(FetcherConfig{
		ConnectTimeout: cfg.ConnectTimeout, TLSTimeout: cfg.TLSTimeout,
		MaxBody: cfg.MaxBody, MaxRedirects: cfg.MaxRedirects, UserAgent: cfg.UserAgent,
	}, NewGuard(allow, ports), d.Resolver)
	s := &Service{
		cfg: cfg, fetcher: f, parse: d.Parse, log: d.Log,
		cache: newTTLCache[cached](cfg.CacheSize, d.Now),
		m:     newServiceMetrics(d.Metrics),
	}
	if cfg.Robots {
		s.robots = &robotsChecker{
			f: f, agent: productToken(cfg.UserAgent), ttl: cfg.RobotsTTL, errTTL: cfg.NegativeTTL,
			cache: newTTLCache[robotsResult](cfg.CacheSize, d.Now),
		}
	}
	return s, nil
}

// Close releases idle connections.
func (s *Service) Close() { s.fetcher.Close() }

// parseHTML is the production ParseFunc: charset to UTF-8, then metadata extraction.
func parseHTML(body []byte, contentType string, pageURL *url.URL) (*Preview, error) {
	utf8, err := Decode(body, contentType)
	if err != nil {
		return nil, err
	}
	return Extract(utf8, pageURL)
}

// Scrap returns the preview of rawURL as the JSON of a Preview, or an *httpapi.Error. The fetch runs
// detached from ctx (other callers may be waiting on it) under the service's own deadline; ctx only
// bounds how long this caller waits.
func (s *Service) Scrap(ctx context.Context, rawURL string) (json.RawMessage, error) {
	u, err := ValidateURL(rawURL)
	if err != nil {
		return nil, err
	}
	key := u.String()
	if c, ok := s.cache.Get(key); ok {
		s.m.cache.WithLabelValues(hitLabel(c)).Inc()
		return c.result()
	}
	s.m.cache.WithLabelValues("miss").Inc()
	ch := s.flight.DoChan(key, func() (any, error) { return s.fill(key, u), nil })
	select {
	case r := <-ch:
		return r.Val.(cached).result()
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, ErrTimeout
		}
		return nil, ctx.Err()
	}
}

func (c cached) result() (json.RawMessage, error) {
	if c.err != nil {
		return nil, c.err
	}
	return c.preview, nil
}

func hitLabel(c cached) string {
	if c.err != nil {
		return "negative_hit"
	}
	return "hit"
}

// fill fetches key and caches the outcome.
func (s *Service) fill(key string, u *url.URL) cached {
	// A flight that ended between our cache miss and DoChan has filled the cache: use it rather
	// than fetching the page a second time.
	if c, ok := s.cache.Get(key); ok {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	p, err := s.fetch(ctx, u)
	var c cached
	if err == nil {
		c.preview, err = json.Marshal(p)
	}
	if err != nil {
		c.err = classify(err)
		s.log.Info("scrap failed", "url", key, "error", c.err.Name, "err", err)
	}
	s.m.fetches.WithLabelValues(resultLabel(c.err)).Observe(time.Since(start).Seconds())
	ttl := s.cfg.CacheTTL
	if c.err != nil {
		ttl = s.cfg.NegativeTTL
	}
	s.cache.Put(key, c, ttl)
	return c
}

func resultLabel(e *httpapi.Error) string {
	if e == nil {
		return "ok"
	}
	return e.Name
}

// fetch runs robots.txt, the page fetch and extraction for u.
func (s *Service) fetch(ctx context.Context, u *url.URL) (*Preview, error) {
	if s.robots != nil {
		if err := s.robots.Check(ctx, u); err != nil {
			return nil, err
		}
		ctx = withHopCheck(ctx, s.robots.Check)
	}
	page, err := s.fetcher.FetchPage(ctx, u)
	if err != nil {
		return nil, err
	}
	final := page.URL.String()
	if page.Image {
		return &Preview{URL: &final, Image: &final, Images: []Image{{URL: final}}}, nil
	}
	p, err := s.parse(page.Body, page.ContentType, page.URL)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", ErrDecode.WithMessage("the page could not be decoded or parsed"), err)
	}
	return p, nil
}

type serviceMetrics struct {
	cache   *prometheus.CounterVec
	fetches *prometheus.HistogramVec
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scrap_cache_lookups_total", Help: "Preview cache lookups by result (hit, negative_hit, miss).",
		}, []string{"result"}),
		fetches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scrap_fetch_duration_seconds",
			Help:    "Duration of page fetches (robots.txt, redirects, body, extraction) by result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.cache, m.fetches)
	}
	return m
}
