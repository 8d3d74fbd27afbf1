package scrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/httpapi"
)

// Candidates lists scrapd instances (host:port) in the order to try them; *discovery.Balancer
// implements it over Layout.Nodes("scrap").
type Candidates interface {
	Candidates() []string
}

var _ Candidates = (*discovery.Balancer)(nil)

// Client calls scrapd instances for postsvc. It percent-encodes the target URL (the reference
// pasted it raw, so "?a=1&b=2" lost "&b=2"), tries the instances round robin, and moves to the next
// one on a connection error or a 500/503 (that node's trouble). An answer in the scrap error
// envelope — 4xx (invalid_url, blocked_address, robots_disallowed, not_html) or an upstream-class
// 502/504 (dns_failure, timeout, upstream_status, ...) — is returned as an *httpapi.Error without
// trying other nodes: another scrapd would fetch the same page and fail the same way, and postsvc's
// deadline is short.
type Client struct {
	nodes Candidates
	http  *http.Client
}

// maxClientBody bounds a scrapd answer read by the client.
const maxClientBody = 1 << 20

// NewClient returns a client over nodes using hc (nil: a client with its own transport).
func NewClient(nodes Candidates, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 60 * time.Second,
		}}
	}
	return &Client{nodes: nodes, http: hc}
}

// ErrNoScrapNodes means no scrapd instance is registered.
var ErrNoScrapNodes = httpapi.ErrUnavailable.WithMessage("no scrap server available")

// Scrap returns the "scrap" object of rawURL's preview, raw. The call is bounded by ctx only.
func (c *Client) Scrap(ctx context.Context, rawURL string) (json.RawMessage, error) {
	nodes := c.nodes.Candidates()
	if len(nodes) == 0 {
		return nil, ErrNoScrapNodes
	}
	q := url.Values{"url": {rawURL}}.Encode()
	var last error
	for _, node := range nodes {
		res, err := c.call(ctx, "http://"+node+"/api/v1/scrap?"+q)
		if err == nil {
			return res, nil
		}
		var api *httpapi.Error
		if errors.As(err, &api) {
			return nil, api
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrNoScrapNodes.WithMessage("no scrap server answered"), last)
}

// call asks one node. A retriable failure is a plain error; a final answer is an *httpapi.Error.
func (c *Client) call(ctx context.Context, target string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("scrap request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrap request to %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxClientBody))
	if err != nil {
		return nil, fmt.Errorf("reading scrap answer from %s: %w", req.URL.Host, err)
	}
	var env struct {
		Code    int             `json:"code"`
		Name    string          `json:"error"`
		Message string          `json:"message"`
		Scrap   json.RawMessage `json:"scrap"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("scrap answer from %s (HTTP %d): %w", req.URL.Host, resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && env.Code == 0 && len(env.Scrap) > 0:
		return env.Scrap, nil
	case resp.StatusCode == http.StatusInternalServerError, resp.StatusCode == http.StatusServiceUnavailable, env.Name == "":
		return nil, fmt.Errorf("scrap server %s answered HTTP %d", req.URL.Host, resp.StatusCode)
	}
	return nil, &httpapi.Error{Status: resp.StatusCode, Code: env.Code, Name: env.Name, Message: env.Message}
}
