package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/voting"
)

// streamInterval is the least time between two tally updates a client gets:
// at most two a second, however fast votes come.
const streamInterval = 500 * time.Millisecond

// StopStreams ends every live stream, so a shutdown does not wait for
// clients that would listen forever.
func (s *Server) StopStreams() { s.stopStreams.Do(func() { close(s.streamsDone) }) }

// roundStream sends a round's live changes as Server-Sent Events: "tally"
// events with the counts (never for a sealed round), "open" first and
// "closed" when it closes. Changes come through Redis pub/sub, so a vote
// cast on any replica reaches every client.
func (s *Server) roundStream(c *gin.Context) {
	v, ok := s.votingService(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	r, err := v.FindRound(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	events, err := v.Listen(ctx, r.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	// A stream outlives the server's write timeout by design.
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)

	send := func(event string, data any) bool {
		b, _ := json.Marshal(data)
		if _, err := fmt.Fprintf(c.Writer, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		c.Writer.Flush()
		return true
	}
	sendTally := func() bool {
		if !r.TalliesVisible(time.Now()) {
			return true
		}
		tally, err := v.TallyOf(ctx, r.ID)
		if err != nil {
			return false
		}
		return send("tally", gin.H{"tally": tallyOf(r.TopicIDs, tally)})
	}
	if r.ClosedAt != nil {
		send("closed", gin.H{"round_id": r.ID})
		return
	}
	if !send("open", gin.H{"round_id": r.ID, "closes_at": rfc3339(r.ClosesAt)}) || !sendTally() {
		return
	}
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streamsDone:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev == voting.EventClosed {
				send("closed", gin.H{"round_id": r.ID})
				return
			}
			if ev == voting.EventRound {
				// Staff changed the round (its closing time, say): what
				// may be shown follows the new definition.
				if r, err = v.FindRound(ctx, r.ID); err != nil {
					return
				}
			}
			dirty = true
		case <-tick.C:
			if dirty {
				dirty = false
				if !sendTally() {
					return
				}
			}
		case <-keepalive.C:
			if _, err := fmt.Fprint(c.Writer, ": keepalive\n\n"); err != nil {
				return
			}
			c.Writer.Flush()
		}
	}
}
