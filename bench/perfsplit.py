#!/usr/bin/env python3
"""Splits the server's CPU samples from `perf record -g` into the parts of a
webhook's life, for docs/benchmarks.md (webhooks section).

    perf record -o /tmp/perf.data -a -g -F 999 sleep 10      # while the load runs
    perf script -i /tmp/perf.data --comm patronage -F comm,ip,sym > /tmp/perf.txt
    bench/perfsplit.py /tmp/perf.txt                          # share of samples per part
    bench/perfsplit.py /tmp/perf.txt 'webhooks.Verify'        # what that function's samples are spent in

A sample goes to the first part (in the order below) one of whose functions
is on its stack. With a second argument it lists, for the samples with that
function on the stack, the function it called (its outermost occurrence).
"""
import sys, re, collections
path=sys.argv[1]
cats = [  # (part, substrings of function names), in order of precedence
 ("processing: Worker.Work", ["webhooks.(*Worker).Work"]),
 ("intake: River InsertTx (job insert)", ["river.(*Client[go.shape.*uint8]).InsertTx"]),
 ("intake: webhooks.Verify (HMAC, JSON)", ["webhooks.Verify"]),
 ("intake: INSERT stripe_events", ["Intake).Accept.func1"]),
 ("intake: BEGIN/COMMIT (InTx)", ["sqldb.(*DB).InTx"]),
 ("intake: rest of handler+HTTP (gin, middleware, net/http read/write)", ["net/http.(*conn).serve"]),
 ("River other (fetch, complete, maintenance)", ["riverqueue"]),
 ("GC", ["gcBgMarkWorker","runtime.gcDrain","bgsweep","bgscavenge"]),
 ("scheduler/netpoll/syscalls", ["runtime.mcall","runtime.schedule","runtime.findRunnable","runtime.netpoll","runtime.park_m","runtime.sysmon"]),
]
samples=[]; cur=None
for line in open(path):
    line=line.rstrip('\n')
    if not line.strip():
        if cur is not None: samples.append(cur)
        cur=None; continue
    if not line.startswith((' ','\t')):
        cur=[]; continue
    parts=line.strip().split(None,1)
    cur.append(parts[1] if len(parts)>1 else '?')
if cur: samples.append(cur)
c=collections.Counter(); other=collections.Counter()
for s in samples:
    for name,subs in cats:
        if any(any(x in f for x in subs) for f in s):
            c[name]+=1; break
    else:
        c["other"]+=1; other[s[-1] if s else '?']+=1
tot=len(samples)
for k,v in c.most_common(): print(f"{100*v/tot:5.1f}%  {k}")
if len(sys.argv) > 2:
    anc = sys.argv[2]
    cnt = collections.Counter(); n = 0
    for s in samples:
        idx = [i for i, f in enumerate(s) if anc in f]
        if not idx:
            continue
        n += 1
        i = max(idx)
        cnt[s[i-1] if i > 0 else '(self)'] += 1
    print(f"{anc}: {100*n/tot:.1f}% of samples, calling:")
    for k, v in cnt.most_common(12):
        print(f"  {100*v/tot:5.1f}%  {re.sub(r'[+]0x[0-9a-f]+$', '', k)[:150]}")
