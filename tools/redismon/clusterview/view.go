package clusterview

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/the-red/zkpost/discovery"
)

const (
	maxChanges = 50 // changes the view remembers
	maxViewers = 64 // open event streams per process; beyond, 503
)

// Config tunes the view.
type Config struct {
	// Datacenter is the guid datacenter whose worker leases are shown.
	Datacenter int
	// Scrape is how often each node's /metrics is read (0: 2 s).
	Scrape time.Duration
}

// View follows the cluster in ZooKeeper and the nodes' metrics, and hands every new state to its
// viewers.
type View struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	hc       *http.Client
	watchers []*discovery.Watcher
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	tree    tree
	shape   State // the structural state last built from the tree
	changes []Change
	rates   []NodeRate
	lags    map[string]float64
	current []byte // the latest full state, as JSON
	version uint64
	changed chan struct{} // closed and replaced on every new state

	viewers viewers
}

// New starts watching under layout; Close stops.
func New(conn *discovery.Conn, layout discovery.Layout, cfg Config, log *slog.Logger) *View {
	if cfg.Scrape <= 0 {
		cfg.Scrape = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &View{cfg: cfg, log: log, now: time.Now, hc: &http.Client{Timeout: time.Second}, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), tree: tree{nodes: map[string]discovery.Snapshot{}}, lags: map[string]float64{},
		changed: make(chan struct{}), viewers: newViewers()}
	v.publishLocked()
	for _, svc := range Services {
		v.watch(conn.WatchChildren(layout.Nodes(svc), discovery.WatchOptions{WithData: true,
			OnChange: func(s discovery.Snapshot) { v.update(func(t *tree) { t.nodes[svc] = s }) }}))
	}
	v.watch(conn.WatchChildren(layout.GuidWorkers(cfg.Datacenter), discovery.WatchOptions{WithData: true,
		OnChange: func(s discovery.Snapshot) { v.update(func(t *tree) { t.workers = s }) }}))
	v.watch(conn.WatchChildren(layout.RedismonLeader(), discovery.WatchOptions{WithData: true,
		OnChange: func(s discovery.Snapshot) { v.update(func(t *tree) { t.leader = s }) }}))
	v.watch(conn.WatchChildren(layout.CacheNodes(), discovery.WatchOptions{WithData: true,
		OnChange: func(s discovery.Snapshot) { v.update(func(t *tree) { t.cache = s }) }}))
	v.watch(conn.WatchData(layout.Queue(), discovery.WatchOptions{
		OnChange: func(s discovery.Snapshot) { v.update(func(t *tree) { t.queue = s }) }}))
	v.watch(conn.WatchData(layout.DB(), discovery.WatchOptions{
		OnChange: func(s discovery.Snapshot) { v.update(func(t *tree) { t.db = s }) }}))
	go v.scrapeLoop()
	return v
}

func (v *View) watch(w *discovery.Watcher) { v.watchers = append(v.watchers, w) }

// update applies one watch's snapshot, records what changed and publishes the new state.
func (v *View) update(apply func(*tree)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	apply(&v.tree)
	next := v.tree.build()
	at := v.now()
	for _, what := range diff(v.shape, next) {
		v.changes = append(v.changes, Change{At: at, What: what})
	}
	if n := len(v.changes); n > maxChanges {
		v.changes = append([]Change(nil), v.changes[n-maxChanges:]...)
	}
	v.shape = next
	v.publishLocked()
}

// publishLocked encodes the full state and wakes the viewers.
func (v *View) publishLocked() {
	st := v.shape
	st.Updated = v.now()
	st.Changes = make([]Change, 0, len(v.changes))
	for i := len(v.changes) - 1; i >= 0; i-- {
		st.Changes = append(st.Changes, v.changes[i])
	}
	st.Rates = v.rates
	db := st.DB
	db.Replicas = make([]Replica, len(st.DB.Replicas))
	for i, r := range st.DB.Replicas {
		if lag, ok := v.lags[r.Addr]; ok {
			r.LagSeconds = lag
		}
		db.Replicas[i] = r
	}
	st.DB = db
	b, err := json.Marshal(st)
	if err != nil {
		v.log.Error("encoding the cluster view", "err", err)
		return
	}
	v.current = b
	v.version++
	close(v.changed)
	v.changed = make(chan struct{})
}

// Current returns the latest state as JSON, its version, and a channel closed when a newer one
// exists.
func (v *View) Current() ([]byte, uint64, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.current, v.version, v.changed
}

// State returns the latest state.
func (v *View) State() State {
	b, _, _ := v.Current()
	var st State
	_ = json.Unmarshal(b, &st)
	return st
}

// Close stops the watches and the scraping, and ends the open event streams (until ctx ends).
func (v *View) Close(ctx context.Context) error {
	v.cancel()
	for _, w := range v.watchers {
		w.Stop()
	}
	<-v.done
	return v.viewers.close(ctx)
}
