#!/usr/bin/env bash
# Helpers for the voting benchmarks: a binary built from a commit, a fresh
# database with patrons, their sessions and one open round, the server
# started and stopped by its pid, and stored ballots added in bulk to time
# `patronage voting rebuild`.
#
#   bench/votes.sh build [REV]        build $BIN from a `git archive` of REV (HEAD): no uncommitted work leaks in
#   bench/votes.sh fresh [VAR=V…]     stop our server, delete our Redis keys, recreate $DB, migrate, seed $PATRONS
#                                     patrons (members mem_bv_<n> with active access to tier coffee, Redis sessions
#                                     benchsess-<n>), start the server (extra env from the args), create 10 topics
#                                     and one open round through the staff API (id in $STATE/round)
#   bench/votes.sh start [VAR=V…]     start the server on the existing database
#   bench/votes.sh stop               SIGTERM our server (pid in $STATE/server.pid) and wait for it to exit
#   bench/votes.sh status             ballots, voters and the Redis tally of the round
#   bench/votes.sh seed-ballots N     add N stored ballots to the round in SQL (new members mem_bvs_<k>, 3 ballots
#                                     each, with access and consistent round_voters rows), then time
#                                     `$BIN voting rebuild ROUND` with the server's environment
#   bench/votes.sh rebuild            time `$BIN voting rebuild ROUND` alone
#   bench/votes.sh clean              stop the server, drop $DB, delete the benchv: Redis keys (SCAN + DEL)
#
# Environment (defaults): DB=patronage_bench_votes, BIN=/tmp/patronage-votes/patronage,
# STATE=/tmp/patronage-votes-state (server.pid, server.log, round, token), PATRONS=60000.
# The server runs on 127.0.0.1:18081 with REDIS_KEY_PREFIX=benchv:, LOG_LEVEL=warn,
# RATE_LIMIT_VOTES_PER_SECOND=10000 (the configured maximum; the default 10 a member
# would not bind here anyway, each patron casting 3 votes, but it is raised so
# that no run measures the limiter refusing), no STRIPE_SECRET_KEY.
# Session n is "benchsess-<n>" for member mem_bv_<n> (n = 1…PATRONS), so the
# load generator (bench/voteload.go) sends Cookie: patronage_session=benchsess-<n>.
set -euo pipefail

DB=${DB:-patronage_bench_votes}
BIN=${BIN:-/tmp/patronage-votes/patronage}
STATE=${STATE:-/tmp/patronage-votes-state}
PATRONS=${PATRONS:-60000}
PREFIX=benchv:
ADDR=127.0.0.1:18081
PGHOST=127.0.0.1 PGUSER=postgres
export PGHOST PGUSER
URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$STATE"

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

