package scrap

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/the-red/zkpost/internal/httpapi"
)

type nodeList []string

func (n nodeList) Candidates() []string { return n }

func hostOf(base string) string { return strings.TrimPrefix(base, "http://") }

func TestClientEncodesTheTargetURL(t *testing.T) {
	var got atomic.Pointer[string]
	base := startServer(t, func(_ context.Context, raw string) (json.RawMessage, error) {
		got.Store(&raw)
		return json.RawMessage(`{"title":"t"}`), nil
	})
	c := NewClient(nodeList{hostOf(base)}, nil)
	target := "https://example.com/a b?x=1&y=2#frag"
	res, err := c.Scrap(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != `{"title":"t"}` {
		t.Errorf("got %s, want the raw scrap object", res)
	}
	if p := got.Load(); p == nil || *p != target {
		t.Errorf("server saw url %v, want %q intact", p, target)
	}
}

func TestClientFailover(t *testing.T) {
	var okCalls, badCalls atomic.Int64
	good := startServer(t, func(context.Context, string) (json.RawMessage, error) {
		okCalls.Add(1)
		return json.RawMessage(`{"title":"ok"}`), nil
	})
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		badCalls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadHost := hostOf(dead.URL)
	dead.Close()

	c := NewClient(nodeList{deadHost, hostOf(unavailable.URL), hostOf(good)}, nil)
	res, err := c.Scrap(context.Background(), "https://example.com/")
	if err != nil || string(res) != `{"title":"ok"}` {
		t.Fatalf("got %s, %v; want the third node's answer", res, err)
	}
	if badCalls.Load() != 1 || okCalls.Load() != 1 {
		t.Errorf("calls: 503 node %d, good node %d; want 1 and 1", badCalls.Load(), okCalls.Load())
	}

	c = NewClient(nodeList{deadHost}, nil)
	_, err = c.Scrap(context.Background(), "https://example.com/")
	var api *httpapi.Error
	if !errors.As(err, &api) || api.Name != "unavailable" {
		t.Errorf("all nodes down: got %v, want unavailable", err)
	}
	_, err = NewClient(nodeList{}, nil).Scrap(context.Background(), "https://example.com/")
	if !errors.Is(err, ErrNoScrapNodes) {
		t.Errorf("no nodes: got %v, want ErrNoScrapNodes", err)
	}
}

func TestClientReturnsFinalErrorsWithoutRetrying(t *testing.T) {
	for _, e := range []*httpapi.Error{ErrBlockedAddress, ErrInvalidURL, ErrNotHTML, ErrUpstreamStatus, ErrTimeout} {
		var first, second atomic.Int64
		a := startServer(t, func(context.Context, string) (json.RawMessage, error) { first.Add(1); return nil, e })
		b := startServer(t, func(context.Context, string) (json.RawMessage, error) {
			second.Add(1)
			return json.RawMessage(`{}`), nil
		})
		_, err := NewClient(nodeList{hostOf(a), hostOf(b)}, nil).Scrap(context.Background(), "http://10.0.0.1/")
		var api *httpapi.Error
		if !errors.As(err, &api) || api.Name != e.Name || api.Status != e.Status {
			t.Errorf("%s: got %v, want the typed error with status %d", e.Name, err, e.Status)
		}
		if first.Load() != 1 || second.Load() != 0 {
			t.Errorf("%s: calls %d/%d, want 1/0 (no retry on a final answer)", e.Name, first.Load(), second.Load())
		}
	}
}
