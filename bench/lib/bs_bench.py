#!/usr/bin/python3
# copied from shared/peers/lib (this project's shared benchmark material)
"""Tiny beanstalkd client (stdlib sockets) for batched / sequential modes.

usage: bs_bench.py PORT enq|deq N SIZE WINDOW
  enq: N x  put 0 0 60 SIZE            (expects INSERTED)
  deq: N x  reserve-with-timeout 0 ; delete ID   (expects RESERVED / DELETED)
  WINDOW = commands in flight per round trip (1 = strictly sequential,
  100 = pipelined batches: 100 reserves, then their 100 deletes).
prints: N seconds     (timed from connect to the last reply)
"""
import os, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import payload, now

port, phase, n, size, win = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def fail(msg):
    sys.exit("bs_bench: " + msg)

if phase == "enq":
    cmds = [b"put 0 0 60 %d\r\n" % size + payload(i, size) + b"\r\n" for i in range(n)]
t0 = now()
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
r = s.makefile("rb", buffering=1 << 16)
done = 0
while done < n:
    k = min(win, n - done)
    if phase == "enq":
        s.sendall(b"".join(cmds[done:done + k]))
        for _ in range(k):
            line = r.readline()
            if not line.startswith(b"INSERTED "):
                fail("put reply %r" % line)
    elif phase == "deq":
        s.sendall(b"reserve-with-timeout 0\r\n" * k)
        ids = []
        for _ in range(k):
            line = r.readline()
            parts = line.split()
            if len(parts) != 3 or parts[0] != b"RESERVED":
                fail("reserve reply %r" % line)
            body = r.read(int(parts[2]) + 2)
            if len(body) != size + 2:
                fail("short body")
            ids.append(parts[1])
        s.sendall(b"".join(b"delete " + j + b"\r\n" for j in ids))
        for _ in range(k):
            line = r.readline()
            if line != b"DELETED\r\n":
                fail("delete reply %r" % line)
    else:
        fail("phase must be enq or deq")
    done += k
t1 = now()
s.close()
print(n, "%.6f" % (t1 - t0))
