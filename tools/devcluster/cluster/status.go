package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/the-red/zkpost/discovery"
)

// NodeStatus is one node as `devcluster status` shows it.
type NodeStatus struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Pid      int    `json:"pid"`
	Port     int    `json:"port"`
	Running  bool   `json:"running"`
	Ready    bool   `json:"ready"`
	Wanted   bool   `json:"wanted"` // false after stop or kill: not restarted
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit,omitempty"`
	// ZK says what ZooKeeper lists for the node: "registered", "not registered", "ALIVE",
	// "DOWN", "primary", "secondary", "leader", ... ("" when nothing applies).
	ZK  string `json:"zk"`
	Log string `json:"log"`
}

// Status probes every node and reads what ZooKeeper lists for it.
func (c *Cluster) Status(ctx context.Context) []NodeStatus {
	tree := c.readTree(ctx)
	out := make([]NodeStatus, len(c.nodes))
	var wg sync.WaitGroup
	for i, p := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.nodeStatus(ctx, p, tree)
		}()
	}
	wg.Wait()
	return out
}

func (c *Cluster) nodeStatus(ctx context.Context, p *proc, tree zkTree) NodeStatus {
	p.mu.Lock()
	st := NodeStatus{
		Name: p.node.Name, Kind: p.node.Kind.String(), Port: c.port(p.node.Name),
		Running: p.runningLocked(), Wanted: p.wanted, Restarts: p.restarts, LastExit: p.lastExitLocked(), Log: p.log,
		Pid: p.pidLocked(),
	}
	p.mu.Unlock()
	if p.node.Kind == OneShot {
		st.Ready = !st.Running && st.LastExit == "exit status 0"
	} else if st.Running {
		st.Ready = p.spec.ready == nil || p.spec.ready(ctx)
	}
	st.ZK = tree.describe(p.node, c.addr(p.node.Name))
	return st
}

// zkTree is the part of the ZooKeeper tree status reports on.
type zkTree struct {
	err       error
	nodes     map[string][]string // service → registered host:port
	cache     map[string]string   // cache node name → status
	queue     map[string]string   // host:port → primary / secondary
	db        map[string]string   // host:port → primary / replica
	redismonL string              // data of the lowest leader candidate
}

func (t zkTree) describe(n Node, addr string) string {
	if t.err != nil {
		return "zk: " + t.err.Error()
	}
	reg := "not registered"
	if slices.Contains(t.nodes[n.Service], addr) {
		reg = "registered"
	}
	switch {
	case n.Program == ProgRedismon:
		role := "standby"
		if t.redismonL != "" && strings.Contains(t.redismonL, addr) {
			role = "leader"
		}
		return role + ", " + reg
	case n.Service != "":
		return reg
	case n.Program == ProgRedisCache:
		if s, ok := t.cache[n.Name+":"+addr]; ok {
			return s
		}
		return "not listed"
	case n.Program == ProgRedisQueue:
		return orNone(t.queue[addr])
	case n.Program == ProgMariaDB:
		return orNone(t.db[addr])
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "not listed"
	}
	return s
}

// zkClient is the status reader's ZooKeeper connection, kept across calls.
type zkClient struct{ conn *zk.Conn }

func (c *Cluster) zkConn() (*zk.Conn, error) {
	c.zkMu.Lock()
	defer c.zkMu.Unlock()
	if c.zk != nil {
		return c.zk.conn, nil
	}
	conn, _, err := zk.Connect([]string{c.ZKAddr()}, 4*time.Second,
		zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		return nil, err
	}
	c.zk = &zkClient{conn: conn}
	return conn, nil
}

func (c *Cluster) closeZK() {
	c.zkMu.Lock()
	defer c.zkMu.Unlock()
	if c.zk != nil {
		c.zk.conn.Close()
		c.zk = nil
	}
}

