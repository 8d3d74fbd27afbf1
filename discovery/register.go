package discovery

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// retryDelay is how long a loop waits after a failed ZooKeeper call before trying again (or
// sooner, when the session changes).
const retryDelay = 500 * time.Millisecond

// EnsurePath creates p and its parents as persistent nodes where missing.
func (c *Conn) EnsurePath(p string) error {
	if p == "/" || p == "" {
		return nil
	}
	if err := c.EnsurePath(path.Dir(p)); err != nil {
		return err
	}
	_, err := c.zk.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// ErrOwnedByOther means an ephemeral node exists and belongs to another live session.
var ErrOwnedByOther = errors.New("node owned by another session")

// CreateEphemeral creates an ephemeral node owned by session. A node already owned by session is
// success. With replace, a node owned by another session is deleted and created again (a
// registrant's own node left by its previous session); without it, such a node is
// ErrOwnedByOther (somebody else's lease).
func (c *Conn) CreateEphemeral(p string, data []byte, session int64, replace bool) error {
	if err := c.EnsurePath(path.Dir(p)); err != nil {
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		_, err := c.zk.Create(p, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if !errors.Is(err, zk.ErrNodeExists) {
			if err != nil {
				return fmt.Errorf("creating %s: %w", p, err)
			}
			return nil
		}
		_, stat, err := c.zk.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue // vanished between the two calls: create again
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if stat.EphemeralOwner == session {
			if _, err := c.zk.Set(p, data, stat.Version); err != nil && !errors.Is(err, zk.ErrBadVersion) {
				return fmt.Errorf("updating %s: %w", p, err)
			}
			return nil
		}
		if !replace {
			return ErrOwnedByOther
		}
		if err := c.zk.Delete(p, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return fmt.Errorf("deleting stale %s: %w", p, err)
		}
	}
	return fmt.Errorf("creating %s: node keeps reappearing", p)
}

// DeleteOwned deletes p if it is an ephemeral node of session; anything else is left alone.
func (c *Conn) DeleteOwned(p string, session int64) error {
	_, stat, err := c.zk.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if stat.EphemeralOwner != session {
		return nil
	}
	if err := c.zk.Delete(p, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting %s: %w", p, err)
	}
	return nil
}

// Registration keeps one ephemeral node present for as long as it is open: it creates the node on
// every new session and again if somebody deletes it.
type Registration struct {
	conn       *Conn
	path       string
	data       []byte
	registered atomic.Bool
	session    atomic.Int64
	cancel     context.CancelFunc
	done       chan struct{}
	closeOnce  sync.Once
}

// Register starts keeping the ephemeral node dir/name with data. It returns at once; Registered
// tells whether the node is currently in place.
func (c *Conn) Register(dir, name string, data []byte) *Registration {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registration{conn: c, path: path.Join(dir, name), data: data, cancel: cancel, done: make(chan struct{})}
	go r.loop(ctx)
	return r
}

// Path returns the registered node's path.
func (r *Registration) Path() string { return r.path }

// Registered reports whether the node is in place for the current session.
func (r *Registration) Registered() bool {
	id, ok := r.conn.Session()
	return ok && r.registered.Load() && r.session.Load() == id
}

func (r *Registration) loop(ctx context.Context) {
	defer close(r.done)
	log := r.conn.log.With("path", r.path)
	for ctx.Err() == nil {
		session, err := r.conn.WaitSession(ctx)
		if err != nil {
			return
		}
		changed := r.conn.Changed()
		if err := r.conn.CreateEphemeral(r.path, r.data, session, true); err != nil {
			log.Warn("zk register failed", "err", err)
			r.registered.Store(false)
			Pause(ctx, changed, retryDelay)
			continue
		}
		exists, _, gone, err := r.conn.zk.ExistsW(r.path)
		if err != nil {
			// Without the pause a call failing on a live session would spin this loop.
			log.Warn("zk register watch failed", "err", err)
			Pause(ctx, changed, retryDelay)
			continue
		}
		if !exists {
			continue // deleted right after we created it: create it again
		}
		if !r.registered.Load() || r.session.Load() != session {
			log.Info("zk registered", "session", fmt.Sprintf("%#x", session))
		}
		r.session.Store(session)
		r.registered.Store(true)
		// Wait for the node to go (deleted by hand, or the session expired) or the session to change.
		select {
		case <-ctx.Done():
		case <-gone:
		case <-changed:
		}
	}
}

// Close stops keeping the node and deletes it, so readers stop routing to this instance at once.
// Call it first on shutdown, before draining.
func (r *Registration) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		r.registered.Store(false)
		id, ok := r.conn.Session()
		if !ok {
			return // the session will expire or be closed; the node goes with it
		}
		// Requests wait while ZooKeeper is unreachable; never let that hold up a shutdown.
		res := make(chan error, 1)
		go func() { res <- r.conn.DeleteOwned(r.path, id) }()
		select {
		case err = <-res:
		case <-time.After(3 * time.Second):
			err = fmt.Errorf("deleting %s: timed out", r.path)
		}
	})
	return err
}

// Pause blocks until ctx ends, ch closes or d passes: the retry pause of every loop that follows a
// session. Pass Conn.Changed() as ch, so a new session cuts the pause short.
func Pause(ctx context.Context, ch <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-ch:
	case <-t.C:
	}
}
