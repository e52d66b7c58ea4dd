package main

import (
	"context"
	"database/sql"
	"log/slog"
	"time"

	"github.com/patronage/patronage/billing"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

// voters tells voting who may vote and what their ballot weighs, from
// billing's access and tiers: voting and billing never import each other.
type voters struct{ billing *billing.Service }

var _ voting.Eligibility = voters{}

func (v voters) Voters(ctx context.Context, tx *sql.Tx, memberIDs []string, weights bool) (map[string]voting.Voter, error) {
	access, err := v.billing.AccessShared(ctx, tx, memberIDs, weights)
	if err != nil {
		return nil, err
	}
	out := make(map[string]voting.Voter, len(access))
	for id, a := range access {
		if a.Active {
			out[id] = voting.Voter{Active: true, Weight: a.VoteWeight}
		}
	}
	return out, nil
}

// withdrawOnLostAccess takes back the votes in open rounds of every member
// billing says has lost access.
func withdrawOnLostAccess(b *billing.Service, v *voting.Service, logger *slog.Logger) {
	b.OnAccessChange(func(c billing.AccessChange) {
		if !c.Before.Active || c.After.Active {
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			n, err := v.WithdrawMemberVotes(ctx, c.MemberID)
			if err != nil {
				logger.Error("withdraw votes of a member who lost access", "member_id", c.MemberID, "err", err)
				return
			}
			if n > 0 {
				logger.Info("withdrew votes of a member who lost access", "member_id", c.MemberID, "votes", n)
			}
		}()
	})
}

// mailCoveredTopic queues, in the transaction that marks a topic covered,
// a mail with the article's link to every patron who voted for it.
func mailCoveredTopic(m *members.Service) func(ctx context.Context, tx *sql.Tx, t voting.Topic, articleURL string, voterIDs []string) error {
	return func(ctx context.Context, tx *sql.Tx, t voting.Topic, articleURL string, voterIDs []string) error {
		return m.MailTopicCovered(ctx, tx, voterIDs, t.Title, articleURL)
	}
}
