package discovery

import "github.com/go-zookeeper/zk"

// The node errors callers branch on: go-zookeeper's own values under discovery's names, so
// errors.Is matches either and callers need not import the client.
var (
	ErrNoNode     = zk.ErrNoNode
	ErrNodeExists = zk.ErrNodeExists
	ErrBadVersion = zk.ErrBadVersion
)

// Stat is the part of a node's metadata callers act on.
type Stat struct {
	Version        int32 // data version, for a conditional Set
	EphemeralOwner int64 // session owning an ephemeral node; 0 for a persistent one
}

func statOf(s *zk.Stat) Stat {
	if s == nil {
		return Stat{}
	}
	return Stat{Version: s.Version, EphemeralOwner: s.EphemeralOwner}
}

// The node operations below are one ZooKeeper call each, for callers that keep their own state
// in ZooKeeper (guid's clock nodes, redismon's election and its shard and queue nodes,
// zoo_setup). Errors are returned unwrapped, so errors.Is(err, ErrNoNode) and the like hold;
// callers wrap them with their operation.

// Get returns p's data and metadata.
func (c *Conn) Get(p string) ([]byte, Stat, error) {
	data, stat, err := c.zk.Get(p)
	return data, statOf(stat), err
}

// Exists reports whether p exists, with its metadata.
func (c *Conn) Exists(p string) (bool, Stat, error) {
	ok, stat, err := c.zk.Exists(p)
	return ok, statOf(stat), err
}

// ExistsWatch is Exists with a one-shot watch: gone delivers one event when p is created,
// changed or deleted, or when the session ends.
func (c *Conn) ExistsWatch(p string) (exists bool, gone <-chan zk.Event, err error) {
	ok, _, ch, err := c.zk.ExistsW(p)
	return ok, ch, err
}

// Children returns the names of p's children.
func (c *Conn) Children(p string) ([]string, error) {
	names, _, err := c.zk.Children(p)
	return names, err
}

// Create creates the persistent node p with data; its parent must exist (EnsurePath).
func (c *Conn) Create(p string, data []byte) error {
	_, err := c.zk.Create(p, data, 0, zk.WorldACL(zk.PermAll))
	return err
}

// Set writes data to p if its version is still version (-1: any) and returns the new metadata.
func (c *Conn) Set(p string, data []byte, version int32) (Stat, error) {
	stat, err := c.zk.Set(p, data, version)
	return statOf(stat), err
}

// Delete deletes p if its version is still version (-1: any).
func (c *Conn) Delete(p string, version int32) error { return c.zk.Delete(p, version) }

// CreateCandidate creates an ephemeral sequential node prefix<seq> owned by the current session
// and returns its path: a candidate of a leader election. Its protected form lets the client
// find the node again when the create succeeded but its reply was lost to a connection loss.
func (c *Conn) CreateCandidate(prefix string, data []byte) (string, error) {
	return c.zk.CreateProtectedEphemeralSequential(prefix, data, zk.WorldACL(zk.PermAll))
}
