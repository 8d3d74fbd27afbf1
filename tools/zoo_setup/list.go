package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/the-red/zkpost/discovery"
)

// Tree is what --list shows: the live members of every service and the state of every endpoint
// node. Nodes that cannot be parsed are listed under Problems rather than failing the listing.
type Tree struct {
	Root        string                    `json:"root"`
	Services    map[string][]Member       `json:"services"`
	GuidWorkers []Lease                   `json:"guid_workers"`
	Cache       []Shard                   `json:"cache"`
	Queue       *discovery.QueueEndpoints `json:"queue"`
	DB          *discovery.DBEndpoints    `json:"db"`
	Redismon    Election                  `json:"redismon"`
	Problems    []string                  `json:"problems,omitempty"`
}

// Member is one live instance of a service, from its serverset node.
type Member struct {
	Node   string `json:"node"`
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Status string `json:"status"`
	Shard  int    `json:"shard"`
	// Named is set for a node registered the reference's way: its name is the address and it
	// carries no data. Callers route to it all the same (they read names only), so it is a live
	// member; its status is ALIVE by that convention and it has no shard.
	Named bool `json:"named,omitempty"`
}

// Lease is a guid worker-id lease.
type Lease struct {
	DC     int    `json:"dc"`
	Worker int    `json:"worker"`
	Owner  string `json:"owner"`
}

// Shard is a cache shard and the status redismon gave it.
type Shard struct {
	Node   string `json:"node"`
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Status string `json:"status"`
	Epoch  int64  `json:"epoch"`
	Since  string `json:"since,omitempty"`
}

// Election lists redismon's candidates, the leader first.
type Election struct {
	Leader     string   `json:"leader"`
	Candidates []string `json:"candidates"`
}

// reader reads the tree; missing paths read as empty.
type reader struct {
	zk     *discovery.Conn
	layout discovery.Layout
	tree   *Tree
}

func readTree(c *discovery.Conn, l discovery.Layout) (*Tree, error) {
	r := reader{zk: c, layout: l, tree: &Tree{Root: l.Root, Services: map[string][]Member{},
		GuidWorkers: []Lease{}, Cache: []Shard{}, Redismon: Election{Candidates: []string{}}}}
	for _, step := range []func() error{r.services, r.workers, r.cache, r.queue, r.db, r.election} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return r.tree, nil
}

// children returns the sorted children of p with their data; a missing p has none.
func (r reader) children(p string) ([]string, map[string][]byte, error) {
	names, err := r.zk.Children(p)
	if errors.Is(err, discovery.ErrNoNode) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing %s: %w", p, err)
	}
	sort.Strings(names)
	data := make(map[string][]byte, len(names))
	kept := names[:0]
	for _, n := range names {
		b, _, err := r.zk.Get(path.Join(p, n))
		if errors.Is(err, discovery.ErrNoNode) {
			continue // left between the two calls
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", path.Join(p, n), err)
		}
		data[n] = b
		kept = append(kept, n)
	}
	return kept, data, nil
}

func (r reader) problem(format string, args ...any) {
	r.tree.Problems = append(r.tree.Problems, fmt.Sprintf(format, args...))
}

func (r reader) services() error {
	for _, svc := range services {
		names, data, err := r.children(r.layout.Nodes(svc))
		if err != nil {
			return err
		}
		members := []Member{}
		for _, n := range names {
			if m, ok := r.member(svc, n, data[n]); ok {
				members = append(members, m)
			}
		}
		r.tree.Services[svc] = members
	}
	return nil
}

// member reads one serverset node as its callers do: the name is the address they route to
// (discovery.Balancer reads names only), and the data, a serverset document or nothing at all (the
// reference's registration), says more about it where present.
func (r reader) member(svc, name string, data []byte) (Member, bool) {
	ep, err := discovery.ParseEndpoint(name)
	if err != nil {
		r.problem("%s node %s: its name is not the host:port callers route to", svc, name)
		return Member{}, false
	}
	m := Member{Node: name, Host: ep.Host, Port: ep.Port, Status: discovery.StatusAlive, Named: true}
	if len(bytes.TrimSpace(data)) == 0 {
		return m, true
	}
	var ss discovery.ServerSet
	if err := json.Unmarshal(data, &ss); err != nil {
		r.problem("%s node %s: data is neither empty nor a serverset document (%v); callers still route to it by name", svc, name, err)
		return m, true
	}
	m.Status, m.Shard, m.Named = ss.Status, ss.Shard, false
	return m, true
}

func (r reader) workers() error {
	base := path.Dir(r.layout.GuidWorkers(0))
	dcs, _, err := r.children(base)
	if err != nil {
		return err
	}
	for _, dc := range dcs {
		d, err := strconv.Atoi(dc)
		if err != nil {
			continue
		}
		ids, data, err := r.children(path.Join(base, dc))
		if err != nil {
			return err
		}
		for _, id := range ids {
			w, err := strconv.Atoi(id)
			if err != nil {
				continue
			}
			r.tree.GuidWorkers = append(r.tree.GuidWorkers, Lease{DC: d, Worker: w, Owner: string(data[id])})
		}
	}
	sort.Slice(r.tree.GuidWorkers, func(i, j int) bool {
		a, b := r.tree.GuidWorkers[i], r.tree.GuidWorkers[j]
		return a.DC < b.DC || a.DC == b.DC && a.Worker < b.Worker
	})
	return nil
}

