#!/usr/bin/env bash
# Runs a command (normally wrk) and reports where the machine's CPU went
# while it ran: the Patronage server, wrk, PostgreSQL, Redis, stripe-mock,
# stripetimer (bench/stripetimer.go), and everything else ("other" — anything not ours, e.g. a concurrent build).
# A run with a large "other" share was disturbed and should be repeated.
#
#   bench/cpuacct.sh wrk -t2 -c32 -d20s -s bench/report.lua http://127.0.0.1:18080/api/v1/tiers
#
# With CPUACCT_OTHERS=1 it also lists the five largest "other" processes, to see
# which ones they were.
#
# With WAIT_IDLE=1 (the default) it first waits until the machine is at least
# 90 % idle over two seconds, so that runs do not start during someone
# else's build.
set -euo pipefail

hz=$(getconf CLK_TCK)

busy_total() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
idle_total() { awk '/^cpu /{print $5+$6}' /proc/stat; }

# pid comm ticks for every process, children's time excluded.
snapshot() {
  for f in /proc/[0-9]*/stat; do
    # comm may contain spaces; fields after the closing paren are fixed.
    line=$(cat "$f" 2>/dev/null) || continue
    pid=${line%% *}
    comm=${line#*(}; comm=${comm%)*}
    rest=${line##*) }
    set -- $rest
    echo "$pid ${comm// /_} $(( ${12} + ${13} ))"
  done
}

if [[ "${WAIT_IDLE:-1}" == 1 ]]; then
  for _ in $(seq 300); do
    b1=$(busy_total); i1=$(idle_total); sleep 2; b2=$(busy_total); i2=$(idle_total)
    idle=$(( 100 * (i2 - i1) / ( (b2 - b1) + (i2 - i1) + 1 ) ))
    (( idle >= 90 )) && break
    echo "cpuacct: machine only ${idle}% idle, waiting" >&2
  done
fi

s1=$(mktemp); s2=$(mktemp); tf=$(mktemp); trap 'rm -f "$s1" "$s2" "$s2.c1" "$s2.c2" "$tf"' EXIT
# CPU of our finished children (the command itself), from getrusage via `times`.
# `times` must run in this shell, not in a $(...) subshell, to see our children.
child_ticks() {
  times >"$tf"
  sed -n 2p "$tf" | awk -v hz="$hz" '{
    n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%d", n * hz }'
}
snapshot >"$s1"; b1=$(busy_total); i1=$(idle_total); t1=$(date +%s.%N); child_ticks >"$s2.c1"; c1=$(cat "$s2.c1")
"$@"
child_ticks >"$s2.c2"; c2=$(cat "$s2.c2"); rm -f "$s2.c1" "$s2.c2"; snapshot >"$s2"; b2=$(busy_total); i2=$(idle_total); t2=$(date +%s.%N)

awk -v others="${CPUACCT_OTHERS:-0}" -v cmd=$((c2 - c1)) -v cmdname="$(basename "$1")" -v busy=$((b2 - b1)) -v idle=$((i2 - i1)) -v hz="$hz" -v secs="$(echo "$t2 - $t1" | bc)" '
  NR == FNR { before[$1] = $3; next }
  {
    d = $3 - ($1 in before ? before[$1] : 0)
    c = $2
    if (c == "patronage") g = "patronage"   # not patronage.test: a test run is "other"
    else if (c ~ /^postgres/) g = "postgres"
    else if (c ~ /^redis/) g = "redis"
    else if (c ~ /^stripe-mock/) g = "stripe-mock"
    else if (c ~ /^stripetimer/) g = "stripetimer"
    else if (c ~ /^checkoutserver/) g = "patronage"
    else { if (d > 0) oth[$1 " " c] += d; next }
    sum[g] += d; known += d
  }
  END {
    sum["wrk"] += cmd; known += cmd
    # percentages of one core, like top
    printf "CPU (%% of one core, %s counted as wrk over %.1f s):", cmdname, secs
    n = split("patronage wrk postgres redis stripe-mock stripetimer", order, " ")
    for (i = 1; i <= n; i++) printf " %s %.0f%%", order[i], 100 * sum[order[i]] / hz / secs
    other = busy - known; if (other < 0) other = 0
    printf " other %.0f%% idle %.0f%%\n", 100 * other / hz / secs, 100 * idle / hz / secs
    if (others == 1) {
      printf "  largest other processes (ended ones not shown):"
      for (i = 1; i <= 5; i++) {
        best = ""; for (k in oth) if (best == "" || oth[k] > oth[best]) best = k
        if (best == "") break
        printf " %s %.0f%%,", best, 100 * oth[best] / hz / secs; delete oth[best]
      }
      printf "\n"
    }
  }' "$s1" "$s2"
