#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/fleet's bridge stage, checked from the stream.

usage: fleet_stream.py RUNDIR OUTDIR DUMP SECONDS

DUMP is `nats-tool dump STREAM` of the stream that `mq-bridge out` filled from the
collector's queue ("SEQ MSGID BODY HEADERS" a line, the body's newlines as \\n);
SECONDS the time the bridge took.  Compares the (host, seq) in the bodies with what
the producers made (RUNDIR/hNN/prod-*.json), and appends the figures to
OUTDIR/fleet.txt (stream_*) and a paragraph to OUTDIR/fleet.md.  Exit 0 when the
stream holds every line once, 1 otherwise.
"""
import json, os, sys
from collections import Counter

run, outdir, dump, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
produced = set()
for h in sorted(os.listdir(run)):
    d = os.path.join(run, h)
    if not (h.startswith("h") and os.path.isdir(d)):
        continue
    for name in os.listdir(d):
        if name.startswith("prod-") and name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                p = json.load(f)
            produced.update((p["host"], s) for s in range(p["first"], p["last"] + 1))
lines = Counter()
ids = Counter()
n = 0
with open(dump, errors="replace") as f:
    for line in f:
        w = line.split(" ", 5)
        if len(w) < 4:
            continue
        n += 1
        ids[w[1]] += 1
        try:
            lines[(w[2], int(w[3]))] += 1
        except ValueError:
            pass
lost = len(produced - set(lines))
dup = sum(c - 1 for c in lines.values() if c > 1)
dup_ids = sum(c - 1 for c in ids.values() if c > 1)
rate = n / secs if secs > 0 else 0
R = [("stream_messages", n), ("stream_lost", lost), ("stream_duplicated", dup),
     ("stream_duplicate_ids", dup_ids), ("stream_bridge_seconds", "%.1f" % secs),
     ("stream_bridge_rate", "%.0f" % rate)]
with open(os.path.join(outdir, "fleet.txt"), "a") as f:
    for k, v in R:
        f.write("%s: %s\n" % (k, v))
with open(os.path.join(outdir, "fleet.md"), "a") as f:
    f.write("\nThe bridge hop, after the fleet had drained: `mq-bridge -D out logs fleet.logs` carried the "
            "collector's whole queue into a JetStream stream of 3 replicas on a 3-node nats-server cluster in "
            "the collector's namespace, at %.0f messages/s (%.1f s). Read back from the stream: %d messages, "
            "%d of the lines produced missing, %d twice (%d ids twice). Latency through the bridge is not "
            "measured here (the hop ran after the faults, not during them).\n" % (rate, secs, n, lost, dup, dup_ids))
for k, v in R:
    print("%s: %s" % (k, v))
sys.exit(0 if not lost and not dup and not dup_ids else 1)
