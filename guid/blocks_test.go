package guid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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

// clientClock is a client's clock that moves only when told.
type clientClock struct{ ns atomic.Int64 }

func (f *clientClock) install(c *Client) {
	base := time.Now()
	c.now = func() time.Time { return base.Add(time.Duration(f.ns.Load())) }
}

func (f *clientClock) advance(d time.Duration) { f.ns.Add(int64(d)) }

// TestBlocksSparesFollowTheRate: calls one after the other, 100 µs apart (10,000/s), with a MaxAge
// of 5 ms, are served by requests of about rate × MaxAge × spareShare = 37 ids each, rather than
// one request per one or two calls.
func TestBlocksSparesFollowTheRate(t *testing.T) {
	s := newIDServer(t)
	c := s.client(64, 5*time.Millisecond)
	var clock clientClock
	clock.install(c)
	const calls = 400
	for range calls {
		if _, err := c.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		clock.advance(100 * time.Microsecond)
	}
	// Two requests learn the rate; then each serves 1 + 37 calls: about 12 in all.
	if r := s.requests.Load(); r > 16 {
		t.Errorf("%d requests for %d calls at a steady rate, want at most 16", r, calls)
	}
	if issued := s.next.Load(); issued > calls+40 {
		t.Errorf("%d ids issued for %d calls, want at most %d: spares are outliving MaxAge", issued, calls, calls+40)
	}
}

// TestBlocksDropStaleSpares: a fresh spare id is handed out without a request; one older than
// MaxAge is never handed out.
func TestBlocksDropStaleSpares(t *testing.T) {
	s := newIDServer(t)
	c := s.client(8, 5*time.Millisecond)
	var clock clientClock
	clock.install(c)
	ctx := context.Background()
	next := func() uint64 {
		t.Helper()
		clock.advance(100 * time.Microsecond)
		id, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// The first request knows no rate: id 1 alone. The second has seen one id in 100 µs
	// (10,000/s: 37 spares, capped at Block = 8): ids 2 to 10, 3 to 10 spare.
	for want := uint64(1); want <= 6; want++ {
		if id := next(); id != want {
			t.Fatalf("call %d got id %d, want %d", want, id, want)
		}
	}
	if r, issued := s.requests.Load(), s.next.Load(); r != 2 || issued != 10 {
		t.Fatalf("after 6 calls: %d requests, %d ids issued; want 2 and 10", r, issued)
	}
	clock.advance(6 * time.Millisecond) // spares 7 to 10 are now older than MaxAge
	if id := next(); id <= 10 {
		t.Errorf("a spare older than MaxAge was handed out (id %d)", id)
	}
	if r := s.requests.Load(); r != 3 {
		t.Errorf("requests after the spares went stale = %d, want 3", r)
	}
}

// FuzzDecodeIDs checks the batch scanner against encoding/json: whatever it accepts, the
// decoder reads as the same ids (TestScanBatchReadsWhatGuiddWrites: it accepts guidd's batches).
func FuzzDecodeIDs(f *testing.F) {
	for _, s := range []string{`{"guids":["1","2"]}`, `{"guids":["1","2"]}` + "\n", `{"guids":[ "1","2"]}`,
		`{"guids":["1","2","3"]}`, `{"guids":["01","9223372036854775807"]}`, `{"guids":["1","9223372036854775808"]}`,
		`{"guids":["1",2]}`, `{"guids":["1","2"],"x":1}`, `{"guids":["1","\u0032"]}`, `{"guids":["1"`} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, n uint8) {
		ids, ok := scanBatch(body, int(n))
		if !ok {
			return
		}
		var r struct {
			GUIDs []string `json:"guids"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("scanBatch accepted %q, encoding/json refuses it: %v", body, err)
		}
		if len(r.GUIDs) != len(ids) || len(ids) != int(n) {
			t.Fatalf("scanBatch(%q, %d) = %v; encoding/json reads %q", body, n, ids, r.GUIDs)
		}
		for i, s := range r.GUIDs {
			if want, err := ParseID(s); err != nil || want != ids[i] {
				t.Fatalf("scanBatch(%q) id %d = %d; encoding/json reads %q (%v)", body, i, ids[i], s, err)
			}
		}
	})
}

func TestScanBatchReadsWhatGuiddWrites(t *testing.T) {
	for _, ids := range [][]uint64{{0, 1}, {7, 1<<63 - 1, 42}, make([]uint64, MaxBatch)} {
		got, ok := scanBatch(appendBatch(nil, ids), len(ids))
		if !ok || !slices.Equal(got, ids) {
			t.Fatalf("scanBatch(appendBatch(%d ids)) = %d ids, %v", len(ids), len(got), ok)
		}
		if _, ok := scanBatch(appendBatch(nil, ids), len(ids)+1); ok {
			t.Fatalf("scanBatch took %d ids for %d", len(ids), len(ids)+1)
		}
		if _, ok := scanBatch(appendBatch(nil, ids), len(ids)-1); ok {
			t.Fatalf("scanBatch took %d ids for %d", len(ids), len(ids)-1)
		}
	}
	// Spelled otherwise, the same JSON still decodes (through encoding/json).
	if ids, err := decodeIDs([]byte(`{ "guids" : [ "5", "6" ] }`), 2); err != nil || !slices.Equal(ids, []uint64{5, 6}) {
		t.Fatalf("decodeIDs of a spaced batch = %v, %v", ids, err)
	}
}
