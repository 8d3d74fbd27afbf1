// Package clusterview is the live cluster view redismon serves (docs/operations.md, "The cluster
// view"): the nodes registered per service, the cache ring with each shard's state and epoch, the
// queue and database endpoints, the latest changes, and each node's request rate and errors.
//
// Everything structural comes from ZooKeeper watches, so a node killed with devcluster leaves the
// view when its session expires and returns when it registers again; request rates and the
// replicas' lag come from scraping the registered nodes' /metrics. The page follows the view over
// server-sent events: one full state per change (and per scrape), small enough to resend whole.
package clusterview

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// Services are the registered services the view lists, in order.
var Services = []string{"guid", "scrap", "postsvc", "writeback", "redismon"}

// State is what the page shows.
type State struct {
	Updated  time.Time  `json:"updated"`
	Services []Service  `json:"services"`
	Cache    []Shard    `json:"cache"`
	Queue    Queue      `json:"queue"`
	DB       DB         `json:"db"`
	Changes  []Change   `json:"changes"`
	Problems []string   `json:"problems,omitempty"`
	Rates    []NodeRate `json:"rates"`
}

// Service is one service's registered nodes.
type Service struct {
	Name  string `json:"name"`
	Nodes []Node `json:"nodes"`
}

// Node is one registered instance.
type Node struct {
	Addr string `json:"addr"`
	// Role is what else ZooKeeper says of it: guid's worker ids, redismon's leader or standby.
	Role string `json:"role,omitempty"`
}

// Shard is one cache shard as redismon recorded it.
type Shard struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Status string `json:"status"`
	Epoch  int64  `json:"epoch"`
}

// Queue is the queue Redis endpoints.
type Queue struct {
	Primary     string   `json:"primary"`
	Secondaries []string `json:"secondaries"`
}

// DB is the database endpoints; a replica's lag is what a postsvcd last measured (-1: unknown).
type DB struct {
	Primary  string    `json:"primary"`
	Replicas []Replica `json:"replicas"`
}

// Replica is one database replica.
type Replica struct {
	Addr       string  `json:"addr"`
	LagSeconds float64 `json:"lag_seconds"`
}

// Change is one difference between two successive states.
type Change struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// NodeRate is one node's request rate and error rate over the last scrape interval.
type NodeRate struct {
	Service   string  `json:"service"`
	Addr      string  `json:"addr"`
	PerSecond float64 `json:"per_second"`
	Errors    float64 `json:"errors_per_second"`
	Up        bool    `json:"up"`
}

// tree is the raw ZooKeeper snapshots the state is built from.
type tree struct {
	nodes   map[string]discovery.Snapshot // by service
	workers discovery.Snapshot            // guid worker leases of the watched datacenter
	leader  discovery.Snapshot            // redismon's election
	cache   discovery.Snapshot
	queue   discovery.Snapshot
	db      discovery.Snapshot
}

// build derives the structural part of the state from the tree.
func (t tree) build() State {
	var st State
	workers := workerIDs(t.workers)
	leader := leaderAddr(t.leader)
	for _, svc := range Services {
		s := Service{Name: svc}
		for _, name := range sortedNames(t.nodes[svc]) {
			n := Node{Addr: nodeAddr(name, t.nodes[svc].Children[name])}
			switch svc {
			case "guid":
				if ids := workers[n.Addr]; len(ids) > 0 {
					n.Role = "worker " + strings.Join(ids, ", ")
				}
			case "redismon":
				n.Role = "standby"
				if n.Addr == leader {
					n.Role = "leader"
				}
			}
			s.Nodes = append(s.Nodes, n)
		}
		sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Addr < s.Nodes[j].Addr })
		st.Services = append(st.Services, s)
	}
	st.Cache, st.Problems = shards(t.cache)
	st.Queue, st.DB, st.Problems = endpoints(t.queue, t.db, st.Problems)
	return st
}

// nodeAddr is the serverset's service endpoint, or the node's name when it carries no data (the
// reference's way of registering).
func nodeAddr(name string, data []byte) string {
	var ss discovery.ServerSet
	if len(data) > 0 && json.Unmarshal(data, &ss) == nil && ss.ServiceEndpoint.Host != "" {
		return ss.ServiceEndpoint.String()
	}
	return name
}

// workerIDs maps each guidd's advertised address to the worker ids it leases.
func workerIDs(s discovery.Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, id := range sortedNames(s) {
		addr := string(s.Children[id])
		out[addr] = append(out[addr], id)
	}
	return out
}

