package postsvc

import (
	"runtime"
	"sync"
)

// coalescer groups the calls that arrive while a batch is in flight into the next batch: the
// first caller sends a batch of its own; callers that arrive during that round trip wait and go
// together in the next one, up to max. Under load a batch forms without any waiting window; an
// idle process sends each call alone. No goroutine runs while nothing waits.
//
// Every call is sent after it arrived, so a batch sees every write acknowledged before any of its
// calls began (what tokens.go's read-your-writes relies on). Callers wait on their own item for
// send to answer them; send must answer every item of the batch it is given.
type coalescer[T any] struct {
	max     int
	send    func(batch []T)
	mu      sync.Mutex
	pending []T
	running bool
}

// add queues item and, when no batch is being sent, sends the waiting items itself.
func (c *coalescer[T]) add(item T) {
	c.mu.Lock()
	c.pending = append(c.pending, item)
	lead := !c.running
	c.running = true
	c.mu.Unlock()
	if lead {
		// Let the calls made runnable together with this one (the writes of one queue group are
		// answered at once) join its batch before it is taken.
		runtime.Gosched()
		c.flush()
	}
}

// flush sends one batch of the waiting items; while more wait, it hands on to a new goroutine, so
// that the caller that started it is not kept sending the batches of others.
func (c *coalescer[T]) flush() {
	c.mu.Lock()
	batch := c.pending
	if len(batch) > c.max {
		batch, c.pending = batch[:c.max:c.max], batch[c.max:]
	} else {
		c.pending = nil
	}
	if len(batch) == 0 {
		c.running = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.send(batch)
	c.mu.Lock()
	more := len(c.pending) > 0
	c.running = more
	c.mu.Unlock()
	if more {
		go c.flush()
	}
}