func (r reader) cache() error {
	names, data, err := r.children(r.layout.CacheNodes())
	if err != nil {
		return err
	}
	for _, n := range names {
		c, err := discovery.ParseCacheNode(n, data[n])
		if err != nil {
			r.problem("%v", err)
			continue
		}
		var extra struct {
			Since string `json:"since"`
		}
		_ = json.Unmarshal(data[n], &extra) // empty data (the reference's) has no since
		r.tree.Cache = append(r.tree.Cache, Shard{Node: n, Name: c.Name, Addr: c.Addr, Status: c.Status, Epoch: c.Epoch, Since: extra.Since})
	}
	return nil
}

func (r reader) queue() error {
	data, ok, err := r.get(r.layout.Queue())
	if err != nil || !ok {
		return err
	}
	q, err := discovery.ParseQueue(data)
	if err != nil {
		r.problem("%v", err)
		return nil
	}
	q.Secondary = nonNil(q.Secondary)
	r.tree.Queue = &q
	for _, ep := range append([]string{q.Primary}, q.Secondary...) {
		for _, c := range r.tree.Cache {
			if c.Addr == ep {
				r.problem("queue server %s is also cache shard %s: redismon leaves it alone (no failover to it, no flush)", ep, c.Name)
			}
		}
	}
	return nil
}

func (r reader) db() error {
	data, ok, err := r.get(r.layout.DB())
	if err != nil || !ok {
		return err
	}
	d, err := discovery.ParseDB(data)
	if err != nil {
		r.problem("%v", err)
		return nil
	}
	d.Replicas = nonNil(d.Replicas)
	r.tree.DB = &d
	return nil
}

func (r reader) get(p string) ([]byte, bool, error) {
	data, _, err := r.zk.Get(p)
	if errors.Is(err, discovery.ErrNoNode) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", p, err)
	}
	return data, true, nil
}

// election orders the candidates by their sequence number: the lowest leads.
func (r reader) election() error {
	names, data, err := r.children(r.layout.RedismonLeader())
	if err != nil {
		return err
	}
	sort.Slice(names, func(i, j int) bool { return sequence(names[i]) < sequence(names[j]) })
	for _, n := range names {
		label := n
		if len(data[n]) > 0 {
			label = string(data[n])
		}
		r.tree.Redismon.Candidates = append(r.tree.Redismon.Candidates, label)
	}
	if len(r.tree.Redismon.Candidates) > 0 {
		r.tree.Redismon.Leader = r.tree.Redismon.Candidates[0]
	}
	return nil
}

// sequence returns the 10-digit sequence number ZooKeeper appends to a sequential node's name.
func sequence(name string) int64 {
	if len(name) < 10 {
		return -1
	}
	n, err := strconv.ParseInt(name[len(name)-10:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// printTree writes the tree for people.
func printTree(w io.Writer, t *Tree) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ZooKeeper tree under %s\n", t.Root)
	for _, svc := range services {
		ms := t.Services[svc]
		fmt.Fprintf(tw, "\n%s: %d live\n", svc, len(ms))
		for _, m := range ms {
			shard := ""
			switch {
			case m.Named:
				shard = "registered by name only"
			case svc == "guid":
				shard = fmt.Sprintf("worker %d", m.Shard)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.Node, m.Status, shard)
		}
	}
	fmt.Fprintf(tw, "\nguid worker leases: %d\n", len(t.GuidWorkers))
	for _, l := range t.GuidWorkers {
		fmt.Fprintf(tw, "  dc %d worker %d\t%s\n", l.DC, l.Worker, l.Owner)
	}
	fmt.Fprintf(tw, "\ncache shards: %d\n", len(t.Cache))
	for _, s := range t.Cache {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tepoch %d\t%s\n", s.Name, s.Addr, s.Status, s.Epoch, since(s.Since))
	}
	fmt.Fprintln(tw, "\nqueue:")
	if q := t.Queue; q != nil {
		fmt.Fprintf(tw, "  primary\t%s\n  secondary\t%s\n", q.Primary, strings.Join(q.Secondary, ", "))
	} else {
		fmt.Fprintln(tw, "  (not registered)")
	}
	fmt.Fprintln(tw, "\ndb:")
	if d := t.DB; d != nil {
		fmt.Fprintf(tw, "  primary\t%s\n  replicas\t%s\n", d.Primary, strings.Join(d.Replicas, ", "))
	} else {
		fmt.Fprintln(tw, "  (not registered)")
	}
	fmt.Fprintln(tw, "\nredismon:")
	if e := t.Redismon; e.Leader != "" {
		fmt.Fprintf(tw, "  leader\t%s\n  standby\t%s\n", e.Leader, strings.Join(e.Candidates[1:], ", "))
	} else {
		fmt.Fprintln(tw, "  (no leader)")
	}
	if len(t.Problems) > 0 {
		fmt.Fprintf(tw, "\nproblems: %d\n", len(t.Problems))
		for _, p := range t.Problems {
			fmt.Fprintf(tw, "  %s\n", p)
		}
	}
	return tw.Flush()
}

func since(s string) string {
	if s == "" {
		return ""
	}
	return "since " + s
}
