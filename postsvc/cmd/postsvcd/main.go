// Command postsvcd serves the post API and the demo page (see package postsvc). It finds guidd and
// scrapd instances, the cache shards, the queue and the database in ZooKeeper, registers itself
// under R/postsvc/nodes, and follows every change without a restart.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/the-red/zkpost/discovery"
	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/internal/daemon"
	"github.com/the-red/zkpost/post"
	"github.com/the-red/zkpost/post/mysql"
	"github.com/the-red/zkpost/post/queue"
	"github.com/the-red/zkpost/postsvc"
	"github.com/the-red/zkpost/scrap"
)

const binary = "postsvcd"

func main() { daemon.Main(binary, run) }

// configs are the packages' flag sets postsvcd is made of.
type configs struct {
	svc   postsvc.Config
	db    mysql.Config
	queue queue.Config
}

func (c *configs) register(fs *flag.FlagSet) {
	c.svc.RegisterFlags(fs)
	c.db.RegisterFlags(fs)
	c.queue.RegisterFlags(fs)
	c.queue.RegisterEnqueueFlags(fs)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var c configs
	spec := daemon.Spec{Name: binary, Flags: c.register, Secrets: []string{"db-password"}}
	return daemon.Run(ctx, spec, args, getenv, stdout, func(ctx context.Context, p *daemon.Process) error {
		// go-redis logs every failed dial to a dead shard on stderr through a process-wide
		// logger; main owns the process, so it routes those lines to slog at debug level.
		redis.SetLogger(redisLogger{p.Log})
		return serve(ctx, p, c)
	})
}

// serve opens postsvcd's dependencies (each closed in reverse order on shutdown), builds the
// server, follows ZooKeeper and registers.
func serve(ctx context.Context, p *daemon.Process, c configs) error {
	guids := p.Conn.NewBalancer(p.Layout.Nodes("guid"))
	p.Defer("guid balancer", stopper(guids.Stop))
	scraps := p.Conn.NewBalancer(p.Layout.Nodes("scrap"))
	p.Defer("scrap balancer", stopper(scraps.Stop))
	ids := guid.NewClient(guids, guid.ClientOptions{Block: c.svc.IDBlock, MaxAge: c.svc.IDMaxAge})
	p.Defer("guid client", stopper(ids.Close))
	router := mysql.NewRouter(c.db, p.Log, p.Metrics)
	p.Defer("database router", router.Close)
	queue := queue.NewEnqueuer(c.queue, p.Log)
	p.Defer("queue", queue.Close)

	srv, err := postsvc.New(c.svc, postsvc.Deps{
		IDs:       ids,
		Previewer: scrap.NewClient(scraps, nil),
		Queue:     queue,
		Store:     readerStore{router},
		Primary:   primaryStore{router},
		Log:       p.Log,
		Registry:  p.Metrics,
	})
	if err != nil {
		return err
	}
	watches := postsvc.Watch(p.Conn, p.Layout, srv.Cache(), queue, router, p.Log)
	p.Defer("watches", stopper(watches.Stop))

	advertise, err := discovery.AdvertiseAddr(c.svc.Advertise, srv.Addr())
	if err != nil {
		return err
	}
	registration, err := p.Register("postsvc", advertise)
	if err != nil {
		return err
	}
	srv.AddReady(readiness(p, registration, guids)...)
	srv.AddReady(watches.Checks()...)
	p.Log.Info("serving", "addr", srv.Addr().String(), "advertise", advertise)
	// Run returns when ctx ends; the server's Shutdown then stops accepting and drains.
	return p.Serve(ctx, srv, c.svc.DrainTimeout)
}

// stopper adapts a Stop or Close without an error to a shutdown step.
func stopper(f func()) func() error { return func() error { f(); return nil } }

func readiness(p *daemon.Process, reg *discovery.Registration, guids *discovery.Balancer) []postsvc.Check {
	return []postsvc.Check{
		{Name: "zookeeper", OK: p.SessionCheck},
		{Name: "registered", OK: daemon.RegisteredCheck(reg)},
		{Name: "guid", OK: func() error {
			if len(guids.Candidates()) == 0 {
				return errors.New("no guid server known")
			}
			return nil
		}},
	}
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, args ...any) {
	l.log.Debug("redis client", "msg", fmt.Sprintf(format, args...))
}

// readerStore reads through the router's current reader (a healthy replica, else the primary,
// else — while the primary is unreachable — the most advanced reachable replica) and maps
// post/mysql's not-found to postsvc's.
type readerStore struct{ r *mysql.Router }

// The concrete types main wires in satisfy the interfaces postsvc declares.
var (
	_ postsvc.Store          = readerStore{}
	_ postsvc.Primary        = primaryStore{}
	_ postsvc.IDSource       = (*guid.Client)(nil)
	_ postsvc.Previewer      = (*scrap.Client)(nil)
	_ postsvc.Queue          = (*queue.Enqueuer)(nil)
	_ postsvc.QueueEndpoints = (*queue.Enqueuer)(nil)
	_ postsvc.DBEndpoints    = (*mysql.Router)(nil)
)

// primaryStore writes through the router's current primary (--write-mode=through).
type primaryStore struct{ r *mysql.Router }

func (s primaryStore) Upsert(ctx context.Context, posts []post.Post) error {
	st, err := s.r.Primary()
	if err != nil {
		return err
	}
	return st.Upsert(ctx, posts)
}

func (s readerStore) List(ctx context.Context, userID, maxID uint64, limit int) ([]post.Post, error) {
	st, err := s.r.Reader()
	if err != nil {
		return nil, err
	}
	return st.List(ctx, userID, maxID, limit)
}

func (s readerStore) Get(ctx context.Context, postID uint64) (post.Post, error) {
	st, err := s.r.Reader()
	if err != nil {
		return post.Post{}, err
	}
	p, err := st.Get(ctx, postID)
	if errors.Is(err, mysql.ErrNotFound) {
		return post.Post{}, postsvc.ErrNotFound
	}
	return p, err
}
