#!/usr/bin/env bash
# Helpers for the staff-figures benchmarks (docs/benchmarks.md, "Staff
# figures"): a binary built from a commit, a database seeded with a
# synthetic patron program (bench/metrics-seed.sql) whose counters are
# computed by `patronage metrics rebuild`, the server started and stopped by
# its pid, and an admin token for the staff API.
#
#   bench/metrics.sh build [REV]   build $BIN from a `git archive` of REV (HEAD): no uncommitted work leaks in
#   bench/metrics.sh seed          stop our server, recreate $DB, migrate, seed $MEMBERS members, time the rebuild,
#                                  make an admin (token in $STATE/token)
#   bench/metrics.sh start         start the server on the existing database
#   bench/metrics.sh stop          SIGTERM our server (pid in $STATE/server.pid) and wait for it to exit
#   bench/metrics.sh measure [C] [SECS]
#                                  wrk (C connections, default 1; SECS each, default 15) on every staff figure
#                                  (summary, 24 months of movements, revenue and cohorts, tiers, the first
#                                  members page), then members.csv three times (rows/s), and the server's RSS
#   bench/metrics.sh rss           the server's resident memory (kB)
#   bench/metrics.sh clean         stop the server, drop $DB, delete the benchm: Redis keys
#
# Environment (defaults): DB=patronage_bench_metrics, BIN=/tmp/patronage-metrics/patronage,
# STATE=/tmp/patronage-metrics-state, MEMBERS=100000. The server runs on 127.0.0.1:18082
# with REDIS_KEY_PREFIX=benchm:, LOG_LEVEL=warn and no STRIPE_SECRET_KEY.
set -euo pipefail

DB=${DB:-patronage_bench_metrics}
BIN=${BIN:-/tmp/patronage-metrics/patronage}
STATE=${STATE:-/tmp/patronage-metrics-state}
MEMBERS=${MEMBERS:-100000}
PREFIX=benchm:
ADDR=127.0.0.1:18082
PGHOST=127.0.0.1 PGUSER=postgres
export PGHOST PGUSER
URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$STATE"

server_env=(env -u STRIPE_SECRET_KEY DATABASE_URL="$URL" REDIS_URL=redis://127.0.0.1:6379/0 REDIS_KEY_PREFIX=$PREFIX
  HTTP_ADDR=$ADDR BASE_URL=http://$ADDR LOG_LEVEL=warn)

start() {
  if [[ -s $STATE/server.pid ]] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
    echo "metrics.sh: server $(cat "$STATE/server.pid") is already running" >&2
    exit 1
  fi
  (
    cd "$STATE"
    "${server_env[@]}" "$BIN" serve >>"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
  )
  for _ in $(seq 300); do
    curl -sf http://$ADDR/readyz >/dev/null && break
    sleep 0.1
  done
  curl -sf http://$ADDR/readyz >/dev/null || { echo "metrics.sh: server did not become ready; see $STATE/server.log" >&2; exit 1; }
  echo "server $(cat "$STATE/server.pid") ready"
}

stop() {
  [[ -s $STATE/server.pid ]] || return 0
  pid=$(cat "$STATE/server.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "metrics.sh: server $pid still running after 60 s" >&2; exit 1; fi
    echo "server $pid stopped"
  fi
  rm -f "$STATE/server.pid"
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
seed)
  stop
  dropdb --if-exists "$DB"
  createdb "$DB"
  : >"$STATE/server.log"
  "${server_env[@]}" "$BIN" migrate | tail -1
  t0=$(date +%s.%N)
  psql -X -q -d "$DB" -v members="$MEMBERS" -f "$here/metrics-seed.sql"
  t1=$(date +%s.%N)
  printf 'seeded %s members in %.0f s: %s history rows, %s invoices, %s refunds, %s gifts\n' "$MEMBERS" "$(echo "$t1 - $t0" | bc)" \
    "$(psql -X -At -d "$DB" -c 'SELECT count(*) FROM subscription_history')" "$(psql -X -At -d "$DB" -c 'SELECT count(*) FROM invoices')" \
    "$(psql -X -At -d "$DB" -c 'SELECT count(*) FROM refunds')" "$(psql -X -At -d "$DB" -c 'SELECT count(*) FROM donations')"
  "${server_env[@]}" "$BIN" metrics rebuild
  psql -X -q -d "$DB" -c 'VACUUM ANALYZE'
  "${server_env[@]}" "$BIN" admin create --email bench-admin@example.org | grep -o 'pat_[A-Za-z0-9_-]*' | head -1 >"$STATE/token"
  [[ -s $STATE/token ]] || { echo "metrics.sh: no admin token" >&2; exit 1; }
  # A session for the admin, as members.StartSession writes one, so the
  # dashboard page (cookie only) can be measured: cookie patronage_session=benchm-admin.
  admin=$(psql -X -At -d "$DB" -c "SELECT id FROM members WHERE email = 'bench-admin@example.org'")
  key="${PREFIX}session:$(printf %s benchm-admin | sha256sum | cut -d' ' -f1)"
  redis-cli hset "$key" m "$admin" c "$(date +%s%3N)" >/dev/null
  redis-cli pexpire "$key" $((30 * 24 * 3600 * 1000)) >/dev/null
  psql -X -At -d "$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))" | sed 's/^/database size: /'
  ;;
start) start ;;
stop) stop ;;
rss) ps -o rss= -p "$(cat "$STATE/server.pid")" ;;
measure)
  c=${1:-1} secs=${2:-15}
  token=$(cat "$STATE/token")
  from=$(date -u -d "$(date -u +%Y-%m-15) -23 months" +%Y-%m) to=$(date -u +%Y-%m)
  for path in "metrics/summary" "metrics/mrr?from=$from&to=$to&currency=eur" "metrics/revenue?from=$from&to=$to&currency=eur" \
    "metrics/cohorts?from=$from&to=$to&currency=eur" "metrics/tiers" "members" "members?status=past_due"; do
    echo "== GET /api/v1/staff/$path  (c$c, ${secs}s)"
    (cd "$here/.." && wrk -t1 -c"$c" -d"${secs}s" --latency -s bench/report.lua -H "Authorization: Bearer $token" \
      "http://$ADDR/api/v1/staff/$path") | grep -E '^(rps|p50|p95|p99 |max|socket)'
  done
  echo "== GET /staff (the dashboard page, 12 months; c$c, ${secs}s)"
  (cd "$here/.." && wrk -t1 -c"$c" -d"${secs}s" --latency -s bench/report.lua -H "Cookie: patronage_session=benchm-admin" \
    "http://$ADDR/staff") | grep -E '^(rps|p50|p95|p99 |max|socket)'
  for _ in 1 2 3; do
    curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' -H "Authorization: Bearer $token" "http://$ADDR/api/v1/staff/members.csv" |
      awk -v n="$(psql -X -At -d "$DB" -c 'SELECT count(*) FROM members')" '{printf "members.csv: %s, %d rows, %.1f MB in %.2f s: %.0f rows/s\n", $1, n, $2/1e6, $3, n/$3}'
  done
  echo "server RSS: $(ps -o rss= -p "$(cat "$STATE/server.pid")") kB"
  ;;
clean)
  stop
  dropdb --if-exists "$DB"
  redis-cli --scan --pattern "$PREFIX*" | xargs -r -n 1000 redis-cli del >/dev/null
  ;;
*)
  sed -n '2,20p' "$0"
  exit 2
  ;;
esac
