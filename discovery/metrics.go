package discovery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exposes the connection's ZooKeeper state on reg, under the same names in every
// daemon:
//
//   - zk_session_connected: 1 while the client holds a live session, else 0;
//   - zk_sessions_established_total: new session ids (the first one, and one after each expiry:
//     every one of them made Register re-create its nodes);
//   - zk_disconnects_total: losses of a live session (disconnection or expiry);
//   - zk_watch_snapshots_total{path}: distinct snapshots published by the watchers of path;
//   - zk_watch_snapshot_age_seconds{path}: time since the watchers of path last read it. It stays
//     below the resync interval (30 s by default) while ZooKeeper answers and grows while it does
//     not, when readers serve their last snapshot.
//
// Everything is read from memory at scrape time: a scrape never calls ZooKeeper.
func (c *Conn) RegisterMetrics(reg prometheus.Registerer) error {
	return reg.Register(&connCollector{c: c, now: time.Now})
}

var (
	descConnected = prometheus.NewDesc("zk_session_connected",
		"1 while connected to ZooKeeper with a live session, else 0.", nil, nil)
	descSessions = prometheus.NewDesc("zk_sessions_established_total",
		"ZooKeeper sessions established (new session ids: the first, and one after each expiry).", nil, nil)
	descDisconnects = prometheus.NewDesc("zk_disconnects_total",
		"Losses of a live ZooKeeper session (disconnection or expiry).", nil, nil)
	descSnapshots = prometheus.NewDesc("zk_watch_snapshots_total",
		"Distinct snapshots published by the watchers of a ZooKeeper path.", []string{"path"}, nil)
	descAge = prometheus.NewDesc("zk_watch_snapshot_age_seconds",
		"Seconds since the watchers of a ZooKeeper path last read it (the oldest, when several watch it).", []string{"path"}, nil)
)

type connCollector struct {
	c   *Conn
	now func() time.Time
}

func (cc *connCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descSessions, descDisconnects, descSnapshots, descAge} {
		ch <- d
	}
}

func (cc *connCollector) Collect(ch chan<- prometheus.Metric) {
	c := cc.c
	c.mu.Lock()
	connected, sessions, disconnects := c.connected, c.sessions, c.disconnects
	watchers := make([]*Watcher, 0, len(c.watchers))
	for w := range c.watchers {
		watchers = append(watchers, w)
	}
	c.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, boolFloat(connected))
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.CounterValue, float64(sessions))
	ch <- prometheus.MustNewConstMetric(descDisconnects, prometheus.CounterValue, float64(disconnects))
	now := cc.now()
	for p, st := range statsByPath(watchers) {
		ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(st.snapshots), p)
		if st.unread || st.oldest.IsZero() {
			continue // never read: no age to report, and zk_watch_snapshots_total is 0
		}
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, now.Sub(st.oldest).Seconds(), p)
	}
}

// pathStat sums the watchers of one path.
type pathStat struct {
	snapshots uint64
	oldest    time.Time // the stalest read among them
	unread    bool      // one of them has read nothing yet
}

// statsByPath groups watchers by path: several may follow one (a balancer and a readiness check,
// say), and they make one series per path, summing their snapshots and reporting the stalest.
func statsByPath(watchers []*Watcher) map[string]*pathStat {
	byPath := map[string]*pathStat{}
	for _, w := range watchers {
		s := w.Current()
		st := byPath[w.path]
		if st == nil {
			st = &pathStat{}
			byPath[w.path] = st
		}
		st.snapshots += s.Version
		switch {
		case s.Version == 0:
			st.unread = true
		case st.oldest.IsZero() || s.Read.Before(st.oldest):
			st.oldest = s.Read
		}
	}
	return byPath
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
