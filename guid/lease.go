package guid

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/the-red/zkpost/discovery"
)

// retryDelay is how long the lease loop waits after a failed ZooKeeper call (or less, when the
// session changes).
const retryDelay = 500 * time.Millisecond

// clockPoll is how often a server whose clock is behind the stored bound checks again.
const clockPoll = 200 * time.Millisecond

// errLeaseLost means a ZooKeeper read showed the lease (or the clock node) is no longer ours.
var errLeaseLost = errors.New("lease lost")

// lease is one held worker-id lease. The request path reads it through Server.cur.
type lease struct {
	worker  int
	session int64

	// confirmed is when (Server.mono) the last round trip that found the lease node owned by
	// session was sent; IDs are issued only within sessionTimeout/2 of it.
	confirmed atomic.Int64
	// clockOK is set once the stored clock bound is written and gen may issue; gen is written
	// before it and never changed after.
	clockOK atomic.Bool
	gen     *Generator
	// behindUntil is the stored bound (Unix ms) while the clock reads earlier; 0 otherwise.
	behindUntil atomic.Int64
}

// clockState is what this process last wrote to one worker id's clock node.
type clockState struct {
	gen     *Generator
	written int64 // Unix ms
	version int32
}

// leaseLoop holds a lease whenever there is a session, until ctx ends.
func (s *Server) leaseLoop(ctx context.Context) {
	for ctx.Err() == nil {
		session, err := s.conn.WaitSession(ctx)
		if err != nil {
			return
		}
		changed := s.conn.Changed()
		sent := s.mono()
		worker, err := s.claim(session)
		if err != nil {
			s.log.Warn("lease failed", "err", err)
			s.m.leaseFailures.Inc()
			discovery.Pause(ctx, changed, retryDelay)
			continue
		}
		l := &lease{worker: worker, session: session}
		l.confirmed.Store(sent)
		if lost := s.hold(ctx, l, changed); lost {
			discovery.Pause(ctx, nil, retryDelay) // whatever took it may still be there: do not spin
		}
	}
}

// claim leases a worker id: the one held before if it is still free (a reconnect keeps its id),
// else the lowest free one.
func (s *Server) claim(session int64) (int, error) {
	order := make([]int, 0, MaxWorkers+1)
	if s.prevWorker >= 0 {
		order = append(order, s.prevWorker)
	}
	for n := range MaxWorkers {
		order = append(order, n)
	}
	dir := s.layout.GuidWorkers(s.cfg.Datacenter)
	for _, n := range order {
		err := s.conn.CreateEphemeral(path.Join(dir, strconv.Itoa(n)), []byte(s.advertise), session, false)
		if errors.Is(err, discovery.ErrOwnedByOther) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("leasing worker id %d: %w", n, err)
		}
		s.prevWorker = n
		return n, nil
	}
	return 0, fmt.Errorf("leasing a worker id: all %d of datacenter %d are taken", MaxWorkers, s.cfg.Datacenter)
}

// hold serves under lease l until the session changes, the lease is lost (reported true) or ctx
// ends.
func (s *Server) hold(ctx context.Context, l *lease, changed <-chan struct{}) bool {
	log := s.log.With("worker", l.worker, "session", fmt.Sprintf("%#x", l.session))
	log.Info("lease acquired")
	s.m.leaseChanges.Inc()
	s.cur.Store(l)
	lctx, cancel := context.WithCancel(ctx)
	lost := make(chan error, 2)
	go s.heartbeat(lctx, l, lost)
	go s.keepClock(lctx, l, lost)
	var why any = "shutdown"
	wasLost := false
	select {
	case <-ctx.Done():
	case <-changed:
		why = "session changed"
	case err := <-lost:
		why, wasLost = err, true
	}
	cancel()
	s.cur.CompareAndSwap(l, nil) // issuance stops here, before anything slow
	if ctx.Err() != nil {
		s.release(l)
		log.Info("lease released")
		return false
	}
	if l.clockOK.Load() {
		l.gen.Seal()
	}
	log.Warn("lease suspended", "why", why)
	return wasLost
}

// heartbeat confirms the lease every sessionTimeout/4 with a round trip to its node.
func (s *Server) heartbeat(ctx context.Context, l *lease, lost chan<- error) {
	p := path.Join(s.layout.GuidWorkers(s.cfg.Datacenter), strconv.Itoa(l.worker))
	t := time.NewTicker(max(s.cfg.SessionTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := s.mono()
		exists, stat, err := s.conn.Exists(p)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			s.log.Warn("lease heartbeat failed", "worker", l.worker, "err", err)
		case !exists || stat.EphemeralOwner != l.session:
			lost <- fmt.Errorf("lease node %s: %w", p, errLeaseLost)
			return
		case sent > l.confirmed.Load():
			l.confirmed.Store(sent)
		}
	}
}

// keepClock waits until the clock has passed the stored bound, opens issuance, registers, and
// then keeps the bound ahead of now.
func (s *Server) keepClock(ctx context.Context, l *lease, lost chan<- error) {
	if !s.awaitClock(ctx, l) {
		return
	}
	// Registered only once it can serve, so clients are not sent to a server that must wait for
	// its clock; a changed worker id re-registers with the new shard.
	s.register(l.worker)
	t := time.NewTicker(s.cfg.ClockRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.refreshClock(ctx, l); err != nil {
			if errors.Is(err, errLeaseLost) {
				lost <- err
				return
			}
			// Not fatal yet: the generator stops by itself when now reaches the stored bound.
			s.log.Warn("clock refresh failed", "worker", l.worker, "err", err)
		}
	}
}

