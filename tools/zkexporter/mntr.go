package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// mntrCollector reads ZooKeeper's mntr four-letter word from every server at scrape time and
// exports each numeric figure as zookeeper_<name>{server}, with zk_ taken off the name:
// zk_num_alive_connections becomes zookeeper_num_alive_connections. zookeeper_up{server} is 1
// when the server answered, zookeeper_server_state{server,state} and zookeeper_info{server,version}
// carry the two text figures. The server must allow mntr (4lw.commands.whitelist).
//
// Debian's ZooKeeper 3.8 jar leaves out the Prometheus metrics provider, so mntr it is.
type mntrCollector struct {
	servers []string
	timeout time.Duration
	dial    func(ctx context.Context, addr string) (net.Conn, error)
}

var (
	descUp    = prometheus.NewDesc("zookeeper_up", "1 when the server answered mntr, else 0.", []string{"server"}, nil)
	descState = prometheus.NewDesc("zookeeper_server_state", "The server's mode (standalone, leader, follower, observer).", []string{"server", "state"}, nil)
	descInfo  = prometheus.NewDesc("zookeeper_info", "The server's version.", []string{"server", "version"}, nil)
)

// Describe sends nothing: the metric names are those mntr reports, known only at scrape time,
// which makes this an unchecked collector.
func (c *mntrCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads every server in parallel, each bounded by the timeout.
func (c *mntrCollector) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, s := range c.servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			figures, err := c.read(ctx, s)
			up := 1.0
			if err != nil {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, s)
			for _, m := range figures.metrics(s) {
				ch <- m
			}
		})
	}
	wg.Wait()
}

func (c *mntrCollector) read(ctx context.Context, server string) (mntr, error) {
	conn, err := c.dial(ctx, server)
	if err != nil {
		return mntr{}, fmt.Errorf("dialing %s: %w", server, err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	if _, err := io.WriteString(conn, "mntr"); err != nil {
		return mntr{}, fmt.Errorf("sending mntr to %s: %w", server, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	if err != nil {
		return mntr{}, fmt.Errorf("reading mntr from %s: %w", server, err)
	}
	m := parseMntr(string(b))
	if len(m.values) == 0 && m.state == "" {
		// A server that does not allow mntr answers "mntr is not executed because it is not in the whitelist."
		return mntr{}, fmt.Errorf("mntr from %s: no figures in %q", server, strings.TrimSpace(string(b)))
	}
	return m, nil
}

// mntr is one server's answer.
type mntr struct {
	values         map[string]float64 // metric name (zookeeper_...) → value
	state, version string
}

// reserved are the names this collector gives its own series, with other labels.
var reserved = map[string]bool{"zookeeper_up": true, "zookeeper_server_state": true, "zookeeper_info": true}

var badNameChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// parseMntr reads mntr's "zk_name<TAB>value" lines. Lines that are not a name, a tab and a number
// are skipped, except the two text figures, zk_server_state and zk_version.
func parseMntr(s string) mntr {
	m := mntr{values: map[string]float64{}}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "\t")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			continue
		}
		switch key {
		case "zk_server_state": // label values must be valid UTF-8, or the collector would panic
			m.state = strings.ToValidUTF8(val, "?")
			continue
		case "zk_version":
			m.version = strings.ToValidUTF8(val, "?")
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		name := "zookeeper_" + badNameChars.ReplaceAllString(strings.TrimPrefix(key, "zk_"), "_")
		if !reserved[name] {
			m.values[name] = v
		}
	}
	return m
}

// metrics turns the figures into constant metrics of server.
func (m mntr) metrics(server string) []prometheus.Metric {
	var out []prometheus.Metric
	for name, v := range m.values {
		d := prometheus.NewDesc(name, "ZooKeeper mntr figure "+name+".", []string{"server"}, nil)
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.UntypedValue, v, server))
	}
	if m.state != "" {
		out = append(out, prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, server, m.state))
	}
	if m.version != "" {
		out = append(out, prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, server, m.version))
	}
	return out
}
