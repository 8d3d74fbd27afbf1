// Package load drives a running zkpost cluster with posts and timeline reads, measures
// throughput and latency, records every acknowledged post id and verifies afterwards that each
// one reached MySQL exactly once. It talks only to loopback addresses: it is a tool for a local
// cluster, not for someone else's servers.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Config says what load to generate. Duration or Count must bound the run.
type Config struct {
	// Targets returns the postsvcd host:port list to spread requests over (round robin).
	Targets func() []string
	// Duration bounds the run's length (0: no time bound, then Count must be set).
	Duration time.Duration
	// Count bounds the number of writes attempted (0: no bound, then Duration must be set).
	Count int
	// Rate is the target of operations per second across all workers (0: as fast as Concurrency allows).
	Rate float64
	// Concurrency is the number of workers (default 8).
	Concurrency int
	// ReadRatio is the fraction of operations that are timeline reads (0–1).
	ReadRatio float64
	// Users is how many distinct users write (ids UserBase+1 … UserBase+Users; default 100).
	Users int
	// UserBase offsets the user ids, so runs against one cluster need not share timelines.
	UserBase int64
	// URL, when set, is attached to every URLEvery-th post (default every 4th).
	URL      string
	URLEvery int
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// OnAck, when set, is called with every acknowledged post (from the workers' goroutines).
	OnAck func(Ack)
}

// Ack is an acknowledged post: the server answered 201 with this id.
type Ack struct {
	PostID string `json:"post_id"`
	UserID int64  `json:"user_id"`
}

// Latency summarises a latency distribution.
type Latency struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50"`
	P90   time.Duration `json:"p90"`
	P99   time.Duration `json:"p99"`
	Max   time.Duration `json:"max"`
}

// Report is the outcome of a run.
type Report struct {
	Elapsed      time.Duration  `json:"elapsed"`
	Writes       int            `json:"writes"` // acknowledged (201)
	WriteErrors  int            `json:"write_errors"`
	Reads        int            `json:"reads"` // answered 200
	ReadErrors   int            `json:"read_errors"`
	Errors       map[string]int `json:"errors"` // by kind: "503", "timeout", "connect", ...
	OpsPerSecond float64        `json:"ops_per_second"`
	WriteLatency Latency        `json:"write_latency"`
	ReadLatency  Latency        `json:"read_latency"`
	Acks         []Ack          `json:"-"`
}

// ErrNotLoopback is returned for a target outside loopback.
var ErrNotLoopback = errors.New("loadgen only talks to loopback addresses")

// recorder gathers results from the workers.
type recorder struct {
	mu         sync.Mutex
	writeLat   []time.Duration
	readLat    []time.Duration
	errors     map[string]int
	writeErrs  int
	readErrs   int
	acks       []Ack
	onAck      func(Ack)
	writesSent atomic.Int64
}

func (r *recorder) write(d time.Duration, ack *Ack, errKind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errKind != "" {
		r.writeErrs++
		r.errors["write "+errKind]++
		return
	}
	r.writeLat = append(r.writeLat, d)
	r.acks = append(r.acks, *ack)
	if r.onAck != nil {
		r.onAck(*ack)
	}
}

func (r *recorder) read(d time.Duration, errKind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if errKind != "" {
		r.readErrs++
		r.errors["read "+errKind]++
		return
	}
	r.readLat = append(r.readLat, d)
}

// Run generates load until Duration passes, Count writes were attempted, or ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return nil, errors.New("a run needs a bound: set a duration or a count")
	}
	if cfg.Targets == nil {
		return nil, errors.New("no targets")
	}
	cfg = withDefaults(cfg)
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	g := &generator{cfg: cfg, client: newClient(cfg), rec: &recorder{errors: map[string]int{}, onAck: cfg.OnAck},
		run: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	start := time.Now()
	g.drive(ctx)
	rep := g.rec.report(time.Since(start))
	return rep, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Users <= 0 {
		cfg.Users = 100
	}
	if cfg.URLEvery <= 0 {
		cfg.URLEvery = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return cfg
}

// newClient returns an HTTP client whose dialer refuses anything but loopback, whatever a name
// resolves to. It is fasthttp's client: with net/http's, loadgen spent 280–370 µs of CPU per
// write and became the bottleneck of the cluster it measures (docs/benchmarks.md).
func newClient(cfg Config) *fasthttp.Client {
	d := &net.Dialer{Timeout: 2 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrNotLoopback, address)
		}
		return nil
	}}
	return &fasthttp.Client{
		Name:                "loadgen",
		Dial:                func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) },
		MaxConnsPerHost:     cfg.Concurrency * 2,
		MaxIdleConnDuration: 30 * time.Second,
		ReadTimeout:         cfg.Timeout,
		WriteTimeout:        cfg.Timeout,
		// A retried POST could write a second post: an unknown outcome is reported, not retried.
		RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
}

