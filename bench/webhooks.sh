#!/usr/bin/env bash
# Helpers for the webhook benchmarks in docs/benchmarks.md: a binary built
# from a commit, a fresh database per run, the server started and stopped by
# its pid, and the processing rate read back from stripe_events.
#
#   bench/webhooks.sh build [REV]     build $BIN from a `git archive` of REV (HEAD): no uncommitted work leaks in
#   bench/webhooks.sh fresh [VAR=V…]  stop our server, recreate $DB, start the server (extra env from the args), seed
#   bench/webhooks.sh start [VAR=V…]  start the server on the existing database
#   bench/webhooks.sh stop            SIGTERM our server (pid in $STATE/server.pid) and wait for it to exit
#   bench/webhooks.sh status          SELECT status, count(*) FROM stripe_events GROUP BY 1 (+ last errors)
#   bench/webhooks.sh backlog [N]     fresh database, server with WEBHOOK_WORKERS=1 (it processes few of them meanwhile),
#                                     ($LOAD_ARGS are added to the load's flags, e.g. LOAD_ARGS=-money)
#                                     N (20000) events posted by $LOAD at 16 connections, server stopped:
#                                     N events (less the few processed) pending, for `start` + `drain`
#   bench/webhooks.sh drain [SECS]    print progress every SECS (5) until nothing is pending, then `rate`
#   bench/webhooks.sh rate [FROM TO]  events processed a second, from processed_at; FROM/TO are fractions of
#                                     the processed events bounding the window (default 0.05 0.95)
#   bench/webhooks.sh clean           stop the server, drop $DB, delete the bench: Redis keys
#
# Environment (defaults): DB=patronage_bench_wh, BIN=/tmp/patronage-wh/patronage,
# STATE=/tmp/patronage-wh-state (server.pid, server.log), SUBS=2000 (members seeded),
# LOAD=/tmp/webhookload (go build -o /tmp/webhookload bench/webhookload.go).
# The server runs with STRIPE_WEBHOOK_SECRET=whsec_bench, STRIPE_WEBHOOK_MODE=payload,
# no STRIPE_SECRET_KEY, LOG_LEVEL=warn, REDIS_KEY_PREFIX=bench:, on 127.0.0.1:18080.
set -euo pipefail

DB=${DB:-patronage_bench_wh}
BIN=${BIN:-/tmp/patronage-wh/patronage}
STATE=${STATE:-/tmp/patronage-wh-state}
SUBS=${SUBS:-2000}
LOAD=${LOAD:-/tmp/webhookload}
PGHOST=127.0.0.1 PGUSER=postgres
export PGHOST PGUSER
URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$STATE"

q() { psql -X -q -At -d "$DB" -c "$1"; }

start() {
  if [[ -s $STATE/server.pid ]] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
    echo "webhooks.sh: server $(cat "$STATE/server.pid") is already running" >&2
    exit 1
  fi
  (
    cd "$STATE"
    env -u STRIPE_SECRET_KEY DATABASE_URL="$URL" REDIS_URL=redis://127.0.0.1:6379/0 REDIS_KEY_PREFIX=bench: \
      HTTP_ADDR=127.0.0.1:18080 BASE_URL=http://127.0.0.1:18080 LOG_LEVEL=warn \
      STRIPE_WEBHOOK_SECRET=whsec_bench STRIPE_WEBHOOK_MODE=payload "$@" \
      "$BIN" serve >>"$STATE/server.log" 2>&1 &
    echo $! >"$STATE/server.pid"
  )
  for _ in $(seq 100); do
    curl -sf http://127.0.0.1:18080/readyz >/dev/null && break
    sleep 0.1
  done
  curl -sf http://127.0.0.1:18080/readyz >/dev/null || { echo "webhooks.sh: server did not become ready; see $STATE/server.log" >&2; exit 1; }
  echo "server $(cat "$STATE/server.pid") ready${*:+ with $*}"
}

stop() {
  [[ -s $STATE/server.pid ]] || return 0
  pid=$(cat "$STATE/server.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "webhooks.sh: server $pid still running after 60 s" >&2; exit 1; fi
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
fresh)
  stop
  dropdb --if-exists "$DB"
  createdb "$DB"
  : >"$STATE/server.log"
  start "$@"
  psql -X -q -d "$DB" -v subs="$SUBS" -f "$here/webhook-seed.sql" >/dev/null
  echo "database $DB seeded with $SUBS members"
  ;;
start) start "$@" ;;
backlog)
  n=${1:-20000}
  "$0" fresh WEBHOOK_WORKERS=1
  "$LOAD" -c 16 -n "$n" -d 0 -subs "$SUBS" ${LOAD_ARGS:-} | grep -E 'acked|errors|first error'
  stop
  "$0" status
  ;;
stop) stop ;;
status)
  q "SELECT status, count(*) FROM stripe_events GROUP BY 1 ORDER BY 1" | tr '|' ' '
  q "SELECT last_error, count(*) FROM stripe_events WHERE last_error IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
  ;;
drain)
  every=${1:-5}
  prev=-1
  while :; do
    read -r pending processed < <(q "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status <> 'pending') FROM stripe_events" | tr '|' ' ')
    if ((prev >= 0)); then
      echo "$(date +%T) pending $pending done $processed (+$(((processed - prev) / every))/s)"
    else
      echo "$(date +%T) pending $pending done $processed"
    fi
    ((pending == 0)) && break
    prev=$processed
    sleep "$every"
  done
  "$0" rate
  ;;
rate)
  from=${1:-0.05} to=${2:-0.95}
  q "WITH p AS (SELECT processed_at, row_number() OVER (ORDER BY processed_at) AS i, count(*) OVER () AS n
                FROM stripe_events WHERE processed_at IS NOT NULL),
          w AS (SELECT min(processed_at) AS t0, max(processed_at) AS t1, count(*) AS k, max(n) AS n FROM p
                WHERE i > n * $from AND i <= n * $to)
     SELECT format('processed %s events between %s and %s; window %s..%s of them: %s events in %s s = %s/s',
                   (SELECT max(n) FROM p), (SELECT min(processed_at) FROM p)::time(3), (SELECT max(processed_at) FROM p)::time(3),
                   $from, $to, k, round(extract(epoch FROM t1 - t0)::numeric, 2),
                   round(k / nullif(extract(epoch FROM t1 - t0), 0)::numeric, 0)) FROM w"
  ;;
clean)
  stop
  dropdb --if-exists "$DB"
  redis-cli --scan --pattern 'bench:*' | xargs -r redis-cli del >/dev/null
  echo "dropped $DB, deleted bench:* Redis keys"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
