package clusterview

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/the-red/zkpost/internal/metrics"
)

// sample is what one scrape of a node's /metrics found.
type sample struct {
	at       time.Time
	requests float64            // requests answered, every route but metrics
	errors   float64            // the same with a 5xx status
	lags     map[string]float64 // db_replica_lag_seconds by replica (postsvcd only)
	up       bool
}

// scrapeLoop reads every registered node's /metrics each interval and publishes the rates.
func (v *View) scrapeLoop() {
	defer close(v.done)
	t := time.NewTicker(v.cfg.Scrape)
	defer t.Stop()
	prev := map[string]sample{}
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
		}
		prev = v.scrapeOnce(prev)
	}
}

type target struct{ service, addr string }

func (v *View) targets() []target {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []target
	for _, s := range v.shape.Services {
		for _, n := range s.Nodes {
			out = append(out, target{s.Name, n.Addr})
		}
	}
	return out
}

// scrapeOnce scrapes every target in parallel and publishes rates against prev.
func (v *View) scrapeOnce(prev map[string]sample) map[string]sample {
	targets := v.targets()
	got := make([]sample, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Go(func() { got[i] = v.scrape(tg.addr) })
	}
	wg.Wait()
	next := map[string]sample{}
	rates := make([]NodeRate, 0, len(targets))
	lags := map[string]float64{}
	for i, tg := range targets {
		s := got[i]
		r := NodeRate{Service: tg.service, Addr: tg.addr, Up: s.up}
		if p, ok := prev[tg.addr]; ok && s.up && p.up {
			if dt := s.at.Sub(p.at).Seconds(); dt > 0 {
				r.PerSecond = max(s.requests-p.requests, 0) / dt
				r.Errors = max(s.errors-p.errors, 0) / dt
			}
		}
		rates = append(rates, r)
		next[tg.addr] = s
		for addr, lag := range s.lags {
			lags[addr] = max(lags[addr], lag)
		}
	}
	v.mu.Lock()
	v.rates, v.lags = rates, lags
	v.publishLocked()
	v.mu.Unlock()
	return next
}

func (v *View) scrape(addr string) sample {
	s := sample{at: v.now()}
	ctx, cancel := context.WithTimeout(v.ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return s
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s
	}
	families, err := metrics.ParseText(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		v.log.Debug("metrics unreadable", "addr", addr, "err", err)
		return s
	}
	s.up = true
	s.requests, s.errors = requestTotals(families)
	s.lags = replicaLags(families["db_replica_lag_seconds"])
	return s
}

// requestTotals counts the requests answered, over every route but the scrapes' own, and those
// answered 5xx: from the latency histogram's sample counts, which every daemon has (guidd keeps
// no http_requests_total on its hot path), else from http_requests_total.
func requestTotals(fams map[string]*dto.MetricFamily) (requests, errors float64) {
	f := fams["http_request_duration_seconds"]
	count := func(m *dto.Metric) float64 { return float64(m.GetHistogram().GetSampleCount()) }
	if f == nil {
		f = fams["http_requests_total"]
		count = func(m *dto.Metric) float64 { return m.GetCounter().GetValue() }
	}
	if f == nil {
		return 0, 0
	}
	for _, m := range f.GetMetric() {
		if metrics.Label(m, "route") == "metrics" {
			continue
		}
		n := count(m)
		requests += n
		if code, err := strconv.Atoi(metrics.Label(m, "status")); err == nil && code >= 500 {
			errors += n
		}
	}
	return requests, errors
}

func replicaLags(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		if addr := metrics.Label(m, "addr"); addr != "" {
			out[addr] = m.GetGauge().GetValue()
		}
	}
	return out
}
