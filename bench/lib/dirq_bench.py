#!/usr/bin/python3
# copied from shared/peers/lib (this project's shared benchmark material)
"""dirq in-process benchmark: add N, then lock+get+remove N, in ONE Python process.

usage: dirq_bench.py simple|queue DIR N SIZE
prints: N enqueue_seconds dequeue_seconds
python3-dirq never calls fsync (there is no option for it).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import payload, now

kind, path, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
msgs = [payload(i, size) for i in range(n)]          # built before timing
if kind == "simple":
    from dirq.QueueSimple import QueueSimple
    q = QueueSimple(path)
    t0 = now()
    for m in msgs:
        q.add(m)
    t1 = now()
    got = 0
    for name in q:                                     # bounded: iterates a snapshot of the queue
        if q.lock(name):
            data = q.get(name)
            if len(data) != size:
                sys.exit("bad size %d" % len(data))
            q.remove(name)
            got += 1
    t2 = now()
elif kind == "queue":
    from dirq.queue import Queue
    q = Queue(path, schema={"body": "binary"})
    t0 = now()
    for m in msgs:
        q.add({"body": m})
    t1 = now()
    got = 0
    for name in q:
        if q.lock(name):
            data = q.get(name)["body"]
            if len(data) != size:
                sys.exit("bad size %d" % len(data))
            q.remove(name)
            got += 1
    t2 = now()
else:
    sys.exit("kind must be simple or queue")
if got != n or q.count() != 0:
    sys.exit("dequeued %d of %d, %d left" % (got, n, q.count()))
print(n, "%.6f" % (t1 - t0), "%.6f" % (t2 - t1))
