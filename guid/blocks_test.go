package guid

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// idServer answers /api/v1/guid like guidd, from a counter, and counts requests and ids issued.
type idServer struct {
	srv      *httptest.Server
	next     atomic.Uint64
	requests atomic.Int64
}

func newIDServer(t *testing.T) *idServer {
	s := &idServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		n := 1
		if c := r.URL.Query().Get("count"); c != "" {
			n, _ = strconv.Atoi(c)
		}
		if n == 1 && r.URL.Query().Get("count") == "" {
			fmt.Fprintf(w, `{"guid":%d,"guid_str":"%d"}`, s.next.Add(1), s.next.Load())
			return
		}
		strs := make([]string, n)
		for i := range strs {
			strs[i] = `"` + strconv.FormatUint(s.next.Add(1), 10) + `"`
		}
		fmt.Fprintf(w, `{"guids":[%s]}`, strings.Join(strs, ","))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

type fixedNodes []string

func (f fixedNodes) Candidates() []string { return f }

func (s *idServer) client(block int, maxAge time.Duration) *Client {
	return NewClient(fixedNodes{strings.TrimPrefix(s.srv.URL, "http://")}, ClientOptions{Block: block, MaxAge: maxAge})
}

// TestBlocksShareRequestsAndNeverRepeat: concurrent calls share batch requests, and no id is
// handed out twice.
func TestBlocksShareRequestsAndNeverRepeat(t *testing.T) {
	s := newIDServer(t)
	c := s.client(64, time.Second)
	const n = 500
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			id, err := c.Next(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[id] {
				t.Errorf("id %d handed out twice", id)
			}
			seen[id] = true
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("got %d distinct ids, want %d", len(seen), n)
	}
	if r := s.requests.Load(); r >= n/4 {
		t.Errorf("%d requests for %d concurrent ids, want fewer than %d", r, n, n/4)
	}
}

// TestBlocksDropStaleSpares: a spare id older than MaxAge is never handed out; a fresh one is.
func TestBlocksDropStaleSpares(t *testing.T) {
	s := newIDServer(t)
	c := s.client(8, 5*time.Millisecond)
	var clock atomic.Int64
	base := time.Now()
	c.now = func() time.Time { return base.Add(time.Duration(clock.Load())) }
	ctx := context.Background()
	next := func() uint64 {
		t.Helper()
		id, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := next() // one waiter, no spares yet: 1 id
	b := next() // asks for one spare too: 2 ids
	if got := s.next.Load(); got != 3 || a != 1 || b != 2 {
		t.Fatalf("ids %d, %d with %d issued; want 1, 2 with 3 issued", a, b, got)
	}
	if id := next(); id != 3 { // the fresh spare
		t.Errorf("third id = %d, want the spare 3", id)
	}
	reqs := s.requests.Load()
	// Fetches again, with a spare: the last id issued.
	next()
	spare := s.next.Load()
	clock.Add(int64(6 * time.Millisecond))
	if id := next(); id == spare {
		t.Errorf("a spare older than MaxAge was handed out (id %d)", id)
	}
	if r := s.requests.Load(); r != reqs+2 {
		t.Errorf("requests after a stale spare = %d, want %d", r, reqs+2)
	}
}
