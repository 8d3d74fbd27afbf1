package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/the-red/zkpost/internal/launch/servers"
)

// Cluster is a running (or startable) topology supervised by this process.
type Cluster struct {
	cfg    Config
	nodes  []*proc
	byName map[string]*proc

	ctx      context.Context // ends when the cluster is shut down; bounds restarts
	cancel   context.CancelFunc
	shutting atomic.Bool

	stateMu sync.Mutex
	zkMu    sync.Mutex
	zk      *zkClient
}

// New prepares a cluster from cfg without starting anything. It fails when a required
// executable is missing; an Optional node whose executable is missing is left out.
func New(cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, byName: map[string]*proc{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, n := range Topology {
		if slices.Contains(cfg.Skip, n.Name) {
			continue
		}
		p := &proc{c: c, node: n, log: c.LogPath(n.Name)}
		c.nodes = append(c.nodes, p)
		c.byName[n.Name] = p
	}
	var missing []error
	kept := c.nodes[:0]
	for _, p := range c.nodes {
		s, err := c.spec(p.node)
		switch {
		case err == nil:
			p.spec = s
			kept = append(kept, p)
		case servers.IsMissing(err) && p.node.Optional:
			cfg.Log.Info("optional node left out", "node", p.node.Name, "reason", err)
			delete(c.byName, p.node.Name)
		default:
			missing = append(missing, err)
		}
	}
	c.nodes = kept
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	return c, nil
}

// Config returns the cluster's configuration with defaults filled in.
func (c *Cluster) Config() Config { return c.cfg }

// Nodes returns the names of the cluster's nodes in start order.
func (c *Cluster) Nodes() []string {
	out := make([]string, len(c.nodes))
	for i, p := range c.nodes {
		out[i] = p.node.Name
	}
	return out
}

// Node returns the topology entry of a node.
func (c *Cluster) Node(name string) (Node, bool) {
	p, ok := c.byName[name]
	if !ok {
		return Node{}, false
	}
	return p.node, true
}

func (c *Cluster) port(name string) int {
	if p, ok := c.cfg.Ports[name]; ok {
		return p
	}
	for _, n := range Topology {
		if n.Name == name && n.Port != 0 {
			return n.Port + c.cfg.PortOffset
		}
	}
	return 0
}

func (c *Cluster) addr(name string) string { return hostPort(c.port(name)) }

// Port returns the port of a node.
func (c *Cluster) Port(name string) int { return c.port(name) }

// Addr returns "127.0.0.1:<port>" of a node.
func (c *Cluster) Addr(name string) string { return c.addr(name) }

// ZKAddr returns ZooKeeper's host:port.
func (c *Cluster) ZKAddr() string { return c.addr("zookeeper") }

// LogPath returns the log file of a node.
func (c *Cluster) LogPath(name string) string { return filepath.Join(c.cfg.Dir, "logs", name+".log") }

func (c *Cluster) dataDir(name string) string { return filepath.Join(c.cfg.Dir, "data", name) }

func (c *Cluster) stopping() bool { return c.shutting.Load() }

func (c *Cluster) lookup(name string) (*proc, error) {
	p, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("no node %q; nodes: %v", name, c.Nodes())
	}
	return p, nil
}

// Up starts every node in dependency order, independent nodes in parallel, and returns once all
// are ready, or with the first failure (the nodes started so far keep running: call Down).
func (c *Cluster) Up(ctx context.Context) error {
	for _, d := range []string{filepath.Join(c.cfg.Dir, "logs"), filepath.Join(c.cfg.Dir, "data")} {
		if err := ensureDir(d); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := map[string]chan struct{}{}
	for _, p := range c.nodes {
		ready[p.node.Name] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, p := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.upNode(ctx, p, ready); err != nil {
				cancel(err)
				return
			}
			close(ready[p.node.Name])
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	c.saveState()
	return nil
}

func (c *Cluster) upNode(ctx context.Context, p *proc, ready map[string]chan struct{}) error {
	for _, d := range p.node.Deps {
		ch, ok := ready[d]
		if !ok {
			continue // skipped
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	start := time.Now()
	if err := c.startNode(ctx, p); err != nil {
		return err
	}
	c.cfg.Log.Info("node ready", "node", p.node.Name, "port", c.port(p.node.Name), "pid", p.pid(),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// startNode launches p, waits until it is ready and runs its setup hook.
func (c *Cluster) startNode(ctx context.Context, p *proc) error {
	if err := p.launch(ctx); err != nil {
		return err
	}
	if err := p.awaitReady(ctx, c.cfg.ReadyTimeout); err != nil {
		return err
	}
	if p.spec.setup != nil {
		if err := p.spec.setup(ctx); err != nil {
			return fmt.Errorf("setting up %s: %w; see %s", p.node.Name, err, p.log)
		}
	}
	return nil
}

// Start starts a node that was stopped or killed, and waits until it is ready.
func (c *Cluster) Start(ctx context.Context, name string) error {
	p, err := c.lookup(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.failures = 0
	p.mu.Unlock()
	return c.startNode(ctx, p)
}

// Kill sends SIGKILL to a node; the supervisor does not restart it until Start.
func (c *Cluster) Kill(name string) error {
	p, err := c.lookup(name)
	if err != nil {
		return err
	}
	c.cfg.Log.Info("killing node", "node", name, "pid", p.pid())
	return p.kill()
}

// Stop sends SIGTERM to a node (SIGKILL after a grace period); it is not restarted until Start.
func (c *Cluster) Stop(name string) error {
	p, err := c.lookup(name)
	if err != nil {
		return err
	}
	c.cfg.Log.Info("stopping node", "node", name, "pid", p.pid())
	return p.stop()
}

// Pid returns the process id of a node, 0 when it is not running.
func (c *Cluster) Pid(name string) int {
	if p, ok := c.byName[name]; ok {
		return p.pid()
	}
	return 0
}

// Down stops every node, the most dependent first (each tier in parallel, SIGTERM and then
// SIGKILL after a grace period), and verifies that none is left running.
func (c *Cluster) Down(ctx context.Context) error {
	c.shutting.Store(true)
	defer c.cancel()
	var errs []error
	for _, tier := range c.tiers() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range tier {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.stop(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	c.closeZK()
	var left []string
	for _, p := range c.nodes {
		if p.running() {
			left = append(left, fmt.Sprintf("%s (pid %d)", p.node.Name, p.pid()))
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("still running after down: %v", left))
	}
	c.saveState()
	return errors.Join(errs...)
}

// tiers groups the nodes by dependency depth, deepest first: the order to stop them in.
func (c *Cluster) tiers() [][]*proc {
	depth := map[string]int{}
	var depthOf func(n Node) int
	depthOf = func(n Node) int {
		if d, ok := depth[n.Name]; ok {
			return d
		}
		d := 0
		for _, dep := range n.Deps {
			if p, ok := c.byName[dep]; ok {
				d = max(d, depthOf(p.node)+1)
			}
		}
		depth[n.Name] = d
		return d
	}
	byDepth := map[int][]*proc{}
	for _, p := range c.nodes {
		d := depthOf(p.node)
		// ZooKeeper goes last: our daemons deregister from it as they stop.
		if p.node.Program == ProgZooKeeper {
			d = -1
		}
		byDepth[d] = append(byDepth[d], p)
	}
	var keys []int
	for k := range byDepth {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(keys)))
	out := make([][]*proc, 0, len(keys))
	for _, k := range keys {
		out = append(out, byDepth[k])
	}
	return out
}
