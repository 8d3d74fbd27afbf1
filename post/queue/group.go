package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Group enqueue: the writes of one postsvcd that arrive together share one LPUSH and one WAIT.
// A fixed set of pushers (groupPushers, one connection each) take the jobs waiting when they
// become free, up to groupMax, and push them as one LPUSH of several values followed by WAIT
// in the same round trip. Under load the jobs that arrive during one round trip form the next
// group, so a group forms without waiting: at most one round trip of the queue (well under
// 1 ms on loopback) is added to a write, and an idle postsvcd pushes each job alone.
//
// Each write keeps its own answer. The LPUSH is one command, so either every job of the group
// is in the list or none is; WAIT counts replicas that acknowledged the connection's last
// write, which covers every job of the group. When no replica acknowledged in time, every job
// is withdrawn by its exact bytes (one LREM each, pipelined): a job removed is refused
// (ErrNotReplicated), a job not found was taken by a worker and stands. When the push got no
// reply, each job is withdrawn the same way over a fresh connection, and any that cannot be
// proven gone gets ErrMaybeQueued.
//
// Two pushers: one group is in flight while the next forms. More pushers make smaller groups, and
// each group costs the queue primary and its replica a write and an fsync: with eight, writes/s
// at 64 connections were about 15 % lower and the queue Redis spent more CPU per post; with one,
// neither the rate nor the p99 at half load changed (docs/benchmarks.md, "The queue replica's
// fsync").
const (
	groupMax     = 64
	groupPushers = 2
)

// pushReq is one write waiting for its group.
type pushReq struct {
	ctx  context.Context
	body []byte
	done chan error
}

// pushers runs the target's pushers until stop closes.
func (e *Enqueuer) runPushers(t *target) {
	for range groupPushers {
		t.wg.Go(func() { e.pusher(t) })
	}
}

func (e *Enqueuer) pusher(t *target) {
	group := make([]*pushReq, 0, groupMax)
	for {
		select {
		case r := <-t.reqs:
			group = append(group[:0], r)
		case <-t.stop:
			e.failWaiting(t)
			return
		}
	gather:
		for len(group) < groupMax {
			select {
			case r := <-t.reqs:
				group = append(group, r)
			default:
				break gather
			}
		}
		e.pushGroup(t, group)
	}
}

// failWaiting answers the writes still queued for a closed target: nothing was sent.
func (e *Enqueuer) failWaiting(t *target) {
	for {
		select {
		case r := <-t.reqs:
			r.done <- fmt.Errorf("queue endpoint changed before the push: %w", ErrNoQueue)
		default:
			return
		}
	}
}

// pushGroup pushes the live requests of group in one round trip and answers each.
func (e *Enqueuer) pushGroup(t *target, group []*pushReq) {
	live := group[:0:0]
	var deadline time.Time
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // never sent
			continue
		}
		live = append(live, r)
		if d, ok := r.ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	ctx := context.Background()
	if !deadline.IsZero() { // the earliest caller's deadline bounds the round trip, as one write's did
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	errs := e.push(ctx, t, live)
	for i, r := range live {
		r.done <- errs[i]
	}
}

// push sends one LPUSH of every body, and WAIT 1 when a replica is attached, in one round trip,
// and returns each job's outcome.
func (e *Enqueuer) push(ctx context.Context, t *target, group []*pushReq) []error {
	bodies := make([][]byte, len(group))
	for i, r := range group {
		bodies[i] = r.body
	}
	c, err := t.pool.GetContext(ctx)
	if err != nil {
		return repeat(err, len(group)) // nothing was sent
	}
	defer c.Close()
	wait := t.replicas.waitFor(e.cfg.ReplicaWait)
	args := make([]any, 0, 1+len(bodies))
	args = append(args, e.k.jobs())
	for _, b := range bodies {
		args = append(args, b)
	}
	_ = c.Send("LPUSH", args...) // a failed Send fails the Do below
	if wait > 0 {
		_ = c.Send("WAIT", 1, waitMillis(wait))
	}
	replies, err := redis.Values(redis.DoContext(c, ctx, ""))
	if err != nil {
		return e.unanswered(ctx, t.addr, bodies, err)
	}
	if rerr, ok := replies[0].(redis.Error); ok {
		return repeat(fmt.Errorf("LPUSH: %w", rerr), len(group)) // refused: nothing was queued
	}
	e.markKnown(ctx, c, t)
	if wait <= 0 {
		return make([]error, len(group))
	}
	if n, err := redis.Int(replies[1], nil); err == nil && n >= 1 {
		return make([]error, len(group))
	}
	return e.unreplicated(ctx, c, t.addr, bodies, wait)
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
