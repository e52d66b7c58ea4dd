package members

import (
	"context"
	"database/sql"
)

// EventSink hears what happens to members, patrons and rounds, inside the
// transaction that makes it happen: the event exists exactly when the
// change does. The outgoing webhooks (package outgoing) are one; members,
// billing and voting tell it, and a nil sink hears nothing.
type EventSink interface {
	// Emit records an event of type typ about memberID ("" for none)
	// carrying data, which is marshalled as JSON.
	Emit(ctx context.Context, tx *sql.Tx, typ, memberID string, data any) error
	// ScrubMember leaves no personal data of an erased member (by id, or
	// by address where a record has no member) in the events it keeps.
	ScrubMember(ctx context.Context, tx *sql.Tx, memberID, email string) error
}

// MemberJSON is a member as events describe them.
type MemberJSON struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}
