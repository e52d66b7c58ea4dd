package members_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/internal/testenv"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/outgoing"
)

// The newsroom hears of every new member, whichever way they came, and of
// an erasure; erasing a member also scrubs them from the events not yet
// delivered.
func TestMembersComingAndGoingAreToldToTheNewsroom(t *testing.T) {
	testenv.EachMigratedDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		hooks := outgoing.NewService(outgoing.Deps{DB: db})
		url, events := "https://93.184.215.14/hooks", []string{outgoing.MemberCreated, outgoing.MemberDeleted}
		if _, _, err := hooks.CreateEndpoint(ctx, members.CommandLine, outgoing.EndpointInput{URL: &url, Events: &events}); err != nil {
			t.Fatal(err)
		}
		s := members.NewService(members.Deps{DB: db, Events: hooks, Logger: testenv.Logger()})
		created, err := s.CreateMember(ctx, members.CommandLine, "kept@example.org", "Kept")
		if err != nil {
			t.Fatal(err)
		}
		gone, err := s.FindOrCreateMember(ctx, "gone@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateMember(ctx, members.CommandLine, "kept@example.org", "Again"); err == nil {
			t.Fatal("a second account for the same address")
		}
		payloads := func() map[string]string {
			rows, err := db.Query(`SELECT type, member_id, payload FROM outgoing_events`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[string]string{}
			for rows.Next() {
				var typ, payload string
				var member *string
				if err := rows.Scan(&typ, &member, &payload); err != nil {
					t.Fatal(err)
				}
				key := typ
				if member != nil {
					key += " " + *member
				}
				out[key] = payload
			}
			return out
		}
		got := payloads()
		if len(got) != 2 || !strings.Contains(got["member.created "+created.ID], `"email":"kept@example.org"`) ||
			!strings.Contains(got["member.created "+gone.ID], `"email":"gone@example.org"`) {
			t.Fatalf("events %v: want member.created for each new member, once", got)
		}
		if err := s.EraseMember(ctx, members.CommandLine, gone.ID, nil); err != nil {
			t.Fatal(err)
		}
		got = payloads()
		if len(got) != 3 || strings.Contains(strings.Join(slices.Collect(maps.Values(got)), " "), "gone@example.org") {
			t.Fatalf("after the erasure: %v: want member.deleted and no trace of the address", got)
		}
		var deleted string
		for k, v := range got {
			if strings.HasPrefix(k, "member.deleted") {
				deleted = v
			}
		}
		if !strings.Contains(deleted, gone.ID) {
			t.Fatalf("member.deleted %q does not name %s", deleted, gone.ID)
		}
	})
}
