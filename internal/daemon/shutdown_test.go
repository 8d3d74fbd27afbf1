package daemon

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is the fake every step writes its name to, in the order they run.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) step(e string) func() error { return func() error { r.add(e); return nil } }

// fakeService records when its Run sees ctx end and when its Shutdown runs.
type fakeService struct {
	rec      *recorder
	runErr   error // returned at once when set: serving failed
	shutdown func(ctx context.Context) error
}

func (f *fakeService) Run(ctx context.Context) error {
	if f.runErr != nil {
		f.rec.add("run failed")
		return f.runErr
	}
	<-ctx.Done()
	f.rec.add("stop accepting")
	return nil
}

func (f *fakeService) Shutdown(ctx context.Context) error {
	f.rec.add("drain")
	if f.shutdown != nil {
		return f.shutdown(ctx)
	}
	return nil
}

func newTestShutdown(rec *recorder) *Shutdown {
	s := NewShutdown(slog.New(slog.DiscardHandler))
	s.Defer("zookeeper", rec.step("close zookeeper"))
	s.Defer("db", rec.step("close db"))
	s.Deregister("node a", rec.step("deregister a"))
	s.Defer("queue", rec.step("close queue"))
	s.Deregister("node b", rec.step("deregister b"))
	return s
}

func TestServeShutdownOrder(t *testing.T) {
	want := []string{"deregister a", "deregister b", "stop accepting", "drain",
		"close queue", "close db", "close zookeeper"}
	rec := &recorder{}
	s := newTestShutdown(rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, &fakeService{rec: rec}, time.Minute) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: got %v, want nil", err)
	}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("shutdown order: got %v, want %v", got, want)
	}
	s.finish() // Run's deferred finish after Serve: nothing runs twice
	if got := rec.got(); len(got) != len(want) {
		t.Fatalf("after finish: got %v, want nothing more", got)
	}
}

func TestServeFailureShutsDownTheSameWay(t *testing.T) {
	rec := &recorder{}
	s := newTestShutdown(rec)
	boom := errors.New("listener closed")
	err := s.Serve(context.Background(), &fakeService{rec: rec, runErr: boom}, time.Minute)
	if !errors.Is(err, boom) {
		t.Fatalf("Serve: got %v, want %v", err, boom)
	}
	want := []string{"run failed", "deregister a", "deregister b", "drain",
		"close queue", "close db", "close zookeeper"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("order: got %v, want %v", got, want)
	}
}

// A drain that never finishes by itself must not hold the exit: past the deadline the
// dependencies close, and a Run waiting on one of them returns.
func TestServeDrainDeadline(t *testing.T) {
	rec := &recorder{}
	s := NewShutdown(slog.New(slog.DiscardHandler))
	released := make(chan struct{})
	s.Defer("dependency", func() error { rec.add("close dependency"); close(released); return nil })
	svc := ServiceFunc(func(ctx context.Context) error {
		<-released // a Run stuck on a dependency until it closes
		rec.add("run returned")
		return nil
	})
	start := time.Now()
	if err := s.Serve(canceled(), svc, 50*time.Millisecond); err != nil {
		t.Fatalf("Serve: got %v, want nil", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("Serve returned after %v, before the drain deadline", el)
	}
	want := []string{"close dependency", "run returned"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("order: got %v, want %v", got, want)
	}
}

// A drain step gets the deadline: its context ends at the drain limit.
func TestServeDrainGetsDeadline(t *testing.T) {
	rec := &recorder{}
	s := NewShutdown(slog.New(slog.DiscardHandler))
	var drainErr error
	svc := &fakeService{rec: rec, shutdown: func(ctx context.Context) error {
		<-ctx.Done()
		drainErr = ctx.Err()
		return drainErr
	}}
	if err := s.Serve(canceled(), svc, 20*time.Millisecond); err != nil {
		t.Fatalf("Serve: got %v, want nil", err)
	}
	if !errors.Is(drainErr, context.DeadlineExceeded) {
		t.Fatalf("drain context ended with %v, want %v", drainErr, context.DeadlineExceeded)
	}
}

// A deregistration stuck on an unreachable ZooKeeper gives up at the deadline, and the
// shutdown goes on.
func TestDeregisterGivesUpAtDeadline(t *testing.T) {
	rec := &recorder{}
	s := NewShutdown(slog.New(slog.DiscardHandler))
	stuck := make(chan struct{})
	defer close(stuck)
	s.Deregister("stuck", func() error { <-stuck; return nil })
	s.Defer("db", rec.step("close db"))
	if err := s.Serve(canceled(), &fakeService{rec: rec}, 20*time.Millisecond); err != nil {
		t.Fatalf("Serve: got %v, want nil", err)
	}
	// Past the deadline the service's stop and the closing race; both happen, and drain
	// comes after the stop was asked for.
	got := rec.got()
	for _, e := range []string{"stop accepting", "drain", "close db"} {
		if !slices.Contains(got, e) {
			t.Fatalf("events: got %v, want %q among them", got, e)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
