package postsvc_test

// Benchmarks against real servers (never asserted). Run:
//
//	go test -run '^$' -bench . -benchtime 5s ./postsvc
//
// BenchmarkWrite/writeback is postsvcd's write path over HTTP (id from a counter, cache shard,
// durable enqueue on a queue Redis with appendfsync always); BenchmarkWrite/writeback_url adds a
// link whose preview is in the URL cache. They measure postsvcd's own cost and compare with
// nothing: there is no guidd call, no queue replica and no writebackd draining the queue, so a
// write-through baseline here would not do the same work (the comparison of the two write modes
// is `make bench-e2e`, on the whole cluster, drain included: docs/benchmarks.md).
// BenchmarkListWarm reads a page of 10 from a warm cache; BenchmarkRedisRoundTrip is the
// ceiling of one Redis round trip. BenchmarkStack repeats the write and list measurements through
// the postsvcd binary on the full stack (real guidd, scrapd, writebackd, ZooKeeper, MariaDB). Each
// reports p50/p99 latency beside ns/op (which, run in
// parallel, is the inverse of throughput).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/internal/metrics"
	"github.com/the-red/zkpost/internal/testenv/itest"
	"github.com/the-red/zkpost/post"
	postqueue "github.com/the-red/zkpost/post/queue"
	"github.com/the-red/zkpost/postsvc"
)

// latencies collects per-op durations from parallel goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	b.Helper()
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	q := func(p float64) float64 { return float64(l.all[int(p*float64(len(l.all)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// runParallel runs op in parallel, timing each call; op returns false on failure.
func runParallel(b *testing.B, op func(i int64) bool) {
	b.Helper()
	var lat latencies
	var n, fails atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS clients: enough concurrency to measure throughput
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if !op(n.Add(1)) {
				fails.Add(1)
			}
			mine = append(mine, time.Since(start))
		}
		lat.add(mine)
	})
	b.StopTimer()
	lat.report(b)
	if f := fails.Load(); f > 0 {
		b.Fatalf("failed operations: got %d, want 0", f)
	}
}

type counterIDs struct{ n atomic.Uint64 }

func (c *counterIDs) Next(context.Context) (uint64, error) { return 1<<60 + c.n.Add(1), nil }

type instantPreview struct{}

func (instantPreview) Scrap(context.Context, string) (json.RawMessage, error) {
	return json.RawMessage(`{"title":"t"}`), nil
}

type noStore struct{}

func (noStore) List(context.Context, uint64, uint64, int) ([]post.Post, error) { return nil, nil }
func (noStore) Get(context.Context, uint64) (post.Post, error) {
	return post.Post{}, postsvc.ErrNotFound
}

// startBenchServer runs postsvc over one real cache shard and a real queue Redis.
func startBenchServer(b *testing.B, store postsvc.Store) string {
	b.Helper()
	cache := itest.StartRedis(b, itest.RedisOptions{})
	queue := itest.StartRedis(b, itest.RedisOptions{AOF: true})
	enq := postqueue.NewEnqueuer(postqueue.Config{Namespace: "bench"}, quiet)
	b.Cleanup(func() { enq.Close() })
	enq.SetEndpoints(discovery.QueueEndpoints{Primary: queue.Addr()})
	cfg := postsvc.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Settle = time.Millisecond // no ring changes here: lists may be declared complete at once
	srv, err := postsvc.New(cfg, postsvc.Deps{IDs: &counterIDs{}, Previewer: instantPreview{}, Queue: enq, Store: store,
		Log: quiet, Registry: metrics.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	srv.Cache().Update(1, []discovery.CacheNode{{Name: "redis1", Addr: cache.Addr(), Status: discovery.StatusAlive}})
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	b.Cleanup(func() { cancel(); srv.Shutdown(context.Background()) })
	return srv.Addr().String()
}

var benchClient = &fasthttp.Client{MaxConnsPerHost: 512, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}

func postJSON(url string, body []byte, want int) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	return benchClient.Do(req, resp) == nil && resp.StatusCode() == want
}

func get(url string) bool {
	code, _, err := benchClient.Get(nil, url)
	return err == nil && code == 200
}

func BenchmarkWrite(b *testing.B) {
	b.Run("writeback", func(b *testing.B) {
		addr := startBenchServer(b, noStore{})
		runParallel(b, func(i int64) bool {
			return postJSON("http://"+addr+"/api/v1/posts", fmt.Appendf(nil, `{"user_id":%d,"contents":"benchmark post"}`, 1+i%1000), 201)
		})
	})
	b.Run("writeback_url", func(b *testing.B) {
		addr := startBenchServer(b, noStore{})
		runParallel(b, func(i int64) bool {
			return postJSON("http://"+addr+"/api/v1/posts",
				fmt.Appendf(nil, `{"user_id":%d,"contents":"benchmark post","url":"https://example.com/%d"}`, 1+i%1000, i%50), 201)
		})
	})
}

func BenchmarkListWarm(b *testing.B) {
	addr := startBenchServer(b, noStore{})
	for u := range 100 {
		for i := range 12 {
			if !postJSON("http://"+addr+"/api/v1/posts", fmt.Appendf(nil, `{"user_id":%d,"contents":"post %d"}`, u+1, i), 201) {
				b.Fatal("seeding failed")
			}
		}
	}
	// noStore holds nothing older: one merge per user makes each list complete (X = 0).
	for u := range 100 {
		get(fmt.Sprintf("http://%s/api/v1/posts/%d?limit=10", addr, u+1))
	}
	runParallel(b, func(i int64) bool {
		return get(fmt.Sprintf("http://%s/api/v1/posts/%d?limit=10", addr, 1+i%100))
	})
}

func BenchmarkRedisRoundTrip(b *testing.B) {
	r := itest.StartRedis(b, itest.RedisOptions{})
	c := r.Client(b)
	ctx := context.Background()
	runParallel(b, func(i int64) bool { return c.Ping(ctx).Err() == nil })
}

func BenchmarkStack(b *testing.B) {
	s := newStack(b)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><head><meta property="og:title" content="T"></head></html>`)
	}))
	b.Cleanup(site.Close)
	write := func(withURL bool) func(i int64) bool {
		return func(i int64) bool {
			body := fmt.Appendf(nil, `{"user_id":%d,"contents":"benchmark post"}`, 1+i%1000)
			if withURL {
				body = fmt.Appendf(nil, `{"user_id":%d,"contents":"benchmark post","url":"%s/%d"}`, 1+i%1000, site.URL, i%50)
			}
			return postJSON(s.Base(int(i))+"/api/v1/posts", body, 201)
		}
	}
	b.Run("write", func(b *testing.B) { runParallel(b, write(false)) })
	b.Run("write_url", func(b *testing.B) { runParallel(b, write(true)) })
	b.Run("list_warm", func(b *testing.B) {
		for u := range 100 {
			get(fmt.Sprintf("%s/api/v1/posts/%d?limit=10", s.Base(u), u+1))
		}
		runParallel(b, func(i int64) bool {
			return get(fmt.Sprintf("%s/api/v1/posts/%d?limit=10", s.Base(int(i)), 1+i%100))
		})
	})
}
