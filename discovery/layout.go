package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
)

// Layout names every path of the ZooKeeper tree (docs/zookeeper.md) under one root, so the paths are
// spelled in one place.
type Layout struct{ Root string }

// Nodes returns the directory where instances of service ("guid", "scrap", "postsvc",
// "writeback") register.
func (l Layout) Nodes(service string) string { return path.Join(l.Root, service, "nodes") }

// GuidWorkers returns the directory of worker-id leases of datacenter dc.
func (l Layout) GuidWorkers(dc int) string {
	return path.Join(l.Root, "guid", "workers", strconv.Itoa(dc))
}

// GuidClock returns the node holding the last timestamp issued under (dc, worker).
func (l Layout) GuidClock(dc, worker int) string {
	return path.Join(l.Root, "guid", "clock", fmt.Sprintf("%d-%d", dc, worker))
}

// CacheNodes returns the directory of cache shards.
func (l Layout) CacheNodes() string { return path.Join(l.Root, "cache", "nodes") }

// Queue returns the node describing the queue Redis endpoints.
func (l Layout) Queue() string { return path.Join(l.Root, "queue", "sidekiq") }

// DB returns the node describing the database endpoints.
func (l Layout) DB() string { return path.Join(l.Root, "db") }

// RedismonNodes returns the directory where redismon instances register their serverset nodes,
// so Prometheus discovers them like the services (an addition to the reference's layout:
// docs/zookeeper.md#additions-to-the-reference-layout).
func (l Layout) RedismonNodes() string { return l.Nodes("redismon") }

// RedismonLeader returns the directory of redismon's leader election.
func (l Layout) RedismonLeader() string { return path.Join(l.Root, "redismon", "leader") }

// Endpoint is a host and port in the serverset format.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// String returns host:port.
func (e Endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// ServerSet is the Finagle serverset member document that Prometheus' serverset_sd_configs reads.
type ServerSet struct {
	ServiceEndpoint     Endpoint            `json:"serviceEndpoint"`
	AdditionalEndpoints map[string]Endpoint `json:"additionalEndpoints"`
	Status              string              `json:"status"`
	Shard               int                 `json:"shard"`
}

// StatusAlive is the status of a serving member.
const StatusAlive = "ALIVE"

// StatusDown is the status redismon gives a failed cache shard.
const StatusDown = "DOWN"

// NewServerSet returns the serverset JSON for an instance serving HTTP at hostport.
func NewServerSet(hostport string, shard int) ([]byte, error) {
	ep, err := ParseEndpoint(hostport)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ServerSet{
		ServiceEndpoint:     ep,
		AdditionalEndpoints: map[string]Endpoint{"http": ep},
		Status:              StatusAlive,
		Shard:               shard,
	})
}

// ParseEndpoint splits host:port.
func ParseEndpoint(hostport string) (Endpoint, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: %w", hostport, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 || host == "" {
		return Endpoint{}, fmt.Errorf("endpoint %q: want host:port", hostport)
	}
	return Endpoint{Host: host, Port: port}, nil
}

// CacheNode is one cache shard as zoo_setup and redismon describe it: the node name is
// "<name>:<host>:<port>" (the reference's naming); the data is empty (ALIVE) or
// {"status":"ALIVE"|"DOWN",...}.
type CacheNode struct {
	Name   string
	Addr   string // host:port
	Status string
	Epoch  int64 // bumped by redismon each time the shard is flushed and brought back
	// RunID is the run_id (INFO server) of the Redis process redismon vouches for: the one it
	// flushed, or first saw serving; "" when none is recorded. A connection answered by another
	// process reached a restart redismon has not handled yet, which may hold data from before an
	// outage.
	RunID string
}

// CacheNodeName returns the node name of a shard.
func CacheNodeName(name, addr string) string { return name + ":" + addr }

// ParseCacheNode reads a cache shard from its node name and data.
func ParseCacheNode(node string, data []byte) (CacheNode, error) {
	name, addr, ok := strings.Cut(node, ":")
	if !ok || name == "" {
		return CacheNode{}, fmt.Errorf("cache node %q: want name:host:port", node)
	}
	if _, err := ParseEndpoint(addr); err != nil {
		return CacheNode{}, fmt.Errorf("cache node %q: %w", node, err)
	}
	n := CacheNode{Name: name, Addr: addr, Status: StatusAlive}
	if len(strings.TrimSpace(string(data))) == 0 {
		return n, nil
	}
	var doc struct {
		Status string `json:"status"`
		Epoch  int64  `json:"epoch"`
		RunID  string `json:"run_id"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return CacheNode{}, fmt.Errorf("cache node %q data: %w", node, err)
	}
	if doc.Status != "" {
		n.Status = strings.ToUpper(doc.Status)
	}
	n.Epoch, n.RunID = doc.Epoch, doc.RunID
	return n, nil
}

// QueueEndpoints is the data of the queue node: {"primary":"host:port","secondary":[...]}.
type QueueEndpoints struct {
	Primary   string   `json:"primary"`
	Secondary []string `json:"secondary"`
}

// ParseQueue reads the queue node.
func ParseQueue(data []byte) (QueueEndpoints, error) {
	var q QueueEndpoints
	if err := json.Unmarshal(data, &q); err != nil {
		return q, fmt.Errorf("queue node: %w", err)
	}
	if q.Primary == "" {
		return q, errors.New("queue node: no primary")
	}
	return q, nil
}

// DBEndpoints is the data of the database node: {"primary":"host:port","replicas":[...]}.
type DBEndpoints struct {
	Primary  string   `json:"primary"`
	Replicas []string `json:"replicas"`
}

// ParseDB reads the database node.
func ParseDB(data []byte) (DBEndpoints, error) {
	var d DBEndpoints
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("db node: %w", err)
	}
	if d.Primary == "" {
		return d, errors.New("db node: no primary")
	}
	return d, nil
}
