// Package ttlcache keeps values in memory for a fixed time: the short-lived
// per-replica copies (members, sessions, rounds, tallies) that spare the
// database and Redis a read of something read many times a second. Each
// user of it says how stale another replica's copy may be.
package ttlcache

import (
	"sync"
	"time"
)

// Cache holds up to max values, each for ttl after it was put.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[K]entry[V]
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New makes a cache of values kept for ttl, at most max of them.
func New[K comparable, V any](ttl time.Duration, max int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, max: max, entries: map[K]entry[V]{}}
}

// Get returns the value put for k, unless it has expired.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || time.Now().After(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put keeps v for k. A full cache first drops what has expired, or
// everything if nothing has.
func (c *Cache[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(k, v)
}

func (c *Cache[K, V]) put(k K, v V) {
	if len(c.entries) >= c.max {
		now := time.Now()
		for key, e := range c.entries {
			if now.After(e.until) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[k] = entry[V]{v: v, until: time.Now().Add(c.ttl)}
}

// Add keeps v for k unless k holds a value that has not expired: for a
// reader whose value may be older than one put meanwhile.
func (c *Cache[K, V]) Add(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; !ok || time.Now().After(e.until) {
		c.put(k, v)
	}
}

// Forget drops k.
func (c *Cache[K, V]) Forget(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}

// Clear drops everything.
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
