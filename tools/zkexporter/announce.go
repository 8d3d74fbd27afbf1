package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// target is an exporter to announce: its ZooKeeper service directory name and its address.
type target struct{ service, addr string }

// parseTargets reads --announce: comma separated service=host:port.
func parseTargets(s string) ([]target, error) {
	var out []target
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		svc, addr, ok := strings.Cut(item, "=")
		if !ok || svc == "" || strings.Contains(svc, "/") {
			return nil, fmt.Errorf("--announce %q: want service=host:port", item)
		}
		if _, err := discovery.ParseEndpoint(addr); err != nil {
			return nil, fmt.Errorf("--announce %q: %w", item, err)
		}
		out = append(out, target{service: svc, addr: addr})
	}
	return out, nil
}

// announcer keeps a serverset node for one exporter under R/<service>/nodes while the exporter
// answers HTTP, so Prometheus discovers it the way it discovers our daemons (docs/monitoring.md).
// An exporter that stops answering for failLimit checks in a row loses its node: its target
// leaves Prometheus, and the ServiceInstancesLow-style count of its job drops.
type announcer struct {
	t        target
	conn     *discovery.Conn
	layout   discovery.Layout
	client   *http.Client
	interval time.Duration
	log      *slog.Logger

	fails int
	reg   *discovery.Registration
}

const failLimit = 3

// run checks the exporter every interval until ctx ends, then removes its node.
func (a *announcer) run(ctx context.Context) {
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		a.check(ctx)
		select {
		case <-ctx.Done():
			a.withdraw()
			return
		case <-t.C:
		}
	}
}

func (a *announcer) check(ctx context.Context) {
	if err := a.probe(ctx); err != nil {
		a.fails++
		if a.fails >= failLimit && a.reg != nil {
			a.log.Warn("exporter not answering; withdrawn", "service", a.t.service, "addr", a.t.addr, "err", err)
			a.withdraw()
		}
		return
	}
	a.fails = 0
	if a.reg == nil {
		data, err := discovery.NewServerSet(a.t.addr, 0)
		if err != nil {
			a.log.Error("announcing exporter", "service", a.t.service, "err", err)
			return
		}
		a.log.Info("exporter announced", "service", a.t.service, "addr", a.t.addr)
		a.reg = a.conn.Register(a.layout.Nodes(a.t.service), a.t.addr, data)
	}
}

func (a *announcer) withdraw() {
	if a.reg == nil {
		return
	}
	if err := a.reg.Close(); err != nil {
		a.log.Warn("zk deregister failed", "service", a.t.service, "err", err)
	}
	a.reg = nil
}

// probe asks the exporter for its landing page, which costs it nothing (its /metrics would
// make it query the server it exports).
func (a *announcer) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.interval)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.t.addr+"/", nil)
	if err != nil {
		return fmt.Errorf("probing %s: %w", a.t.addr, err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w", a.t.addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("probing %s: status %d", a.t.addr, resp.StatusCode)
	}
	return nil
}
