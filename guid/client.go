package guid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/guid/snowflake"
)

// Nodes lists guid servers (host:port), rotated for round robin; *discovery.Balancer over
// Layout.Nodes("guid") is the usual one.
type Nodes interface {
	Candidates() []string
}

// ErrNoServers means no guid server is known.
var ErrNoServers = errors.New("no guid server available")

// ClientOptions tune a Client.
type ClientOptions struct {
	// CallTimeout bounds one attempt against one server (default 500 ms); the caller's ctx
	// bounds the whole call.
	CallTimeout time.Duration
	// MaxConnsPerHost bounds the keep-alive pool per server (default 64).
	MaxConnsPerHost int
	// Block, when above 1, makes Next take ids in blocks (blocks.go): concurrent calls share one
	// batch request, which also fetches up to Block spare ids for the calls that follow. 0 or 1:
	// one request per id.
	Block int
	// MaxAge bounds how long a spare id may wait to be handed out (default 5 ms): an id carries
	// its creation time, which becomes the post's created_at.
	MaxAge time.Duration
}

// Client gets IDs from the guid servers, trying them round robin and falling back to the next
// server on any error or non-200 answer (a 503 from a server without a lease is routine).
type Client struct {
	nodes   Nodes
	hc      *fasthttp.Client
	timeout time.Duration
	blocks  *blocks // nil: one request per id
	now     func() time.Time
}

// NewClient returns a client over nodes.
func NewClient(nodes Nodes, opts ClientOptions) *Client {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 500 * time.Millisecond
	}
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = 64
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 5 * time.Millisecond
	}
	c := &Client{
		nodes:   nodes,
		timeout: opts.CallTimeout,
		now:     time.Now,
		hc: &fasthttp.Client{
			Name:                "guid-client",
			MaxConnsPerHost:     opts.MaxConnsPerHost,
			MaxIdleConnDuration: 30 * time.Second,
			ReadTimeout:         opts.CallTimeout,
			WriteTimeout:        opts.CallTimeout,
			// Retrying is ours to do, on the next server, not the library's on the same one.
			RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		},
	}
	if opts.Block > 1 {
		c.blocks = &blocks{spareMax: min(opts.Block, MaxBatch-1), maxAge: opts.MaxAge}
	}
	return c
}

// Next returns one new ID.
func (c *Client) Next(ctx context.Context) (uint64, error) {
	if c.blocks != nil {
		return c.nextFromBlock(ctx)
	}
	return c.nextOne(ctx)
}

// nextOne asks the servers for one id.
func (c *Client) nextOne(ctx context.Context) (uint64, error) {
	servers := c.nodes.Candidates()
	if len(servers) == 0 {
		return 0, ErrNoServers
	}
	var errs []error
	for _, hostport := range servers {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("getting a guid: %w", err)
		}
		ids, err := c.fetch(ctx, hostport, 1)
		if err == nil {
			return ids[0], nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", hostport, err))
	}
	return 0, fmt.Errorf("getting a guid from %d servers: %w", len(servers), errors.Join(errs...))
}

// fetch asks one server for n ids (the single-id form when n is 1).
func (c *Client) fetch(ctx context.Context, hostport string, n int) ([]uint64, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	uri := "http://" + hostport + "/api/v1/guid"
	if n > 1 {
		uri += "?count=" + strconv.Itoa(n)
	}
	req.SetRequestURI(uri)
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		var e struct {
			Name string `json:"error"`
		}
		_ = json.Unmarshal(resp.Body(), &e)
		return nil, fmt.Errorf("status %d %s", resp.StatusCode(), e.Name)
	}
	return decodeIDs(resp.Body(), n)
}

// decodeIDs reads a single-id answer ({"guid_str": ...}) when n is 1, else a batch ({"guids": [...]})
// of exactly n ids.
func decodeIDs(body []byte, n int) ([]uint64, error) {
	if ids, ok := scanBatch(body, n); ok {
		return ids, nil
	}
	var r struct {
		GUIDStr string   `json:"guid_str"`
		GUIDs   []string `json:"guids"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding response: %w", err)
	}
	strs := r.GUIDs
	if n == 1 {
		strs = []string{r.GUIDStr}
	}
	if len(strs) != n {
		return nil, fmt.Errorf("decoding response: %d ids, want %d", len(strs), n)
	}
	ids := make([]uint64, n)
	for i, s := range strs {
		id, err := ParseID(s)
		if err != nil {
			return nil, fmt.Errorf("decoding response: %w", err)
		}
		ids[i] = id
	}
	return ids, nil
}

// batchStart and batchEnd frame a batch answer as guidd writes it (http.go's appendBatch).
const (
	batchStart = `{"guids":[`
	batchEnd   = `]}`
)

// scanBatch reads a batch of exactly n ids spelled as guidd writes it: ids in quotes, separated by
// commas, no spaces, no escapes. It reads the bytes in place, where encoding/json would reflect
// and copy each id into a string (4.5 % of postsvcd's CPU in a write profile).
// Anything else, even the same JSON spelled otherwise, is not ok and goes to encoding/json.
func scanBatch(body []byte, n int) ([]uint64, bool) {
	b, ok := bytes.CutPrefix(body, []byte(batchStart))
	if !ok || n < 2 {
		return nil, false
	}
	ids := make([]uint64, 0, n)
	for len(ids) < n {
		if len(ids) > 0 {
			if b, ok = bytes.CutPrefix(b, []byte{','}); !ok {
				return nil, false
			}
		}
		if b, ok = bytes.CutPrefix(b, []byte{'"'}); !ok {
			return nil, false
		}
		digits, rest, ok := bytes.Cut(b, []byte{'"'})
		if !ok {
			return nil, false
		}
		id, err := snowflake.ParseID(digits)
		if err != nil {
			return nil, false
		}
		ids, b = append(ids, id), rest
	}
	return ids, string(b) == batchEnd
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }
