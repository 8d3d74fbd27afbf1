package scrap

import (
	"container/list"
	"sync"
	"time"
)

// ttlCache is a bounded map whose entries expire: least recently used entries are evicted when it
// is full, expired ones when they are next looked at. One mutex is enough: an operation is a map
// access and a list move, far cheaper than the fetch it saves.
type ttlCache[V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front = most recently used
	items map[string]*list.Element
	now   func() time.Time
}

type ttlEntry[V any] struct {
	key     string
	val     V
	expires time.Time
}

func newTTLCache[V any](max int, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{max: max, ll: list.New(), items: map[string]*list.Element{}, now: now}
}

// Get returns the live value under key.
func (c *ttlCache[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*ttlEntry[V])
	if !c.now().Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, key)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.val, true
}

// Put stores val under key for ttl, evicting the least recently used entry when full.
func (c *ttlCache[V]) Put(key string, val V, ttl time.Duration) {
	if c.max <= 0 || ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp := c.now().Add(ttl)
	if el, ok := c.items[key]; ok {
		e := el.Value.(*ttlEntry[V])
		e.val, e.expires = val, exp
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&ttlEntry[V]{key: key, val: val, expires: exp})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*ttlEntry[V]).key)
	}
}

// Len returns the number of entries, expired ones included until they are looked at or evicted.
func (c *ttlCache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
