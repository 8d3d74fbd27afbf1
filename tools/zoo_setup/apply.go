package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/the-red/zkpost/discovery"
)

// services are the daemons that register serverset nodes under R/<svc>/nodes.
var services = []string{"guid", "scrap", "postsvc", "writeback"}

// directories returns every persistent directory of the tree, so watchers and Prometheus'
// serverset discovery find existing paths before the first daemon starts.
func directories(l discovery.Layout) []string {
	dirs := make([]string, 0, len(services)+5)
	for _, s := range services {
		dirs = append(dirs, l.Nodes(s))
	}
	return append(dirs,
		path.Dir(l.GuidWorkers(0)),
		path.Dir(l.GuidClock(0, 0)),
		l.CacheNodes(),
		path.Dir(l.Queue()),
		l.RedismonLeader())
}

// applier writes a Setup into ZooKeeper. Every step reads before it writes, so running it again
// changes nothing, and it never touches what redismon owns: a cache node's status data, and the
// order of the queue endpoints after a failover.
type applier struct {
	zk     *discovery.Conn
	ensure func(string) error
	layout discovery.Layout
	out    io.Writer
}

func (a applier) apply(s Setup) error {
	for _, d := range directories(a.layout) {
		if err := a.ensure(d); err != nil {
			return err
		}
	}
	if err := a.registerCache(s.Cache); err != nil {
		return err
	}
	if s.Queue != nil {
		if err := a.setQueue(*s.Queue); err != nil {
			return err
		}
	}
	if s.DB != nil {
		return a.setDB(*s.DB)
	}
	return nil
}

// registerCache creates each shard's node with empty data (ALIVE) unless it exists. A shard
// name already registered at another address is an error: two ring members with one name would
// send a user's keys to either.
func (a applier) registerCache(shards []string) error {
	existing, err := a.zk.Children(a.layout.CacheNodes())
	if err != nil {
		return fmt.Errorf("listing cache shards: %w", err)
	}
	for _, node := range shards {
		n, _ := parseShard(node) // validated already
		if slices.Contains(existing, node) {
			fmt.Fprintf(a.out, "cache shard %s: already registered, status kept\n", node)
			continue
		}
		for _, e := range existing {
			if name, _, _ := strings.Cut(e, ":"); name == n.Name {
				return fmt.Errorf("cache shard %s: name %s is registered as %s; remove it first with --remove-cache %s", node, n.Name, e, n.Name)
			}
		}
		p := path.Join(a.layout.CacheNodes(), node)
		if err := a.zk.Create(p, nil); err != nil && !errors.Is(err, discovery.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		fmt.Fprintf(a.out, "cache shard %s: registered\n", node)
	}
	for _, e := range existing {
		if !slices.Contains(shards, e) && len(shards) > 0 {
			fmt.Fprintf(a.out, "cache shard %s: registered but not in this setup (kept; --remove-cache to drop it)\n", e)
		}
	}
	return nil
}

// setQueue writes the queue node unless it already lists the same endpoints: after a failover
// redismon has reordered them (a secondary is now the primary), and writing the configured order
// back would point every enqueuer at the dead primary.
func (a applier) setQueue(q discovery.QueueEndpoints) error {
	want := discovery.QueueEndpoints{Primary: q.Primary, Secondary: nonNil(q.Secondary)}
	return a.setJSON("queue", a.layout.Queue(), want, func(data []byte) (keep bool) {
		cur, err := discovery.ParseQueue(data)
		if err != nil {
			return false
		}
		return sameMembers(append([]string{cur.Primary}, cur.Secondary...), append([]string{want.Primary}, want.Secondary...))
	})
}

// setDB writes the database node unless it already holds the same endpoints.
func (a applier) setDB(d discovery.DBEndpoints) error {
	want := discovery.DBEndpoints{Primary: d.Primary, Replicas: nonNil(d.Replicas)}
	return a.setJSON("db", a.layout.DB(), want, func(data []byte) bool {
		cur, err := discovery.ParseDB(data)
		return err == nil && cur.Primary == want.Primary && slices.Equal(nonNil(cur.Replicas), want.Replicas)
	})
}

// setJSON creates or updates the node p with v, unless keep says its current data will do. The
// update is conditional on the version read, so a concurrent writer (redismon) is never
// overwritten blindly.
func (a applier) setJSON(what, p string, v any, keep func([]byte) bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	data, stat, err := a.zk.Get(p)
	switch {
	case errors.Is(err, discovery.ErrNoNode):
		if err := a.zk.Create(p, b); err != nil {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		fmt.Fprintf(a.out, "%s: created %s\n", what, b)
		return nil
	case err != nil:
		return fmt.Errorf("reading %s: %w", p, err)
	case keep(data):
		fmt.Fprintf(a.out, "%s: unchanged %s\n", what, data)
		return nil
	}
	if _, err := a.zk.Set(p, b, stat.Version); err != nil {
		return fmt.Errorf("updating %s: %w", p, err)
	}
	fmt.Fprintf(a.out, "%s: updated %s (was %s)\n", what, b, data)
	return nil
}

// removeCache deletes the shards named (by shard name or full node name). A shard that is not
// registered is reported, not an error, so removal is idempotent too.
func (a applier) removeCache(names []string) error {
	existing, err := a.zk.Children(a.layout.CacheNodes())
	if err != nil && !errors.Is(err, discovery.ErrNoNode) {
		return fmt.Errorf("listing cache shards: %w", err)
	}
	for _, want := range names {
		found := false
		for _, e := range existing {
			if name, _, _ := strings.Cut(e, ":"); e != want && name != want {
				continue
			}
			found = true
			p := path.Join(a.layout.CacheNodes(), e)
			if err := a.zk.Delete(p, -1); err != nil && !errors.Is(err, discovery.ErrNoNode) {
				return fmt.Errorf("deleting %s: %w", p, err)
			}
			fmt.Fprintf(a.out, "cache shard %s: removed\n", e)
		}
		if !found {
			fmt.Fprintf(a.out, "cache shard %s: not registered\n", want)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