// readTree reads the service, cache, queue, db and redismon nodes, giving up after a few seconds.
func (c *Cluster) readTree(ctx context.Context) zkTree {
	t := zkTree{nodes: map[string][]string{}, cache: map[string]string{}, queue: map[string]string{},
		db: map[string]string{}}
	conn, err := c.zkConn()
	if err != nil {
		t.err = err
		return t
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.err = c.fillTree(conn, &t)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return zkTree{err: errors.New("ZooKeeper did not answer")}
	case <-ctx.Done():
		return zkTree{err: ctx.Err()}
	}
	return t
}

// fillTree reads what status shows of the tree. Only a failed listing of a service or cache
// directory is an error: a node that is absent or malformed just shows as not there.
func (c *Cluster) fillTree(conn *zk.Conn, t *zkTree) error {
	layout := discovery.Layout{Root: c.cfg.ZKRoot}
	for _, svc := range ServiceDirs {
		kids, err := children(conn, layout.Nodes(svc))
		if err != nil {
			return err
		}
		t.nodes[svc] = kids
	}
	if err := readCacheStatus(conn, layout.CacheNodes(), t.cache); err != nil {
		return err
	}
	if data, _, err := conn.Get(layout.Queue()); err == nil {
		if q, err := discovery.ParseQueue(data); err == nil {
			markRoles(t.queue, q.Primary, q.Secondary, "secondary")
		}
	}
	if data, _, err := conn.Get(layout.DB()); err == nil {
		if d, err := discovery.ParseDB(data); err == nil {
			markRoles(t.db, d.Primary, d.Replicas, "replica")
		}
	}
	t.redismonL = leaderData(conn, layout.RedismonLeader())
	return nil
}

// children lists dir; a directory not created yet has no children.
func children(conn *zk.Conn, dir string) ([]string, error) {
	kids, _, err := conn.Children(dir)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return kids, nil
}

// readCacheStatus records each cache node's status. It reads the status leniently rather than
// through discovery.ParseCacheNode: status shows a malformed node as ALIVE (what the services
// would not do) instead of hiding it.
func readCacheStatus(conn *zk.Conn, dir string, status map[string]string) error {
	kids, err := children(conn, dir)
	if err != nil {
		return err
	}
	for _, k := range kids {
		data, _, err := conn.Get(path.Join(dir, k))
		if err != nil {
			continue
		}
		var doc struct{ Status string }
		status[k] = "ALIVE"
		if json.Unmarshal(data, &doc) == nil && doc.Status != "" {
			status[k] = strings.ToUpper(doc.Status)
		}
	}
	return nil
}

// markRoles records primary as "primary" and each of others as role.
func markRoles(roles map[string]string, primary string, others []string, role string) {
	for _, s := range others {
		roles[s] = role
	}
	roles[primary] = "primary"
}

// leaderData returns the data of the lowest-sequence candidate under dir, or "".
func leaderData(conn *zk.Conn, dir string) string {
	kids, _, err := conn.Children(dir)
	if err != nil || len(kids) == 0 {
		return ""
	}
	sort.Slice(kids, func(i, j int) bool { return seqOf(kids[i]) < seqOf(kids[j]) })
	data, _, err := conn.Get(path.Join(dir, kids[0]))
	if err != nil {
		return ""
	}
	return string(data)
}

// seqOf returns the sequence suffix of an ephemeral-sequential node name (its last 10 chars).
func seqOf(name string) string {
	if len(name) < 10 {
		return name
	}
	return name[len(name)-10:]
}

// ZKChildren lists the children of a path relative to the service root (for tests and tools).
func (c *Cluster) ZKChildren(rel string) ([]string, error) {
	conn, err := c.zkConn()
	if err != nil {
		return nil, err
	}
	kids, _, err := conn.Children(path.Join(c.cfg.ZKRoot, rel))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return kids, err
}

// ZKGet reads the data of a path relative to the service root.
func (c *Cluster) ZKGet(rel string) ([]byte, error) {
	conn, err := c.zkConn()
	if err != nil {
		return nil, err
	}
	data, _, err := conn.Get(path.Join(c.cfg.ZKRoot, rel))
	return data, err
}
