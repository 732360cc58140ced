#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One fleet host's log source: numbered lines into `mq-send -l -i QUEUE`.

usage: fleet_producer.py HOST FIRST_SEQ COUNT|- RATE DURATION LINE_BYTES SUMMARY -- MQ-SEND-ARGV...

Each line is "HOST SEQ SEND_MS xxxx...\n" (LINE_BYTES with its newline): the host,
the sequence number (7 digits, FIRST_SEQ upwards) and the wall-clock ms at which the
line is handed to mq-send.  With COUNT, COUNT lines at once (a backlog); with "-",
RATE lines a second for DURATION seconds, written every TICK (50 ms) as a small burst,
the way a logger flushes its buffer.

No line is lost at the source: mq-send -i prints the id of each line once it is
committed (durable), in order, so the lines written after the last printed id are
the ones not taken.  When mq-send exits (75 on a full disk, anything), those lines
are kept, a new mq-send is started after a short rest, and they are written again
first, with their first send time (their latency includes the wait).  A line so
written again is "refused" at the source (refused_lines: distinct lines; refused:
every time), counted apart from lost.  At the end stdin is closed and every line
must be confirmed; lines that never were within END_CAP seconds are "unsent" (and
the check finds them lost).

The summary (JSON) goes to SUMMARY: host, first, last (the highest seq generated),
confirmed, refused, refused_lines, restarts, unsent, exits (mq-send exit codes),
stderr (its last lines).
"""
import json, os, select, signal, subprocess, sys, time

TICK = 0.05
REST = 0.2          # s between a failed mq-send and the next
END_CAP = 120.0     # s to get every line confirmed after the last one was generated

host, first, count, rate, duration, lbytes, summary = sys.argv[1:8]
assert sys.argv[8] == "--"
argv = sys.argv[9:]
first, lbytes = int(first), int(lbytes)
rate, duration = float(rate), float(duration)
burst = None if count == "-" else int(count)
stop_early = False


def on_term(*_):
    global stop_early
    stop_early = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)

pending = []        # (seq, ms) generated, not yet written to the current mq-send
inflight = []       # written to the current mq-send, not yet confirmed by an id
confirmed = refused = 0
refused_set = set()   # the distinct lines refused at least once
exits, errlines = [], []
nextseq = first
proc = None
outbuf = b""        # bytes of inflight lines not yet written to the pipe
idbuf = b""


def line(seq, ms):
    head = "%s %07d %d " % (host, seq, ms)
    return (head + "x" * max(0, lbytes - len(head) - 1) + "\n").encode()


def start():
    global proc, outbuf, idbuf
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True)
    os.set_blocking(proc.stdin.fileno(), False)
    os.set_blocking(proc.stdout.fileno(), False)
    os.set_blocking(proc.stderr.fileno(), False)
    outbuf, idbuf = b"", b""


def feed():
    """Move pending lines into the pipe (as far as it takes them)."""
    global outbuf
    if pending:
        outbuf += b"".join(line(s, m) for s, m in pending)
        inflight.extend(pending)
        pending.clear()
    while outbuf:
        try:
            n = os.write(proc.stdin.fileno(), outbuf)
        except BlockingIOError:
            return
        except (BrokenPipeError, OSError):
            return          # mq-send is gone: reap() takes the lines back
        outbuf = outbuf[n:]


def read_ids():
    global idbuf, confirmed
    try:
        while True:
            b = os.read(proc.stdout.fileno(), 65536)
            if not b:
                break
            idbuf += b
    except BlockingIOError:
        pass
    n = idbuf.count(b"\n")
    if n:
        idbuf = idbuf[idbuf.rfind(b"\n") + 1:]
        del inflight[:n]
        confirmed += n
    try:
        e = os.read(proc.stderr.fileno(), 65536)
        if e:
            errlines.extend(e.decode(errors="replace").splitlines())
            del errlines[:-20]
    except BlockingIOError:
        pass


def reap(rc):
    """mq-send exited: what it did not confirm is written again first."""
    global refused, proc
    read_ids()
    exits.append(rc)
    proc.stdin.close() if not proc.stdin.closed else None
    proc.stdout.close()
    proc.stderr.close()
    refused += len(inflight)
    refused_set.update(q for q, _ in inflight)
    pending[:0] = inflight
    inflight.clear()
    proc = None


t0 = time.time()
start()
end_gen = t0 + duration
if burst is not None:
    ms = int(time.time() * 1000)
    pending.extend((first + i, ms) for i in range(burst))
    nextseq = first + burst
generating = burst is None
closed = False
deadline = None
while True:
    now = time.time()
    if generating:
        if stop_early or now >= end_gen:
            generating = False
        else:
            due = first + int((now - t0) * rate)
            if due > nextseq:
                ms = int(now * 1000)
                pending.extend((s, ms) for s in range(nextseq, due))
                nextseq = due
    if not generating and deadline is None:
        deadline = time.time() + END_CAP
    if proc is None:
        if deadline is not None and time.time() > deadline:
            break
        if not pending and not generating:
            break
        time.sleep(REST)
        start()
        closed = False
    feed()
    rc = proc.poll()
    if rc is not None:
        reap(rc)
        continue
    if not generating and not pending and not outbuf and not closed:
        proc.stdin.close()
        closed = True
    fds = [proc.stdout, proc.stderr]
    wfds = [proc.stdin] if outbuf and not closed else []
    select.select(fds, wfds, [], TICK if generating else 0.5)
    read_ids()
    if closed and proc.poll() is not None:
        rc = proc.wait()
        reap(rc)
        if rc == 0 and not pending:
            break
    if deadline is not None and time.time() > deadline and proc is not None:
        proc.kill()
        proc.wait()
        reap(-9)
        break

with open(summary + ".tmp", "w") as f:
    json.dump({"host": host, "first": first, "last": nextseq - 1, "confirmed": confirmed,
               "refused": refused, "refused_lines": len(refused_set), "restarts": max(0, len(exits) - 1), "unsent": len(pending) + len(inflight),
               "exits": exits, "stderr": errlines}, f)
os.rename(summary + ".tmp", summary)
