package members

import (
	"time"

	"github.com/patronage/patronage/internal/ttlcache"
)

// memberCacheTTL bounds how long another replica may serve a member's
// previous email, name or role after a change; this replica forgets a
// member at once when it changes one. /api/v1/me is read on every page view
// of a signed-in reader, so most reads are the same few members again.
const memberCacheTTL = time.Second

// sessionCacheTTL is how long a replica takes a session it has just read
// as still valid without asking Redis: a patron casting three votes in a
// row slides their session once. A sign-out on this replica counts at once,
// on another within this time.
const sessionCacheTTL = time.Second

const cacheMax = 50_000

func newMemberCache() *ttlcache.Cache[string, Member] {
	return ttlcache.New[string, Member](memberCacheTTL, cacheMax)
}

// readSession is a session as read from Redis, at a time on the service's
// clock (which tests move).
type readSession struct {
	memberID string
	at       time.Time
}

// newSessionCache maps the hash of a session id to what was read of it.
func newSessionCache() *ttlcache.Cache[string, readSession] {
	return ttlcache.New[string, readSession](sessionCacheTTL, cacheMax)
}
