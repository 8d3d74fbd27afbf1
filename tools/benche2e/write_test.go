package main

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/the-red/zkpost/internal/metrics"
)

// exposition renders reg as a daemon's /metrics does.
func exposition(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestStageLinesFromRealScrapes: the stage histograms of two postsvcds, as client_golang writes
// them, are summed by stage, and a round's p50 and p99 come from what it added between its two
// scrapes only.
func TestStageLinesFromRealScrapes(t *testing.T) {
	newVec := func() (*prometheus.Registry, *prometheus.HistogramVec) {
		reg := prometheus.NewRegistry()
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "postsvc_write_stage_seconds",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)}, []string{"stage"})
		reg.MustRegister(v, prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total"}))
		return reg, v
	}
	regs := make([]*prometheus.Registry, 2)
	vecs := make([]*prometheus.HistogramVec, 2)
	for i := range regs {
		regs[i], vecs[i] = newVec()
	}
	scrape := func() map[string]histogram {
		out := map[string]histogram{}
		for _, reg := range regs {
			fams, err := metrics.ParseText(strings.NewReader(exposition(t, reg)))
			if err != nil {
				t.Fatal(err)
			}
			addStages(out, fams)
		}
		return out
	}
	// Before the round: slow stores that must not count in it.
	for range 50 {
		vecs[0].WithLabelValues("store").Observe(0.5)
	}
	st0 := scrape()
	// The round: 99 fast ids and one slow one, split over the two instances; stores of 3 ms.
	for i := range 100 {
		d := 0.00005
		if i == 99 {
			d = 0.03
		}
		vecs[i%2].WithLabelValues("id").Observe(d)
		vecs[i%2].WithLabelValues("store").Observe(0.003)
	}
	got := stageLines(scrape(), st0)
	want := map[string]float64{
		"stage 1 id p50 ≤ (ms)": 0.1, "stage 1 id p99 ≤ (ms)": 0.1,
		"stage 2 store p50 ≤ (ms)": 3.2, "stage 2 store p99 ≤ (ms)": 3.2,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g < v*0.999 || g > v*1.001 {
			t.Errorf("%s = %v, want %v (all: %v)", k, g, v, got)
		}
	}
	// One more slow id moves the p99 to its bucket (the 100 before it fill the p99 exactly).
	vecs[1].WithLabelValues("id").Observe(0.03)
	vecs[1].WithLabelValues("id").Observe(0.03)
	if g := stageLines(scrape(), st0)["stage 1 id p99 ≤ (ms)"]; g < 51.1 || g > 51.3 {
		t.Errorf("with 3 of 102 ids at 30 ms, p99 ≤ %v ms, want 51.2", g)
	}
}

// FuzzParseMetrics: whatever page the text parser accepts, every histogram read from it has as
// many bounds as counts, ends at +Inf, and yields a quantile without a panic.
func FuzzParseMetrics(f *testing.F) {
	f.Add("# TYPE x histogram\nx_bucket{stage=\"id\",le=\"0.1\"} 3\nx_bucket{stage=\"id\",le=\"+Inf\"} 4\nx_sum{stage=\"id\"} 1\nx_count{stage=\"id\"} 4\n")
	f.Add("# TYPE postsvc_write_stage_seconds histogram\npostsvc_write_stage_seconds_bucket{stage=\"store\",le=\"1\"} 2\npostsvc_write_stage_seconds_count{stage=\"store\"} 5\n")
	f.Add("a_bucket{le=\"1\"} 2\nb 7\n")
	f.Fuzz(func(t *testing.T, page string) {
		fams, err := metrics.ParseText(strings.NewReader(page))
		if err != nil {
			return
		}
		stages := map[string]histogram{}
		addStages(stages, fams)
		for _, fam := range fams {
			for _, m := range fam.GetMetric() {
				if m.GetHistogram() == nil {
					continue
				}
				h := histogramOf(m)
				if len(h.le) != len(h.cum) || !math.IsInf(h.le[len(h.le)-1], 1) {
					t.Fatalf("%s: bounds %v, counts %v", fam.GetName(), h.le, h.cum)
				}
				_ = h.quantile(0.99)
			}
		}
	})
}
