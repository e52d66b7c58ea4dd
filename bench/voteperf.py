#!/usr/bin/env python3
"""Splits the server's CPU samples from `perf record -g` into the steps of a
vote (POST /api/v1/rounds/{id}/votes), like bench/perfsplit.py does for
webhooks.

    perf record -o /tmp/perf-votes.data -g -p $SERVER_PID -- sleep 10     # while voteload runs
    perf script -i /tmp/perf-votes.data -F comm,tid,ip,sym > /tmp/perf-votes.txt
    bench/voteperf.py /tmp/perf-votes.txt                        # share of samples per step
    bench/voteperf.py /tmp/perf-votes.txt 'sqldb.(*DB).InTx'     # what that function's samples are spent in

A sample goes to the first step (in the order below) one of whose functions
is on its stack. "kernel" is the part of a step's samples whose leaf is in
the kernel (syscalls for the round trips, and on a VM the context switches
that show up as finish_task_switch). With a second argument it lists, for the
samples with that function on the stack, the function it called (its
outermost occurrence).
"""
import sys, re, collections
path = sys.argv[1]
cats = [  # (step, substrings of function names), in order of precedence
    # Committer goroutines (voting.commitLoop, started as CastVote.func1.gowrap1): one transaction + one Redis pipeline
    # per batch. First, so that their samples do not count as CastVote.
    ("batch tx: eligibility (member_access FOR SHARE + tiers)", ["main.voters.Voters", "billing.(*Service).AccessShared"]),
    ("batch tx: round FOR SHARE, upsert/lock round_voters, INSERT ballots, COMMIT", ["voting.(*Service).storeBatch.func", "sqldb.(*DB).InTx"]),
    ("batch Redis: pipeline EVALSHA applyVote ×n + ZRANGE, PUBLISH", ["voting.(*Service).applyBatch"]),
    ("batch other (storeBatch/commit outside tx)", ["voting.(*Service).storeBatch", "voting.(*Service).commit"]),
    # Request goroutine (net/http conn): session, rate limit, queue a cast and wait, answer.
    ("session: Redis EVALSHA touch + member by id (PG, 1 s cache)", ["members.(*Service).MemberForSession"]),
    ("rate limit: Redis EVALSHA", ["ratelimit.(*Limiter).Allow"]),
    ("CastVote (request side: cached round, queue, wait for the batch)", ["voting.(*Service).CastVote"]),
    ("tally read: cache / Redis EXISTS+ZRANGE", ["voting.(*Service).TallyOf"]),
    ("my votes (GET with cookie): SELECT ballots", ["voting.(*Service).MyVotes"]),
    ("JSON: decode request", ["web.(*Server).decodeJSON"]),
    ("JSON: render response", ["gin.(*Context).JSON", "gin.(*Context).Render"]),
    ("rest of handler + HTTP (gin, middleware, net/http read/write)", ["net/http.(*conn).serve"]),
    ("GC", ["gcBgMarkWorker", "runtime.gcDrain", "bgsweep", "bgscavenge"]),
    ("scheduler/netpoll/syscalls", ["runtime.mcall", "runtime.schedule", "runtime.findRunnable", "runtime.netpoll",
                                    "runtime.park_m", "runtime.sysmon", "runtime.mstart"]),
]
samples = []; cur = None; kern = None
for line in open(path):
    line = line.rstrip('\n')
    if not line.strip():
        if cur is not None:
            samples.append((cur, kern))
        cur = None; continue
    if not line.startswith((' ', '\t')):
        cur = []; kern = None; continue
    parts = line.strip().split(None, 1)
    if kern is None:
        kern = parts[0].startswith('ffffffff')
    cur.append(parts[1] if len(parts) > 1 else '?')
if cur:
    samples.append((cur, kern))
c = collections.Counter(); k = collections.Counter(); other = collections.Counter()
for s, kernel in samples:
    for name, subs in cats:
        if any(any(x in f for x in subs) for f in s):
            break
    else:
        name = "other"; other[s[-1] if s else '?'] += 1
    c[name] += 1
    if kernel:
        k[name] += 1
tot = len(samples)
print(f"{tot} samples; share of all, of which kernel")
for name, v in c.most_common():
    print(f"{100*v/tot:5.1f}%  (kernel {100*k[name]/tot:4.1f}%)  {name}")
if len(sys.argv) > 2:
    anc = sys.argv[2]
    cnt = collections.Counter(); n = 0
    for s, _ in samples:
        idx = [i for i, f in enumerate(s) if anc in f]
        if not idx:
            continue
        n += 1
        i = max(idx)
        cnt[s[i-1] if i > 0 else '(self)'] += 1
    print(f"{anc}: {100*n/tot:.1f}% of samples, calling:")
    for name, v in cnt.most_common(12):
        print(f"  {100*v/tot:5.1f}%  {re.sub(r'[+]0x[0-9a-f]+$', '', name)[:150]}")
