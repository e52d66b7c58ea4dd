package web

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
)

type auditEntryJSON struct {
	ID          string          `json:"id"`
	Actor       auditActorJSON  `json:"actor"`
	Action      string          `json:"action"`
	SubjectType string          `json:"subject_type"`
	SubjectID   string          `json:"subject_id"`
	Before      json.RawMessage `json:"before"`
	After       json.RawMessage `json:"after"`
	CreatedAt   string          `json:"created_at"`
}

type auditActorJSON struct {
	ID    *string `json:"id"` // null for the command line and the schedule
	Label string  `json:"label"`
}

// staffAudit lists the audit log of staff writes, newest first, a page at
// a time: next_cursor continues where a page ended.
func (s *Server) staffAudit(c *gin.Context) {
	q := members.AuditQuery{SubjectType: c.Query("subject_type"), SubjectID: c.Query("subject_id"), ActorID: c.Query("actor_id"), Limit: 50}
	fields := map[string]string{}
	for name, v := range map[string]string{"subject_type": q.SubjectType, "subject_id": q.SubjectID, "actor_id": q.ActorID} {
		if !validText(v) {
			fields[name] = "must be text (UTF-8, no NUL)"
		}
	}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 200 {
			fields["limit"] = "must be a whole number from 1 to 200"
		}
		q.Limit = n
	}
	if raw := c.Query("cursor"); raw != "" {
		after, ok := decodeAuditCursor(raw)
		if !ok {
			fields["cursor"] = "is not a cursor this API gave out"
		}
		q.After = &after
	}
	if len(fields) > 0 {
		s.fail(c, errs.InvalidFields(fields))
		return
	}
	entries, err := s.members.AuditLog(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]auditEntryJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, toAuditEntryJSON(e))
	}
	var next *string
	if len(entries) == q.Limit {
		cur := encodeAuditCursor(entries[len(entries)-1])
		next = &cur
	}
	c.JSON(http.StatusOK, gin.H{"entries": out, "next_cursor": next})
}

func toAuditEntryJSON(e members.AuditEntry) auditEntryJSON {
	return auditEntryJSON{ID: e.ID, Actor: auditActorJSON{ID: optional(e.ActorID), Label: e.ActorLabel}, Action: e.Action,
		SubjectType: e.SubjectType, SubjectID: e.SubjectID, Before: rawJSON(e.Before), After: rawJSON(e.After),
		CreatedAt: e.CreatedAt.Format(time.RFC3339Nano)}
}

func rawJSON(s string) json.RawMessage {
	if s == "" || !json.Valid([]byte(s)) {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

// An audit cursor is the last entry's time and id, opaque to clients.
func encodeAuditCursor(e members.AuditEntry) string {
	return base64.RawURLEncoding.EncodeToString([]byte(e.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + e.ID))
}

func decodeAuditCursor(raw string) (members.AuditEntry, bool) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return members.AuditEntry{}, false
	}
	at, id, ok := strings.Cut(string(b), "|")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || id == "" || !validText(id) {
		return members.AuditEntry{}, false
	}
	return members.AuditEntry{ID: id, CreatedAt: t}, true
}
