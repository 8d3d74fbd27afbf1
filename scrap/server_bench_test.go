package scrap

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchServer benchmarks scrapd over HTTP against a local fixture page. cold gives every request a
// URL of its own (a full fetch: dial check, request, body, extraction); warm asks for one URL, so
// all but the first request are cache hits. It reports requests/s and the p99 latency.
func benchServer(b *testing.B, cold bool) {
	fx := newFixture(b, htmlHandler(ogPage))
	cfg := testConfig()
	cfg.CacheSize = 1 << 20
	s := newTestService(b, cfg, Deps{})
	base := startServer(b, s.Scrap)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			target := fx.URL + "/page"
			if cold {
				target = fmt.Sprintf("%s/page/%d", fx.URL, seq.Add(1))
			}
			t0 := time.Now()
			resp, err := client.Get(base + "/api/v1/scrap?url=" + url.QueryEscape(target))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkServerCold(b *testing.B) { benchServer(b, true) }
func BenchmarkServerWarm(b *testing.B) { benchServer(b, false) }
