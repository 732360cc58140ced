#!/usr/bin/python3
# copied from shared/peers/lib (this project's shared benchmark material)
"""Write RESP command streams for `redis-cli --pipe`.

usage: gen_resp.py OUTDIR N SIZE
  OUTDIR/enq.resp : N x LPUSH q <msg i>
  OUTDIR/deq.resp : N x (RPOPLPUSH q q:p ; LREM q:p 1 <msg i>)   reliable-queue pattern.
LPUSH + RPOPLPUSH is FIFO, so the i-th RPOPLPUSH returns msg i and the LREM that
follows it in the pipeline acks exactly that message (checked afterwards: both lists empty).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import payload

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

outdir, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(os.path.join(outdir, "enq.resp"), "wb") as f:
    for i in range(n):
        f.write(resp(b"LPUSH", b"q", payload(i, size)))
with open(os.path.join(outdir, "deq.resp"), "wb") as f:
    for i in range(n):
        f.write(resp(b"RPOPLPUSH", b"q", b"q:p"))
        f.write(resp(b"LREM", b"q:p", b"1", payload(i, size)))
