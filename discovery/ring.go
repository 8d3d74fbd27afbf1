package discovery

import (
	"sort"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// Ring maps keys to named members by consistent hashing with bounded loads
// (buraksezer/consistent). A Ring is immutable: a membership change builds a new one, which
// readers swap in atomically.
//
// Every process that builds a ring from the same member set maps every key the same way: the
// library places members by the hash of their names and assigns partitions in a fixed order, and
// NewRing adds members in sorted order besides.
type Ring struct {
	members []string
	c       *consistent.Consistent
}

// Ring parameters. consistent v1.0.0 panics ("not enough room to distribute partitions") when
// partitions/members rounds the per-member capacity too low; 1021 partitions with load 1.25 leave
// room for up to 256 members, far above the 32 cache shards we plan for.
const (
	ringPartitions  = 1021
	ringReplication = 50
	ringLoad        = 1.25
	ringMaxMembers  = 256
)

type ringMember string

func (m ringMember) String() string { return string(m) }

type ringHasher struct{}

func (ringHasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// NewRing builds a ring over members (duplicates ignored). A ring of no members locates nothing.
// Members past the 256th are ignored rather than risk the library's panic.
func NewRing(members []string) *Ring {
	uniq := map[string]bool{}
	var ms []string
	for _, m := range members {
		if m != "" && !uniq[m] {
			uniq[m] = true
			ms = append(ms, m)
		}
	}
	sort.Strings(ms)
	if len(ms) > ringMaxMembers {
		ms = ms[:ringMaxMembers]
	}
	r := &Ring{members: ms}
	if len(ms) == 0 {
		return r
	}
	cms := make([]consistent.Member, len(ms))
	for i, m := range ms {
		cms[i] = ringMember(m)
	}
	r.c = consistent.New(cms, consistent.Config{
		PartitionCount:    ringPartitions,
		ReplicationFactor: ringReplication,
		Load:              ringLoad,
		Hasher:            ringHasher{},
	})
	return r
}

// Locate returns the member owning key, or false when the ring is empty.
func (r *Ring) Locate(key string) (string, bool) {
	if r == nil || r.c == nil {
		return "", false
	}
	return r.c.LocateKey([]byte(key)).String(), true
}

// Members returns the ring's members in sorted order.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	return append([]string(nil), r.members...)
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}
