package postsvc

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestCoalescerAnswersEveryItemOnceInBoundedBatches adds items from many goroutines while each
// batch's send is held open, so later items must wait and go together: every item is sent exactly
// once, no batch exceeds max, and some batch holds more than one item.
func TestCoalescerAnswersEveryItemOnceInBoundedBatches(t *testing.T) {
	const items, limit = 500, 16
	var (
		mu      sync.Mutex
		seen    = map[int]int{}
		largest int
	)
	gate := make(chan struct{})
	c := coalescer[int]{max: limit, send: func(batch []int) {
		<-gate // the first batch waits until every item was added
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(batch))
		for _, i := range batch {
			seen[i]++
		}
	}}
	var added sync.WaitGroup
	added.Add(items)
	var done sync.WaitGroup
	for i := range items {
		done.Go(func() {
			added.Done()
			c.add(i)
		})
	}
	added.Wait()
	close(gate)
	done.Wait()
	// add returns to the caller that led a batch once it is sent; batches handed on to a new
	// goroutine may still run: wait until the coalescer is idle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		idle := !c.running && len(c.pending) == 0
		c.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the coalescer is still sending 10 s after the last add returned")
		}
		runtime.Gosched()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != items {
		t.Fatalf("%d items sent, want %d", len(seen), items)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("item %d sent %d times", i, n)
		}
	}
	if largest > limit {
		t.Fatalf("a batch of %d items, max %d", largest, limit)
	}
	if largest < 2 {
		t.Fatalf("largest batch %d: items that arrived during a send were not grouped", largest)
	}
}