# The server's environment, for serve and the CLI subcommands (an array, not
# a function: `"${server_env[@]}" … &` must leave $! = the server's pid).
server_env=(env -u STRIPE_SECRET_KEY DATABASE_URL="$URL" REDIS_URL=redis://127.0.0.1:6379/0 REDIS_KEY_PREFIX=$PREFIX
  HTTP_ADDR=$ADDR BASE_URL=http://$ADDR LOG_LEVEL=warn RATE_LIMIT_VOTES_PER_SECOND=10000)

start() {
  if [[ -s $STATE/server.pid ]] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
    echo "votes.sh: server $(cat "$STATE/server.pid") is already running" >&2
    exit 1
  fi
  (
    cd "$STATE"
    "${server_env[@]}" "$@" "$BIN" serve >>"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
  )
  for _ in $(seq 100); do
    curl -sf http://$ADDR/readyz >/dev/null && break
    sleep 0.1
  done
  curl -sf http://$ADDR/readyz >/dev/null || { echo "votes.sh: server did not become ready; see $STATE/server.log" >&2; exit 1; }
  echo "server $(cat "$STATE/server.pid") ready${*:+ with $*}"
}

stop() {
  [[ -s $STATE/server.pid ]] || return 0
  pid=$(cat "$STATE/server.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "votes.sh: server $pid still running after 60 s" >&2; exit 1; fi
    echo "server $pid stopped"
  fi
  rm -f "$STATE/server.pid"
}

del_keys() {
  redis-cli --scan --pattern "$PREFIX*" | xargs -r -n 1000 redis-cli del >/dev/null
}

# Sessions as members.StartSession writes them: a hash under
# benchv:session:<hex SHA-256 of the id> with m = member id, c = start (ms),
# expiring after the 30-day idle timeout. Written with redis-cli --pipe.
seed_sessions() {
  python3 - "$PATRONS" "$PREFIX" <<'EOF' | redis-cli --pipe | tail -1
import hashlib, sys, time
n, prefix = int(sys.argv[1]), sys.argv[2]
now = str(int(time.time() * 1000))
ttl = str(30 * 24 * 3600 * 1000)
out = sys.stdout.buffer
def cmd(*args):
    b = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(b))
for i in range(1, n + 1):
    key = prefix + "session:" + hashlib.sha256(("benchsess-%d" % i).encode()).hexdigest()
    cmd("HSET", key, "m", "mem_bv_%d" % i, "c", now)
    cmd("PEXPIRE", key, ttl)
EOF
}

api() { # METHOD PATH [BODY]: the staff API with the admin's token
  curl -sf -X "$1" "http://$ADDR$2" -H "Authorization: Bearer $(cat "$STATE/token")" \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}

rebuild() {
  round=$(cat "$STATE/round")
  t0=$(date +%s.%N)
  "${server_env[@]}" "$BIN" voting rebuild "$round"
  t1=$(date +%s.%N)
  printf 'rebuild of round %s took %.2f s (%s ballots)\n' "$round" "$(echo "$t1 - $t0" | bc)" \
    "$(q "SELECT count(*) FROM ballots WHERE round_id = '$round'")"
}

cmd=${1:-}; shift || true
case "$cmd" in
build)
  rev=${1:-HEAD}
  src=$(dirname "$BIN"); rm -rf "$src"; mkdir -p "$src"
  git -C "$here/.." archive "$rev" | tar -x -C "$src"
  (cd "$src" && go build -o "$BIN" ./cmd/patronage)
  echo "built $BIN from $(git -C "$here/.." rev-parse --short "$rev")"
  ;;
fresh)
  stop
  del_keys
  dropdb --if-exists "$DB"
  createdb "$DB"
  : >"$STATE/server.log"
  "${server_env[@]}" "$BIN" migrate | tail -1
  psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -v patrons="$PATRONS" <<'EOF'
