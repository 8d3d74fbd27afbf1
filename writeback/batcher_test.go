package writeback

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/the-red/zkpost/internal/post"
)

// fakeDB is a commitFunc that records batches and can be made to fail or block.
type fakeDB struct {
	mu      sync.Mutex
	batches [][]uint64
	fail    error
	gate    chan struct{} // when set, commits wait for it
}

func (f *fakeDB) commit(ctx context.Context, posts []post.Post) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	ids := make([]uint64, len(posts))
	for i, p := range posts {
		ids[i] = p.ID
	}
	f.batches = append(f.batches, ids)
	return nil
}

func (f *fakeDB) committed() map[uint64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint64]int{}
	for _, b := range f.batches {
		for _, id := range b {
			out[id]++
		}
	}
	return out
}

func newTestBatcher(f *fakeDB, max int) *batcher {
	b := newBatcher(f.commit, max, 5*time.Millisecond, time.Second, time.Now, newMetrics(nil))
	go b.run()
	return b
}

func TestBatcherGroupsConcurrentWrites(t *testing.T) {
	f := &fakeDB{gate: make(chan struct{})}
	b := newTestBatcher(f, 16)
	defer b.close()
	const n = 100
	var wg sync.WaitGroup
	var released atomic.Int64
	for i := range n {
		wg.Go(func() {
			if err := b.write(context.Background(), post.Post{ID: uint64(i + 1)}); err != nil {
				t.Errorf("write(%d): %v", i+1, err)
			}
			released.Add(1)
		})
	}
	// Nothing is acknowledged while the first commit is held.
	for range 3 {
		if r := released.Load(); r != 0 {
			t.Fatalf("%d writers released before any commit", r)
		}
		runtime.Gosched()
	}
	close(f.gate)
	wg.Wait()
	got := f.committed()
	if len(got) != n {
		t.Errorf("committed %d distinct posts, want %d", len(got), n)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("post %d committed %d times, want 1", id, c)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) >= n {
		t.Errorf("%d statements for %d concurrent posts; want fewer", len(f.batches), n)
	}
	for _, batch := range f.batches {
		if len(batch) > 16 {
			t.Errorf("batch of %d posts exceeds the maximum 16", len(batch))
		}
	}
}

func TestBatcherFailsTheWholeBatch(t *testing.T) {
	boom := errors.New("database down")
	f := &fakeDB{fail: boom}
	b := newTestBatcher(f, 8)
	defer b.close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := b.write(context.Background(), post.Post{ID: uint64(i + 1)}); !errors.Is(err, boom) {
				t.Errorf("write(%d) = %v, want %v", i+1, err, boom)
			}
		})
	}
	wg.Wait()
}

func TestBatcherWriteBoundedByContext(t *testing.T) {
	f := &fakeDB{gate: make(chan struct{})} // never opened: commits hang until their timeout
	b := newTestBatcher(f, 8)
	defer b.close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.write(ctx, post.Post{ID: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("write with a hung database = %v, want DeadlineExceeded", err)
	}
}

func TestBatcherAfterClose(t *testing.T) {
	b := newTestBatcher(&fakeDB{}, 8)
	b.close()
	if err := b.write(context.Background(), post.Post{ID: 1}); !errors.Is(err, errStopped) {
		t.Errorf("write after close = %v, want errStopped", err)
	}
}
