package discovery

import (
	"sort"
	"sync/atomic"
)

// Balancer spreads calls over the live instances of a service by round robin, from the snapshot
// of a children watcher on the service's nodes directory: no ZooKeeper call on the request path.
type Balancer struct {
	w    *Watcher
	next atomic.Uint64
}

// NewBalancer follows the instances registered under dir (Layout.Nodes(service)).
func (c *Conn) NewBalancer(dir string) *Balancer {
	return &Balancer{w: c.WatchChildren(dir, WatchOptions{})}
}

// Candidates returns every known instance (host:port), rotated so successive calls start at
// successive instances: callers try the first and fall back to the next on error. It returns the
// last known instances while ZooKeeper is unreachable.
func (b *Balancer) Candidates() []string {
	names := b.w.Current().Names()
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	start := int(b.next.Add(1) % uint64(len(names)))
	return append(names[start:], names[:start]...)
}

// Watcher returns the underlying watcher (for readiness and tests).
func (b *Balancer) Watcher() *Watcher { return b.w }

// Stop ends the watch.
func (b *Balancer) Stop() { b.w.Stop() }