BEGIN;
INSERT INTO tiers (slug, name, description, sort_order, vote_weight, created_at, updated_at)
VALUES ('coffee', 'Coffee', 'A coffee a month', 1, 1, now(), now());
INSERT INTO tier_prices (tier_slug, currency, billing_interval, amount) VALUES ('coffee', 'EUR', 'month', 500);
INSERT INTO members (id, email, created_at, updated_at)
SELECT 'mem_bv_' || n, 'bv-' || n || '@example.org', now(), now() FROM generate_series(1, :patrons) AS n;
INSERT INTO member_access (member_id, active, source, tier_slug, until_at, changed_at)
SELECT 'mem_bv_' || n, true, 'subscription', 'coffee', now() + interval '30 days', now() FROM generate_series(1, :patrons) AS n;
COMMIT;
ANALYZE;
EOF
  echo "sessions: $(seed_sessions)"
  start "$@"
  "${server_env[@]}" "$BIN" admin create --email bench-votes@example.org >"$STATE/admin.txt"
  grep -A1 '^API token' "$STATE/admin.txt" | tail -1 | tr -d ' ' >"$STATE/token"
  topics=()
  for i in $(seq 10); do
    topics+=("$(api POST /api/v1/staff/topics "{\"title\":\"Bench topic $i\",\"summary\":\"Topic $i of the voting benchmark\"}" | jq -r .topic.id)")
  done
  body=$(jq -nc --arg o "$(date -u -d '-1 minute' +%FT%TZ)" --arg c "$(date -u -d '+1 day' +%FT%TZ)" \
    --args '{title:"Bench round", opens_at:$o, closes_at:$c, votes_per_patron:3, weighting:"equal", results:"live", topic_ids:$ARGS.positional}' "${topics[@]}")
  api POST /api/v1/staff/rounds "$body" | jq -r .round.id >"$STATE/round"
  echo "database $DB seeded with $PATRONS patrons; round $(cat "$STATE/round") open with ${#topics[@]} topics"
  ;;
start) start "$@" ;;
stop) stop ;;
status)
  round=$(cat "$STATE/round")
  q "SELECT format('round %s: %s ballots, %s voters, %s votes counted in round_voters', '$round',
       (SELECT count(*) FROM ballots WHERE round_id = '$round'), (SELECT count(*) FROM round_voters WHERE round_id = '$round'),
       (SELECT coalesce(sum(used), 0) FROM round_voters WHERE round_id = '$round'))"
  # Redis layout since 0ff097c: tally:{ROUND}:counts (zset), :votes and :versions (hashes by member), :built
  echo "redis tally: $(redis-cli zrange "${PREFIX}tally:{$round}:counts" 0 -1 withscores | paste -sd' ')"
  echo "redis state: votes hash $(redis-cli hlen "${PREFIX}tally:{$round}:votes") members, versions hash $(redis-cli hlen "${PREFIX}tally:{$round}:versions"), built $(redis-cli exists "${PREFIX}tally:{$round}:built")"
  ;;
seed-ballots)
  n=${1:?give the number of ballots}
  round=$(cat "$STATE/round")
  t0=$(date +%s.%N)
  # Members mem_bvs_<k> continue after those of earlier calls. Ballot i goes
  # to member k = base + i/3 for topic position (k + i%3) mod topics: at most
  # 3 different topics each (votes_per_patron), round_voters.used = their
  # count, version = used (as if each had cast them one by one).
  psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -v n="$n" -v round="$round" <<'EOF'
BEGIN;
SELECT count(*) AS base FROM members WHERE id LIKE 'mem_bvs_%' \gset
SELECT count(*) AS ntopics FROM round_topics WHERE round_id = :'round' \gset
CREATE TEMP TABLE seed ON COMMIT DROP AS
  SELECT 'mem_bvs_' || (:base + i / 3) AS member_id, rt.topic_id
  FROM generate_series(0, :n - 1) AS i
  JOIN round_topics rt ON rt.round_id = :'round' AND rt.position = ((:base + i / 3) + i % 3) % :ntopics;
INSERT INTO members (id, email, created_at, updated_at)
SELECT DISTINCT member_id, member_id || '@example.org', now(), now() FROM seed;
INSERT INTO member_access (member_id, active, source, tier_slug, until_at, changed_at)
SELECT DISTINCT member_id, true, 'subscription', 'coffee', now() + interval '30 days', now() FROM seed;
INSERT INTO ballots (round_id, member_id, topic_id, weight, cast_at)
SELECT :'round', member_id, topic_id, 1, now() FROM seed;
INSERT INTO round_voters (round_id, member_id, used, version)
SELECT :'round', member_id, count(*), count(*) FROM seed GROUP BY member_id;
COMMIT;
ANALYZE;
EOF
  printf 'stored %s ballots in %.1f s\n' "$n" "$(echo "$(date +%s.%N) - $t0" | bc)"
  rebuild
  ;;
rebuild) rebuild ;;
clean)
  stop
  dropdb --if-exists "$DB"
  del_keys
  echo "dropped $DB, deleted $PREFIX* Redis keys"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
