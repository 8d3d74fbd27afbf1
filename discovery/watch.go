package discovery

import (
	"context"
	"errors"
	"path"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Snapshot is the state of a watched path at one moment.
type Snapshot struct {
	// Version counts the snapshots this watcher published; 0 means nothing was read yet.
	Version uint64
	// Exists tells whether the watched path exists.
	Exists bool
	// Data is the watched node's data (WatchData).
	Data []byte
	// Children maps each child's name to its data (WatchChildren; data only WithData).
	Children map[string][]byte
	// Zxid is the ZooKeeper transaction id of the latest change the snapshot reflects (the
	// path's children or data, and its children's data WithData). Every process that reads the
	// same state gets the same Zxid, and it only grows, so it can version derived state such as
	// a hash ring across processes.
	Zxid int64
	// Read is when the snapshot was read from ZooKeeper.
	Read time.Time
}

// Names returns the children's names.
func (s Snapshot) Names() []string {
	out := make([]string, 0, len(s.Children))
	for n := range s.Children {
		out = append(out, n)
	}
	return out
}

// WatchOptions tune a watcher.
type WatchOptions struct {
	// WithData also reads (and watches) every child's data.
	WithData bool
	// Resync is how often the path is read again even without an event (default 30 s).
	Resync time.Duration
	// OnChange is called, from the watcher's goroutine, with every snapshot that differs from the
	// previous one.
	OnChange func(Snapshot)
}

// Watcher follows one path and publishes full snapshots of it.
type Watcher struct {
	conn     *Conn
	path     string
	children bool
	opts     WatchOptions
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	cur     Snapshot
	updated chan struct{}
}

// WatchChildren follows the children of p (and their data, WithData). It works when p does not
// exist yet, keeps the last snapshot while ZooKeeper is unreachable, and reads a full snapshot
// after every event, so no change between two one-shot watches is missed.
func (c *Conn) WatchChildren(p string, opts WatchOptions) *Watcher {
	return c.watch(p, true, opts)
}

// WatchData follows the data of node p, under the same rules as WatchChildren.
func (c *Conn) WatchData(p string, opts WatchOptions) *Watcher {
	return c.watch(p, false, opts)
}

func (c *Conn) watch(p string, children bool, opts WatchOptions) *Watcher {
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{conn: c, path: p, children: children, opts: opts, cancel: cancel,
		done: make(chan struct{}), updated: make(chan struct{})}
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	go w.loop(ctx)
	return w
}

// Current returns the latest snapshot; its Version is 0 until the first read succeeded.
func (w *Watcher) Current() Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// Wait blocks until a snapshot satisfies cond and returns it.
func (w *Watcher) Wait(ctx context.Context, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		w.mu.Lock()
		cur, ch := w.cur, w.updated
		w.mu.Unlock()
		if cur.Version > 0 && cond(cur) {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return cur, ctx.Err()
		case <-ch:
		}
	}
}

// Stop ends the watch.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
	w.conn.mu.Lock()
	delete(w.conn.watchers, w)
	w.conn.mu.Unlock()
}

func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		changed := w.conn.Changed()
		if _, ok := w.conn.Session(); !ok {
			// Unreachable: keep the last snapshot; calls would only queue until reconnection.
			Pause(ctx, changed, w.opts.Resync)
			continue
		}
		round, stop := context.WithCancel(ctx)
		events := make(chan struct{}, 1)
		snap, err := w.read(round, events)
		if err != nil {
			stop()
			if !errors.Is(err, zk.ErrClosing) {
				w.conn.log.Warn("zk watch read failed", "path", w.path, "err", err)
			}
			Pause(ctx, changed, retryDelay)
			continue
		}
		w.publish(snap)
		t := time.NewTimer(w.opts.Resync)
		select {
		case <-ctx.Done():
		case <-events:
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		stop()
	}
}

// read takes one full snapshot and arms watches that signal events on any change to it.
func (w *Watcher) read(ctx context.Context, events chan<- struct{}) (Snapshot, error) {
	exists, _, ech, err := w.conn.zk.ExistsW(w.path)
	if err != nil {
		return Snapshot{}, err
	}
	forward(ctx, ech, events)
	if !exists {
		return Snapshot{Exists: false, Read: time.Now()}, nil
	}
	if w.children {
		return w.readChildren(ctx, events)
	}
	return w.readData(ctx, events)
}

// readData reads the watched node's data and watches it. A node deleted since ExistsW reads as
// missing (that watch has fired too).
func (w *Watcher) readData(ctx context.Context, events chan<- struct{}) (Snapshot, error) {
	data, stat, dch, err := w.conn.zk.GetW(w.path)
	if errors.Is(err, zk.ErrNoNode) {
		return Snapshot{Exists: false, Read: time.Now()}, nil
	}
	if err != nil {
		return Snapshot{}, err
	}
	forward(ctx, dch, events)
	return Snapshot{Exists: true, Data: data, Zxid: stat.Mzxid, Read: time.Now()}, nil
}

// readChildren reads the watched node's children, and their data WithData, watching each.
func (w *Watcher) readChildren(ctx context.Context, events chan<- struct{}) (Snapshot, error) {
	names, dirStat, cch, err := w.conn.zk.ChildrenW(w.path)
	if errors.Is(err, zk.ErrNoNode) {
		return Snapshot{Exists: false, Read: time.Now()}, nil
	}
	if err != nil {
		return Snapshot{}, err
	}
	forward(ctx, cch, events)
	kids := make(map[string][]byte, len(names))
	zxid := dirStat.Pzxid
	for _, n := range names {
		kids[n] = nil
		if !w.opts.WithData {
			continue
		}
		data, stat, dch, err := w.conn.zk.GetW(path.Join(w.path, n))
		if errors.Is(err, zk.ErrNoNode) {
			delete(kids, n) // went away meanwhile; the children watch has fired too
			continue
		}
		if err != nil {
			return Snapshot{}, err
		}
		forward(ctx, dch, events)
		kids[n] = data
		zxid = max(zxid, stat.Mzxid)
	}
	return Snapshot{Exists: true, Children: kids, Zxid: zxid, Read: time.Now()}, nil
}

// forward signals events once when the one-shot watch ch fires, until ctx ends.
func forward(ctx context.Context, ch <-chan zk.Event, events chan<- struct{}) {
	go func() {
		select {
		case <-ctx.Done():
		case <-ch:
			select {
			case events <- struct{}{}:
			default:
			}
		}
	}()
}

func (w *Watcher) publish(s Snapshot) {
	w.mu.Lock()
	same := w.cur.Version > 0 && equalSnapshots(w.cur, s)
	s.Version = w.cur.Version
	if !same {
		s.Version++
	}
	w.cur = s
	if !same {
		close(w.updated)
		w.updated = make(chan struct{})
	}
	w.mu.Unlock()
	if !same && w.opts.OnChange != nil {
		w.opts.OnChange(s)
	}
}

func equalSnapshots(a, b Snapshot) bool {
	if a.Exists != b.Exists || a.Zxid != b.Zxid || string(a.Data) != string(b.Data) || len(a.Children) != len(b.Children) {
		return false
	}
	for k, v := range a.Children {
		bv, ok := b.Children[k]
		if !ok || string(v) != string(bv) {
			return false
		}
	}
	return true
}
