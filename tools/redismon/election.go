package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// election is ZooKeeper's standard leader-election recipe: every candidate creates an
// ephemeral-sequential child of dir; the lowest sequence leads; every other candidate watches only
// its predecessor (no herd effect when the leader goes), and re-checks when that one disappears.
//
// Leadership is held only while the session is connected: on a disconnect the leader stops acting
// at once, because the server may expire the session (and elect the standby) before the client
// learns of it. The client notices a silent server after 2/3 of the session timeout, before the
// server expires the session at the full timeout, so two leaders never act at the same time
// (barring clock pauses longer than a third of the timeout; redismon's ZooKeeper writes carry
// version checks as well).
type election struct {
	conn *discovery.Conn
	dir  string
	data []byte // the candidate's advertised address, for people reading the tree
	log  *slog.Logger

	leader atomic.Bool
	joined atomic.Bool // a candidate node exists for the current session
	node   string      // full path of our candidate node ("" before joining)
	sessID int64       // session the node belongs to
}

// errNodeGone means our candidate node disappeared (deleted by hand, or the session expired).
var errNodeGone = errors.New("candidate node gone")

// run takes part in the election until ctx ends, calling lead each time this candidate becomes
// leader. lead must return promptly once its context is cancelled: that is how leadership is
// given up. On return the candidate node is deleted, so a standby takes over at once instead of
// after the session timeout.
func (e *election) run(ctx context.Context, lead func(context.Context)) {
	defer e.leave()
	for ctx.Err() == nil {
		session, err := e.conn.WaitSession(ctx)
		if err != nil {
			return
		}
		changed := e.conn.Changed()
		if e.node == "" || e.sessID != session {
			// A node of an earlier session died with it: join again.
			if err := e.join(session); err != nil {
				e.log.Warn("election join failed", "err", err)
				discovery.Pause(ctx, changed, time.Second)
				continue
			}
		}
		pred, err := e.predecessor()
		switch {
		case errors.Is(err, errNodeGone):
			e.node = ""
			e.joined.Store(false)
			continue
		case err != nil:
			e.log.Warn("election read failed", "err", err)
			discovery.Pause(ctx, changed, time.Second)
			continue
		case pred == "":
			e.lead(ctx, changed, lead)
			continue
		}
		exists, gone, err := e.conn.ExistsWatch(pred)
		if err != nil {
			e.log.Warn("election watch failed", "err", err)
			discovery.Pause(ctx, changed, time.Second)
			continue
		}
		if !exists {
			continue // the predecessor left meanwhile: look again
		}
		select {
		case <-ctx.Done():
		case <-gone:
		case <-changed:
		}
	}
}

// join creates our candidate node. The protected form lets the library find our node again if
// the create succeeded but its reply was lost to a connection loss.
func (e *election) join(session int64) error {
	if err := e.conn.EnsurePath(e.dir); err != nil {
		return err
	}
	p, err := e.conn.CreateCandidate(path.Join(e.dir, "n_"), e.data)
	if err != nil {
		return fmt.Errorf("creating candidate node: %w", err)
	}
	e.node, e.sessID = p, session
	e.joined.Store(true)
	e.log.Info("election joined", "node", path.Base(p), "session", fmt.Sprintf("%#x", session))
	return nil
}

// predecessor returns the candidate just before ours, or "" when ours is the lowest (we lead).
func (e *election) predecessor() (string, error) {
	names, err := e.conn.Children(e.dir)
	if err != nil {
		return "", fmt.Errorf("listing candidates: %w", err)
	}
	sort.Slice(names, func(i, j int) bool { return sequence(names[i]) < sequence(names[j]) })
	mine := path.Base(e.node)
	pred := ""
	for _, n := range names {
		if sequence(n) < 0 {
			continue // not a candidate
		}
		if n == mine {
			if pred == "" {
				return "", nil
			}
			return path.Join(e.dir, pred), nil
		}
		pred = n
	}
	return "", errNodeGone
}

// lead runs lead until ctx ends, the session changes or our node disappears.
func (e *election) lead(ctx context.Context, changed <-chan struct{}, lead func(context.Context)) {
	exists, gone, err := e.conn.ExistsWatch(e.node)
	if err != nil || !exists {
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lctx.Done():
		case <-gone:
			e.log.Warn("election node gone while leading")
		case <-changed:
		}
		cancel()
	}()
	e.log.Info("leader elected", "node", path.Base(e.node))
	e.leader.Store(true)
	lead(lctx)
	e.leader.Store(false)
	e.log.Info("leadership released", "node", path.Base(e.node))
}

// leave deletes our candidate node, if it still belongs to the live session.
func (e *election) leave() {
	e.joined.Store(false)
	if e.node == "" {
		return
	}
	id, ok := e.conn.Session()
	if !ok || id != e.sessID {
		return // the node goes with its session
	}
	// A call made while ZooKeeper is unreachable waits; never let it hold up a shutdown.
	res := make(chan error, 1)
	go func() { res <- e.conn.DeleteOwned(e.node, e.sessID) }()
	select {
	case err := <-res:
		if err != nil {
			e.log.Warn("election leave failed", "err", err)
			return
		}
		e.log.Info("election left", "node", path.Base(e.node))
	case <-time.After(3 * time.Second):
		e.log.Warn("election leave timed out", "node", path.Base(e.node))
	}
}

// sequence returns the 10-digit sequence number ZooKeeper appends to a sequential node's name;
// -1 for a name without one (sorted first, and never ours).
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
