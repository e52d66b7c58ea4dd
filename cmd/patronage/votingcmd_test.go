package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patronage/patronage/internal/redisx"
	"github.com/patronage/patronage/internal/sqldb"
	"github.com/patronage/patronage/members"
	"github.com/patronage/patronage/voting"
)

type everyoneVotes struct{}

func (everyoneVotes) Voters(_ context.Context, _ *sql.Tx, memberIDs []string, _ bool) (map[string]voting.Voter, error) {
	out := map[string]voting.Voter{}
	for _, id := range memberIDs {
		out[id] = voting.Voter{Active: true, Weight: 1}
	}
	return out, nil
}

// verify finds what Redis lost, rebuild restores it from the ballots, and
// verify then finds nothing.
func TestVotingVerifyAndRebuild(t *testing.T) {
	env := map[string]string{"DATA_DIR": filepath.Join(t.TempDir(), "data")}
	startServer(t, env)
	ctx := context.Background()
	db, err := sqldb.Open(ctx, sqldb.Options{DataDir: env["DATA_DIR"]})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rdb, err := redisx.AttachShared(ctx, env["DATA_DIR"], "patronage:") // the default REDIS_KEY_PREFIX
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	v := voting.NewService(voting.Deps{DB: db, Redis: rdb, Eligibility: everyoneVotes{}})
	var topics []string
	for _, title := range []string{"Rivers", "Rents"} {
		tp, err := v.CreateTopic(ctx, members.CommandLine, title, "")
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, tp.ID)
	}
	r, err := v.CreateRound(ctx, members.CommandLine, voting.RoundInput{Title: "Next", OpensAt: time.Now().Add(-time.Hour), ClosesAt: time.Now().Add(time.Hour), TopicIDs: topics})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"mem_1", "mem_2"} {
		if _, err := v.CastVote(ctx, r.ID, m, topics[0]); err != nil {
			t.Fatal(err)
		}
	}
	if out, _, code := runCommand(t, env, "voting", "verify", r.ID); code != 0 || !strings.Contains(out, "matches") {
		t.Fatalf("verify of a healthy round: exit %d %s", code, out)
	}
	// Redis loses a vote set and a count.
	if err := rdb.Client.HDel(ctx, rdb.Key("tally", "{"+r.ID+"}", "votes"), "mem_2").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Client.ZIncrBy(ctx, rdb.Key("tally", "{"+r.ID+"}", "counts"), -1, topics[0]).Err(); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCommand(t, env, "voting", "verify")
	if code != 1 || !strings.Contains(out, "Redis 1, ballots 2") || !strings.Contains(out, "member mem_2: ballot for "+topics[0]+" missing") {
		t.Fatalf("verify after a loss: exit %d\n%s", code, out)
	}
	if out, stderr, code := runCommand(t, env, "voting", "rebuild"); code != 0 || !strings.Contains(out, "2 in all") {
		t.Fatalf("rebuild: exit %d %s %s", code, out, stderr)
	}
	if out, _, code := runCommand(t, env, "voting", "verify", r.ID); code != 0 {
		t.Errorf("verify after rebuild: exit %d %s", code, out)
	}
	if _, _, code := runCommand(t, env, "voting", "verify", "rnd_missing"); code != 2 {
		t.Errorf("verify of an unknown round: exit %d, want 2", code)
	}
}
