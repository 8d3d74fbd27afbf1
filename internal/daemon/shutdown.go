package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Service is a daemon's server as the life cycle drives it.
type Service interface {
	// Run serves until ctx ends or serving fails. A server that stops accepting and drains on its
	// own when ctx ends does so before returning; one that does not implements Drainer.
	Run(ctx context.Context) error
}

// Drainer is a Service whose stop is a step of its own, taken after Run has returned.
type Drainer interface {
	// Shutdown stops accepting and waits for in-flight work until ctx ends.
	Shutdown(ctx context.Context) error
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(ctx context.Context) error

// Run calls f.
func (f ServiceFunc) Run(ctx context.Context) error { return f(ctx) }

// step is one named shutdown action.
type step struct {
	name string
	fn   func() error
}

// Shutdown holds the steps of the one ordered shutdown: deregistrations first, then (in Serve)
// the service stops accepting and drains, then dependencies close in reverse order of Defer.
type Shutdown struct {
	log *slog.Logger

	mu      sync.Mutex
	deregs  []step
	closers []step
}

// NewShutdown returns an empty shutdown that logs its failures to log.
func NewShutdown(log *slog.Logger) *Shutdown { return &Shutdown{log: log} }

// Deregister adds a step taken first on shutdown, before the service stops accepting, so
// callers stop routing here while in-flight requests still finish.
func (s *Shutdown) Deregister(name string, fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deregs = append(s.deregs, step{name, fn})
}

// Defer adds a dependency to close after the drain; the last one added closes first.
func (s *Shutdown) Defer(name string, fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, step{name, fn})
}

// Serve runs svc until ctx ends or svc fails, then shuts down within drain: deregister, cancel
// svc's context (it stops accepting), wait for Run, Drainer.Shutdown; then closes the deferred
// dependencies in reverse order. Past the drain deadline the dependencies close anyway, which
// ends whatever svc still waits on, and Serve waits for Run to return. It returns Run's error.
func (s *Shutdown) Serve(ctx context.Context, svc Service, drain time.Duration) error {
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	done := make(chan error, 1)
	go func() { done <- svc.Run(serveCtx) }()
	var runErr error
	returned := false
	select {
	case <-ctx.Done():
	case runErr = <-done:
		returned = true
	}
	s.log.Info("shutting down", "drain", drain)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	s.deregisterAll(dctx)
	stopServing()
	if !returned {
		select {
		case runErr = <-done:
			returned = true
		case <-dctx.Done():
			s.log.Warn("drain deadline passed; closing dependencies", "drain", drain)
		}
	}
	if d, ok := svc.(Drainer); ok {
		if err := d.Shutdown(dctx); err != nil {
			s.log.Warn("drain incomplete", "err", err)
		}
	}
	s.closeAll()
	if !returned {
		runErr = <-done
	}
	s.log.Info("stopped")
	return runErr
}

// deregisterAll takes every registration back, in the order they were made, giving up on one
// still waiting on ZooKeeper when ctx ends.
func (s *Shutdown) deregisterAll(ctx context.Context) {
	s.mu.Lock()
	deregs := s.deregs
	s.deregs = nil
	s.mu.Unlock()
	for _, d := range deregs {
		if err := within(ctx, d.fn); err != nil {
			s.log.Warn("deregister failed", "what", d.name, "err", err)
		}
	}
}

// finish deregisters and closes whatever Serve did not: the path of a daemon whose set-up failed
// after it had registered or opened something.
func (s *Shutdown) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), finishLimit)
	defer cancel()
	s.deregisterAll(ctx)
	s.closeAll()
}

// finishLimit bounds the deregistrations of finish, which has no drain deadline of its own.
const finishLimit = 5 * time.Second

// closeAll closes the deferred dependencies, the last added first. A second call does nothing.
func (s *Shutdown) closeAll() {
	s.mu.Lock()
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].fn(); err != nil {
			s.log.Warn("close failed", "what", closers[i].name, "err", err)
		}
	}
}

// within runs f and waits for it until ctx ends; f then finishes in the background.
func within(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting: %w", ctx.Err())
	}
}