// awaitClock polls syncClock until issuance is open (true) or ctx ends (false). A lost lease
// shows in the heartbeat, which ends ctx.
func (s *Server) awaitClock(ctx context.Context, l *lease) bool {
	for {
		ok, err := s.syncClock(ctx, l)
		if err != nil {
			s.log.Warn("clock sync failed", "worker", l.worker, "err", err)
		}
		if ok {
			return true
		}
		if !sleepCtx(ctx, clockPoll) {
			return false
		}
	}
}

// syncClock reads the stored bound of l's worker id and, when the clock has passed it (or the
// bound is the one this process last wrote), writes a new bound and opens issuance.
func (s *Server) syncClock(ctx context.Context, l *lease) (bool, error) {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	if ctx.Err() != nil {
		return false, nil
	}
	p := s.layout.GuidClock(s.cfg.Datacenter, l.worker)
	stored, version, err := s.readClock(p)
	if err != nil {
		return false, err
	}
	st := s.clocks[l.worker]
	gen := (*Generator)(nil)
	if st != nil && st.version == version && st.written == stored {
		gen = st.gen // nobody else issued under this id since we did: go on from where we were
	} else {
		if now := s.now().UnixMilli(); now < stored {
			if l.behindUntil.Swap(stored) != stored {
				s.log.Warn("clock behind stored bound", "worker", l.worker, "stored_ms", stored, "behind", time.Duration(stored-now)*time.Millisecond)
			}
			return false, nil
		}
		gen, err = NewGenerator(s.cfg.Datacenter, l.worker, Options{
			Now: s.now, MaxStepBack: s.cfg.MaxClockStepBack, FloorUnixMs: stored, Counters: &s.counters,
		})
		if err != nil {
			return false, err
		}
	}
	written, version, err := s.writeClock(p, max(s.bound(), stored), version)
	if errors.Is(err, discovery.ErrBadVersion) || errors.Is(err, discovery.ErrNodeExists) {
		return false, nil // written meanwhile (a former holder's last refresh): read again
	}
	if err != nil {
		return false, err
	}
	gen.SetLimit(written)
	s.clocks[l.worker] = &clockState{gen: gen, written: written, version: version}
	l.gen = gen
	l.behindUntil.Store(0)
	l.clockOK.Store(true)
	s.log.Info("clock synced", "worker", l.worker, "stored_ms", stored, "bound_ms", written)
	return true, nil
}

// refreshClock pushes the stored bound ahead; a version mismatch means another server wrote it,
// so the lease is gone.
func (s *Server) refreshClock(ctx context.Context, l *lease) error {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	st := s.clocks[l.worker]
	if ctx.Err() != nil || st == nil {
		return nil
	}
	written, version, err := s.writeClock(s.layout.GuidClock(s.cfg.Datacenter, l.worker), max(s.bound(), st.written), st.version)
	if errors.Is(err, discovery.ErrBadVersion) || errors.Is(err, discovery.ErrNoNode) {
		return fmt.Errorf("clock node written by another server: %w", errLeaseLost)
	}
	if err != nil {
		return err
	}
	st.written, st.version = written, version
	st.gen.SetLimit(written)
	return nil
}

// release ends l on shutdown: seal its generator, store the exact bound (one past the last issued
// millisecond) so a restart need not wait, and delete the lease node. Bounded in time, since
// ZooKeeper may be unreachable; the session close deletes the node anyway.
func (s *Server) release(l *lease) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.clockMu.Lock()
		defer s.clockMu.Unlock()
		if st := s.clocks[l.worker]; st != nil && l.clockOK.Load() {
			next := st.gen.Seal()
			if next < st.written {
				_, _, err := s.writeClock(s.layout.GuidClock(s.cfg.Datacenter, l.worker), next, st.version)
				if err != nil {
					s.log.Warn("storing exact clock failed", "worker", l.worker, "err", err)
				}
			}
			delete(s.clocks, l.worker)
		}
		p := path.Join(s.layout.GuidWorkers(s.cfg.Datacenter), strconv.Itoa(l.worker))
		if err := s.conn.DeleteOwned(p, l.session); err != nil {
			s.log.Warn("deleting lease failed", "worker", l.worker, "err", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		s.log.Warn("releasing lease timed out", "worker", l.worker)
	}
}

// bound is the clock bound to store now: IDs stay below it until the next-but-one refresh.
func (s *Server) bound() int64 {
	return s.now().Add(2 * s.cfg.ClockRefresh).UnixMilli()
}

// readClock returns the stored bound and the node's version; a missing node reads as 0, -1.
func (s *Server) readClock(p string) (int64, int32, error) {
	data, stat, err := s.conn.Get(p)
	if errors.Is(err, discovery.ErrNoNode) {
		return 0, -1, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", p, err)
	}
	v, err := ParseStoredClock(data)
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", p, err)
	}
	return v, stat.Version, nil
}

// writeClock stores ms at p if its version is still version (-1: create it).
func (s *Server) writeClock(p string, ms int64, version int32) (int64, int32, error) {
	data := []byte(strconv.FormatInt(ms, 10))
	if version == -1 {
		if err := s.conn.EnsurePath(path.Dir(p)); err != nil {
			return 0, 0, err
		}
		if err := s.conn.Create(p, data); err != nil {
			return 0, 0, fmt.Errorf("creating %s: %w", p, err)
		}
		return ms, 0, nil
	}
	stat, err := s.conn.Set(p, data, version)
	if err != nil {
		return 0, 0, fmt.Errorf("writing %s: %w", p, err)
	}
	return ms, stat.Version, nil
}

// ParseStoredClock parses a clock node's data: Unix milliseconds in decimal; empty is 0.
func ParseStoredClock(data []byte) (int64, error) {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("stored clock %q: want Unix milliseconds", s)
	}
	return v, nil
}

// sleepCtx waits d and reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
