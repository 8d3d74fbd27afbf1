package guid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
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
}

// Client gets IDs from the guid servers, trying them round robin and falling back to the next
// server on any error or non-200 answer (a 503 from a server without a lease is routine).
type Client struct {
	nodes   Nodes
	hc      *fasthttp.Client
	timeout time.Duration
}

// NewClient returns a client over nodes.
func NewClient(nodes Nodes, opts ClientOptions) *Client {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 500 * time.Millisecond
	}
	if opts.MaxConnsPerHost <= 0 {
		opts.MaxConnsPerHost = 64
	}
	return &Client{
		nodes:   nodes,
		timeout: opts.CallTimeout,
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
}

// Next returns one new ID.
func (c *Client) Next(ctx context.Context) (uint64, error) {
	servers := c.nodes.Candidates()
	if len(servers) == 0 {
		return 0, ErrNoServers
	}
	var errs []error
	for _, hostport := range servers {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("getting a guid: %w", err)
		}
		id, err := c.fetch(ctx, hostport)
		if err == nil {
			return id, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", hostport, err))
	}
	return 0, fmt.Errorf("getting a guid from %d servers: %w", len(servers), errors.Join(errs...))
}

func (c *Client) fetch(ctx context.Context, hostport string) (uint64, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + hostport + "/api/v1/guid")
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		return 0, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		var e struct {
			Name string `json:"error"`
		}
		_ = json.Unmarshal(resp.Body(), &e)
		return 0, fmt.Errorf("status %d %s", resp.StatusCode(), e.Name)
	}
	var r struct {
		GUIDStr string `json:"guid_str"`
	}
	if err := json.Unmarshal(resp.Body(), &r); err != nil {
		return 0, fmt.Errorf("decoding response: %w", err)
	}
	id, err := ParseID(r.GUIDStr)
	if err != nil {
		return 0, fmt.Errorf("decoding response: %w", err)
	}
	return id, nil
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }
