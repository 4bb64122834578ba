package web

import (
	"container/list"
	"sync"
)

// lru is a small, safe-for-concurrent-use cache that forgets its least recently used
// entries once it holds more than max of them (or, with a size function, more than max
// units of size).
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	used  int
	size  func(V) int // nil counts every entry as 1
	items map[K]*list.Element
	order list.List // front: most recently used
}

type lruItem[K comparable, V any] struct {
	key K
	val V
	n   int
}

func newLRU[K comparable, V any](max int, size func(V) int) *lru[K, V] {
	return &lru[K, V]{max: max, size: size, items: map[K]*list.Element{}}
}

func (c *lru[K, V]) get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[K, V]) put(key K, val V) {
	n := 1
	if c.size != nil {
		n = c.size(val)
	}
	if n > c.max {
		return // larger than the whole cache: not worth keeping
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		it := e.Value.(*lruItem[K, V])
		c.used += n - it.n
		it.val, it.n = val, n
		c.order.MoveToFront(e)
	} else {
		c.items[key] = c.order.PushFront(&lruItem[K, V]{key: key, val: val, n: n})
		c.used += n
	}
	for c.used > c.max {
		e := c.order.Back()
		it := e.Value.(*lruItem[K, V])
		c.order.Remove(e)
		delete(c.items, it.key)
		c.used -= it.n
	}
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