// leaderAddr is the data of the election's lowest sequence node: the leader's address.
func leaderAddr(s discovery.Snapshot) string {
	best, bestSeq := "", int64(-1)
	for name, data := range s.Children {
		i := strings.LastIndex(name, "n_")
		if i < 0 {
			continue
		}
		seq, err := strconv.ParseInt(name[i+2:], 10, 64)
		if err != nil {
			continue
		}
		if bestSeq < 0 || seq < bestSeq {
			best, bestSeq = string(data), seq
		}
	}
	return best
}

func shards(s discovery.Snapshot) ([]Shard, []string) {
	var out []Shard
	var problems []string
	for _, name := range sortedNames(s) {
		n, err := discovery.ParseCacheNode(name, s.Children[name])
		if err != nil {
			problems = append(problems, fmt.Sprintf("cache node %s: %v", name, err))
			continue
		}
		out = append(out, Shard{Name: n.Name, Addr: n.Addr, Status: n.Status, Epoch: n.Epoch})
	}
	return out, problems
}

func endpoints(qs, ds discovery.Snapshot, problems []string) (Queue, DB, []string) {
	var q Queue
	var d DB
	if qs.Exists && len(qs.Data) > 0 {
		e, err := discovery.ParseQueue(qs.Data)
		if err != nil {
			problems = append(problems, "queue node: "+err.Error())
		} else {
			q = Queue{Primary: e.Primary, Secondaries: e.Secondary}
		}
	}
	if ds.Exists && len(ds.Data) > 0 {
		e, err := discovery.ParseDB(ds.Data)
		if err != nil {
			problems = append(problems, "db node: "+err.Error())
		} else {
			d.Primary = e.Primary
			for _, r := range e.Replicas {
				d.Replicas = append(d.Replicas, Replica{Addr: r, LagSeconds: -1})
			}
		}
	}
	return q, d, problems
}

func sortedNames(s discovery.Snapshot) []string {
	names := s.Names()
	sort.Strings(names)
	return names
}

// diff describes what changed from a to b, one line per change.
func diff(a, b State) []string {
	var out []string
	for i, svc := range b.Services {
		var before []Node
		if i < len(a.Services) {
			before = a.Services[i].Nodes
		}
		out = append(out, nodeChanges(svc.Name, before, svc.Nodes)...)
	}
	out = append(out, shardChanges(a.Cache, b.Cache)...)
	if a.Queue.Primary != b.Queue.Primary || !slices.Equal(a.Queue.Secondaries, b.Queue.Secondaries) {
		out = append(out, fmt.Sprintf("queue: primary %s, secondaries %v", orNone(b.Queue.Primary), b.Queue.Secondaries))
	}
	if a.DB.Primary != b.DB.Primary || !slices.Equal(replicaAddrs(a.DB), replicaAddrs(b.DB)) {
		out = append(out, fmt.Sprintf("db: primary %s, replicas %v", orNone(b.DB.Primary), replicaAddrs(b.DB)))
	}
	return out
}

func nodeChanges(svc string, before, after []Node) []string {
	var out []string
	old := map[string]string{}
	for _, n := range before {
		old[n.Addr] = n.Role
	}
	now := map[string]bool{}
	for _, n := range after {
		now[n.Addr] = true
		role, was := old[n.Addr]
		switch {
		case !was:
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s joined %s", svc, n.Addr, n.Role)))
		case role != n.Role:
			out = append(out, fmt.Sprintf("%s %s: %s", svc, n.Addr, orNone(n.Role)))
		}
	}
	for _, n := range before {
		if !now[n.Addr] {
			out = append(out, fmt.Sprintf("%s %s left", svc, n.Addr))
		}
	}
	return out
}

func shardChanges(before, after []Shard) []string {
	var out []string
	old := map[string]Shard{}
	for _, s := range before {
		old[s.Name] = s
	}
	for _, s := range after {
		if o, ok := old[s.Name]; !ok || o != s {
			out = append(out, fmt.Sprintf("cache %s (%s): %s epoch %d", s.Name, s.Addr, s.Status, s.Epoch))
		}
		delete(old, s.Name)
	}
	for name := range old {
		out = append(out, "cache "+name+" removed")
	}
	return out
}

func replicaAddrs(d DB) []string {
	out := make([]string, 0, len(d.Replicas))
	for _, r := range d.Replicas {
		out = append(out, r.Addr)
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
