package members

import (
	"sync"
	"time"
)

// memberCacheTTL bounds how long another replica may serve a member's
// previous email, name or role after a change; this replica forgets a
// member at once when it changes one. /api/v1/me is read on every page view
// of a signed-in reader, so most reads are the same few members again.
const memberCacheTTL = time.Second

const memberCacheMax = 50_000

type cachedMember struct {
	m  Member
	at time.Time
}

// memberCache keeps recently read members in memory for memberCacheTTL.
type memberCache struct {
	mu      sync.Mutex
	entries map[string]cachedMember
}

func newMemberCache() *memberCache { return &memberCache{entries: map[string]cachedMember{}} }

func (c *memberCache) get(id string) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || time.Since(e.at) > memberCacheTTL {
		return Member{}, false
	}
	return e.m, true
}

func (c *memberCache) put(m Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= memberCacheMax {
		// Full: drop expired entries, or everything if none has expired.
		for id, e := range c.entries {
			if time.Since(e.at) > memberCacheTTL {
				delete(c.entries, id)
			}
		}
		if len(c.entries) >= memberCacheMax {
			clear(c.entries)
		}
	}
	c.entries[m.ID] = cachedMember{m: m, at: time.Now()}
}

func (c *memberCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}
