#!/usr/bin/python3
"""Write the message inputs of bench/run.

usage: gen_msgs.py OUTDIR N SIZE
  OUTDIR/msg      one message of SIZE bytes (mq-send per process reads it as stdin)
  OUTDIR/lines    N lines for mq-send -l: line i = payload(i, SIZE-1) + newline, so
                  every message body is SIZE bytes with its newline (as -l keeps it)
  OUTDIR/line     one such line (the filler of the backlogs: yes | head -n COUNT)
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import payload

outdir, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(os.path.join(outdir, "msg"), "wb") as f:
    f.write(payload(0, size))
with open(os.path.join(outdir, "lines"), "wb") as f:
    for i in range(n):
        f.write(payload(i, size - 1) + b"\n")
with open(os.path.join(outdir, "line"), "wb") as f:
    f.write(payload(0, size - 1) + b"\n")