type generator struct {
	cfg    Config
	client *fasthttp.Client
	rec    *recorder
	run    string // tags this run's contents
	next   atomic.Uint64
}

// drive runs the workers, paced by a ticker when a rate is set.
func (g *generator) drive(ctx context.Context) {
	var tokens chan struct{}
	if g.cfg.Rate > 0 {
		tokens = make(chan struct{})
		go g.pace(ctx, tokens)
	}
	var wg sync.WaitGroup
	for w := range g.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for ctx.Err() == nil {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						return
					}
				}
				if !g.op(ctx, rnd) {
					return
				}
			}
		}()
	}
	wg.Wait()
}

func (g *generator) pace(ctx context.Context, tokens chan<- struct{}) {
	interval := time.Duration(float64(time.Second) / g.cfg.Rate)
	t := time.NewTicker(max(interval, 10*time.Microsecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			select {
			case tokens <- struct{}{}:
			default: // all workers busy: the rate is not reachable with this concurrency
			}
		}
	}
}

// op performs one read or write; it reports false once the write count is used up.
func (g *generator) op(ctx context.Context, rnd *rand.Rand) bool {
	uid := g.cfg.UserBase + 1 + rnd.Int64N(int64(g.cfg.Users))
	if rnd.Float64() < g.cfg.ReadRatio {
		g.read(ctx, uid)
		return true
	}
	n := g.rec.writesSent.Add(1)
	if g.cfg.Count > 0 && n > int64(g.cfg.Count) {
		return false
	}
	g.write(ctx, uid, n)
	return true
}

func (g *generator) target() (string, error) {
	ts := g.cfg.Targets()
	if len(ts) == 0 {
		return "", errors.New("no postsvcd targets")
	}
	return ts[g.next.Add(1)%uint64(len(ts))], nil
}

func (g *generator) write(_ context.Context, uid, n int64) {
	b := make([]byte, 0, 128+len(g.cfg.URL))
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, uid, 10)
	b = append(b, `,"contents":"loadgen `...)
	b = append(b, g.run...)
	b = append(b, " #"...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, '"')
	if g.cfg.URL != "" && n%int64(g.cfg.URLEvery) == 0 {
		u, _ := json.Marshal(g.cfg.URL)
		b = append(append(b, `,"url":`...), u...)
	}
	b = append(b, '}')
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(b)
	start := time.Now()
	if kind := g.do(req, resp, "/api/v1/posts"); kind != "" {
		g.rec.write(0, nil, kind)
		return
	}
	if resp.StatusCode() != fasthttp.StatusCreated {
		g.rec.write(0, nil, strconv.Itoa(resp.StatusCode()))
		return
	}
	id := postIDStr(resp.Body())
	if id == "" {
		g.rec.write(0, nil, "bad_body")
		return
	}
	g.rec.write(time.Since(start), &Ack{PostID: id, UserID: uid}, "")
}

// postIDStr returns the post_id_str of a created post's JSON, "" when it has none. The answer is
// postsvcd's own encoding of one post, so the field is found by its key rather than by decoding
// the whole document.
func postIDStr(body []byte) string {
	const key = `"post_id_str":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 {
		return ""
	}
	id := rest[:j]
	if _, err := strconv.ParseUint(string(id), 10, 64); err != nil {
		return ""
	}
	return string(id)
}

func (g *generator) read(_ context.Context, uid int64) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	start := time.Now()
	if kind := g.do(req, resp, "/api/v1/posts/"+strconv.FormatInt(uid, 10)+"?limit=10"); kind != "" {
		g.rec.read(0, kind)
		return
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		g.rec.read(0, strconv.Itoa(resp.StatusCode()))
		return
	}
	g.rec.read(time.Since(start), "")
}

// do sends one request to the next target; on failure it returns the kind of error. The run's
// own deadline does not cut a request in flight, which would turn it into an unknown outcome.
func (g *generator) do(req *fasthttp.Request, resp *fasthttp.Response, path string) string {
	host, err := g.target()
	if err != nil {
		return "no_target"
	}
	req.SetRequestURI("http://" + host + path)
	if err := g.client.DoTimeout(req, resp, g.cfg.Timeout); err != nil {
		return errKind(err)
	}
	return ""
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotLoopback):
		return "not_loopback"
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connect"
	}
	return "transport"
}

func (r *recorder) report(elapsed time.Duration) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{
		Elapsed: elapsed, Writes: len(r.writeLat), WriteErrors: r.writeErrs, Reads: len(r.readLat),
		ReadErrors: r.readErrs, Errors: r.errors, WriteLatency: summarize(r.writeLat),
		ReadLatency: summarize(r.readLat), Acks: slices.Clone(r.acks),
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.OpsPerSecond = float64(rep.Writes+rep.Reads) / s
	}
	return rep
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Latency{Count: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: s[len(s)-1]}
}
