#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/run's report: RESDIR/raw.tsv + env.txt (+ strace/) -> RESULTS.md, headline on stdout.

usage: report.py RESDIR OUT.md

Rates are messages/s = n / seconds of one sample; a figure is the median over the
repetitions with [min-max].  Ratios divide medians by the median of the floor that
was measured in the same run.  Targets are those of issue 5.
"""
import csv, os, statistics, sys
from collections import OrderedDict

resdir, out = sys.argv[1], sys.argv[2]

env = OrderedDict()
skipped = []
with open(os.path.join(resdir, "env.txt")) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition(": ")
        if k in ("skipped", "capped", "fault"):
            skipped.append(k + ": " + v)
        else:
            env[k] = v

samples = OrderedDict()          # (id, metric) -> [(n, seconds, rss)]
cpus = OrderedDict()             # (id, metric) -> [(n, cpu seconds)] where tm measured it
users = OrderedDict()            # (id, metric) -> [(n, user cpu seconds)]
with open(os.path.join(resdir, "raw.tsv")) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        samples.setdefault((r["id"], r["metric"]), []).append(
            (int(r["n"]), float(r["seconds"]), int(r["rss_kib"]) if r["rss_kib"] else None))
        if r.get("cpu_s"):
            cpus.setdefault((r["id"], r["metric"]), []).append((int(r["n"]), float(r["cpu_s"])))
        if r.get("user_s"):
            users.setdefault((r["id"], r["metric"]), []).append((int(r["n"]), float(r["user_s"])))


def rate(id_, metric):
    """{med, min, max, n, reps} of msgs/s, or None when not measured."""
    s = samples.get((id_, metric))
    if not s:
        return None
    r = [n / sec for n, sec, _ in s if sec > 0]
    return {"med": statistics.median(r), "min": min(r), "max": max(r), "n": s[0][0], "reps": len(r)}


def cpu_us(id_, metric, table=None):
    """median CPU microseconds per message (user + system of the process), or None."""
    s = (cpus if table is None else table).get((id_, metric))
    if not s:
        return None
    return statistics.median(c * 1e6 / n for n, c in s)


def ms(id_):
    s = samples.get((id_, "first"))
    if not s:
        return None
    v = [sec * 1000 for _, sec, _ in s]
    return {"med": statistics.median(v), "min": min(v), "max": max(v), "reps": len(v)}


def rss(id_, metric):
    s = samples.get((id_, metric))
    v = [x for _, _, x in (s or []) if x is not None]
    return max(v) if v else None


def med(st):
    return st["med"] if st else None


def fmt(r):
    if r is None:
        return "-"
    if r >= 100000: return "%.0fk" % (r / 1000)
    if r >= 10000: return "%.1fk" % (r / 1000)
    if r >= 1000: return "%.2fk" % (r / 1000)
    if r >= 100: return "%.0f" % r
    if r >= 10: return "%.1f" % r
    return "%.2f" % r


def cell(st):
    if st is None:
        return "-"
    if st["reps"] == 1:
        return fmt(st["med"])
    return "%s [%s-%s]" % (fmt(st["med"]), fmt(st["min"]), fmt(st["max"]))


def x(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fx(v, unit="×"):
    if v is None:
        return "-"
    return ("%.2f" % v if v < 10 else "%.1f" % v) + unit


# ------------------------------------------------------------------ catalog ---
# id: (what, durability, enq label, deq label, enq floor id, deq floor id)
FL = "floor-nosync"
NB = "%s" % env.get("params", "").split("N_BATCH=")[-1].split()[0] if "N_BATCH=" in env.get("params", "") else "N"
CASES = [
    ("floor", [
        ("floor-nosync", "floor: C, only the syscalls (open O_EXCL, write, close, rename; claim: rename, open, read, unlink)", "none", FL, FL),
        ("floor-nosync-churn", "the same floor again in the same directory, a second after its %s deletes (churned)" % NB, "none", FL, FL),
        ("floor-fsync", "floor with fsync(file)+fsync(new/) per message; fsync(cur/) after claim and after ack", "per message", FL, FL),
        ("floor-group", "floor with group commit: per 100, one syncfs + one fsync(new/); then claim+ack (no fsync) of these on-disk files", "per 100", FL, FL),
        ("floor-group-churn", "group-commit floor again in the same directory, a second after its %s deletes" % NB, "per 100", "floor-group", "floor-group"),
        ("floor-recycle", "cure tried: group-commit floor, but ack renames into free/ and send overwrites a file taken from free/ (write + ftruncate)", "per 100", "floor-group", "floor-group"),
        ("floor-recycle-churn", "that recycling floor again in the same directory, a second later (every send reuses an acked inode and its block)", "per 100", "floor-group-churn", "floor-group-churn"),
        ("spawn-bash", "spawn floor: a no-op C binary from a bash loop (stdin from the 1 KiB file)", "-", None, None),
        ("spawn-c", "spawn floor: the no-op via posix_spawn from C", "-", None, None),
        ("spawn-sh", "spawn floor of -x: /bin/sh -c /bin/true via posix_spawn from C", "-", None, None),
    ]),
    ("spoolmq", [
        ("mq-send-proc", "one mq-send per message (bash loop); deq: one mq-recv per message", "fsync file + new/", "spawn-bash", "spawn-bash"),
        ("mq-send-proc-nosync", "one mq-send --no-sync per message; deq: one mq-recv per message", "none", "spawn-bash", "spawn-bash"),
        ("mq-send-l", "mq-send -l (N lines, one process), fresh queue; deq: mq-recv -n 0 >/dev/null (data on disk)", "group commit", "floor-group", "floor-group"),
        ("mq-send-l-churn", "mq-send -l again into the same queue, a second after the drain of %s (churned); deq: mq-recv -n 0" % NB, "group commit", "floor-group-churn", "floor-group-churn"),
        ("mq-send-l-nosync", "mq-send -l --no-sync, fresh queue; deq: mq-recv -n 0 (data not yet written back)", "none", FL, FL),
        ("mq-send-l-nosync-churn", "mq-send -l --no-sync again into the same queue, a second after the drain (churned); deq: mq-recv -n 0", "none", "floor-nosync-churn", "floor-nosync-churn"),
        ("mq-recv-x", "mq-recv -n 0 -x /bin/true (deq column)", "-", None, "spawn-sh"),
        ("send-one-l", "pubsub: mq-send -l of N_PUB lines into one queue (beside the publish below)", "group commit", "floor-group", None),
        ("publish-10-l", "pubsub: the same lines by mq-send -l --topic to 10 subscribers (one file, 10 links each)", "group commit", "send-one-l", None),
        ("send-one-proc", "pubsub: one mq-send per message into one queue", "fsync file + new/", "spawn-bash", None),
        ("publish-10-proc", "pubsub: one mq-send --topic per message to 10 subscribers", "fsync file, tmp/s, .pub/, each new/", "send-one-proc", None),
        ("keys-plain", "keys: mq-recv -n 0 of N_KEYED messages without keys, synced (beside the keyed drain below)", "-", None, FL),
        ("keys-keyed", "keys: mq-recv -n 0 of N_KEYED messages over N_KEYS ordering keys (mq-send --key), synced", "-", None, "keys-plain"),
        ("keys-plain-tmpfs", "keys on tmpfs (the algorithm alone): mq-recv -n 0 of N_KEYED messages without keys", "-", None, None),
        ("keys-keyed-tmpfs", "keys on tmpfs: mq-recv -n 0 of N_KEYED messages over N_KEYS keys", "-", None, "keys-plain-tmpfs"),
        ("ext4-drain", "mq-recv -n 0 over the rest of the ext4 time-to-first-message backlog (capped at DRAIN_CAP s)", "-", None, FL),
    ]),
    ("peers", [
        ("redis-pipe", "Redis, appendfsync always: redis-cli --pipe LPUSH; RPOPLPUSH + LREM (reliable queue)", "per event-loop pass", FL, FL),
        ("redis-proc", "Redis, appendfsync always: one redis-cli LPUSH per message (bash loop)", "per message", "spawn-bash", None),
        ("bs-pipe", "beanstalkd -b -f0 (binlog, fsync every write): python socket client, 100 in flight", "per write", FL, FL),
        ("bs-proc", "beanstalkd -b -f0: one `printf put \\| nc -N` per message (bash loop)", "per write", "spawn-bash", None),
        ("dirq", "python3-dirq QueueSimple in one process: add; lock+get+remove", "none (no option)", FL, FL),
    ]),
]
FLOOR_NAME = {FL: "no-fsync floor", "floor-nosync-churn": "churned floor", "floor-group": "group floor",
              "floor-group-churn": "churned group floor", "spawn-bash": "spawn floor", "spawn-sh": "sh spawn floor",
              "floor-fsync": "fsync floor"}


def ratio_cell(id_, metric, ref):
    if ref is None or ref == id_:
        return ""
    v = x(med(rate(id_, metric)), med(rate(ref, metric if not ref.startswith("spawn") else "enq")))
    return "%s %s" % (fx(v), FLOOR_NAME.get(ref, ref)) if v is not None else ""


# ------------------------------------------------------------------ targets ---
def drains():
    pts = []
    for (id_, metric) in samples:
        if id_.startswith("drain-") and metric == "deq":
            st = rate(id_, "deq")
            pts.append((int(id_.split("-", 1)[1]), st))
    return sorted(pts, key=lambda p: p[0])


send_p, send_l, send_ln = rate("mq-send-proc", "enq"), rate("mq-send-l", "enq"), rate("mq-send-l-nosync", "enq")
recv_n0 = rate("mq-send-l-nosync", "deq")      # same disk state as the floor: data unwritten
recv_disk = rate("mq-send-l", "deq")           # a durable backlog: blocks on disk
f_gr_d = rate("floor-group", "deq")
redis_p, bs_pipe, dirq = rate("redis-proc", "enq"), rate("bs-pipe", "enq"), rate("dirq", "enq")
dirq_d = rate("dirq", "deq")
f_no, f_fs, f_gr, sp = rate(FL, "enq"), rate("floor-fsync", "enq"), rate("floor-group", "enq"), rate("spawn-bash", "enq")
f_no_d = rate(FL, "deq")
first = ms("first-mq-recv")
HAVE_MQ = send_p is not None or send_l is not None or first is not None

targets = []   # (what, figure, bound, ratio text, met)


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**missed**"


def tgt(what, fig, fig_txt, ref, factor, ref_txt, greater=True, strict=False):
    if fig is None or ref is None:
        targets.append((what, fig_txt if fig is not None else "-", ref_txt, "-", verdict(None)))
        return
    r = fig / ref
    ok = (r > factor if strict else r >= factor) if greater else r <= factor
    targets.append((what, fig_txt, ref_txt, fx(r) + (" of it" if factor != 1 else ""), verdict(ok)))


tgt("mq-send, 1 process/msg, durable ≥ 3× one redis-cli per message",
    med(send_p), "%s msg/s" % fmt(med(send_p)), med(redis_p), 3,
    "redis-cli: %s msg/s → need ≥ %s" % (fmt(med(redis_p)), fmt(3 * med(redis_p)) if redis_p else "-"))
if send_p and redis_p and sp and f_fs and targets[-1][4] == verdict(False):
    reach = 1 / (1 / med(sp) + 1 / med(f_fs))     # one spawn + one durable send, nothing else
    if reach < 3 * med(redis_p):
        t = targets[-1]
        targets[-1] = (t[0], t[1], t[2] + "; spawn + fsync floors allow at most %s" % fmt(reach), t[3],
                       "**missed**: out of reach in this run (the floors allow %s < %s)" % (fmt(reach), fmt(3 * med(redis_p))))
if send_p and sp and f_fs:
    t_send = 1e6 / med(send_p)
    t_floor = 1e6 / med(sp) + 1e6 / med(f_fs)
    tgt("mq-send, 1 process/msg, durable: time ≤ 1.3× (spawn floor + fsync-per-msg floor)",
        t_send, "%.0f µs/msg" % t_send, t_floor, 1.3,
        "%.0f + %.0f = %.0f µs → need ≤ %.0f µs" % (1e6 / med(sp), 1e6 / med(f_fs), t_floor, 1.3 * t_floor), greater=False)
else:
    targets.append(("mq-send, 1 process/msg, durable: time ≤ 1.3× (spawn + fsync floor)", "-", "-", "-", verdict(None)))
tgt("mq-send -l durable ≥ 0.8× group-commit floor", med(send_l), "%s msg/s" % fmt(med(send_l)),
    med(f_gr), 0.8, "floor: %s → need ≥ %s" % (fmt(med(f_gr)), fmt(0.8 * med(f_gr)) if f_gr else "-"))
tgt("mq-send -l durable > beanstalkd fsync per write (batched)", med(send_l), "%s msg/s" % fmt(med(send_l)),
    med(bs_pipe), 1, "beanstalkd -f0: %s" % fmt(med(bs_pipe)), strict=True)
tgt("mq-send -l --no-sync ≥ 0.8× no-fsync floor", med(send_ln), "%s msg/s" % fmt(med(send_ln)),
    med(f_no), 0.8, "floor: %s → need ≥ %s" % (fmt(med(f_no)), fmt(0.8 * med(f_no)) if f_no else "-"))
tgt("mq-send -l --no-sync > python-dirq add", med(send_ln), "%s msg/s" % fmt(med(send_ln)),
    med(dirq), 1, "dirq: %s" % fmt(med(dirq)), strict=True)
tgt("mq-recv -n 0 (claim+ack) ≥ 0.8× floor claim+ack (both: data not yet written back)", med(recv_n0), "%s msg/s" % fmt(med(recv_n0)),
    med(f_no_d), 0.8, "floor: %s → need ≥ %s" % (fmt(med(f_no_d)), fmt(0.8 * med(f_no_d)) if f_no_d else "-"))
tgt("mq-recv -n 0 of a durable backlog ≥ 0.8× floor claim+ack of on-disk files", med(recv_disk), "%s msg/s" % fmt(med(recv_disk)),
    med(f_gr_d), 0.8, "on-disk floor: %s → need ≥ %s" % (fmt(med(f_gr_d)), fmt(0.8 * med(f_gr_d)) if f_gr_d else "-"))
tgt("mq-recv -n 0 ≥ 1.3× python-dirq lock+get+remove (both unwritten)", med(recv_n0), "%s msg/s" % fmt(med(recv_n0)),
    med(dirq_d), 1.3, "dirq: %s → need ≥ %s" % (fmt(med(dirq_d)), fmt(1.3 * med(dirq_d)) if dirq_d else "-"))
for kind, label in (("l", "mq-send -l"), ("proc", "one mq-send per message")):
    one, pub = rate("send-one-" + kind, "enq"), rate("publish-10-" + kind, "enq")
    if one and pub:
        # cost is time per message: the publish may take at most 10x the send's
        tgt("publish to 10 subscribers (%s) costs < 10× the send to one queue" % label,
            med(pub), "%s msg/s" % fmt(med(pub)), med(one), 0.1,
            "send to one queue: %s → need > %s" % (fmt(med(one)), fmt(0.1 * med(one))), strict=True)
    else:
        targets.append(("publish to 10 subscribers (%s) costs < 10× the send to one queue" % label,
                        "-", "-", "-", verdict(None)))
_kp, _kk = rate("keys-plain", "deq"), rate("keys-keyed", "deq")
_kparams = env.get("keys params", "")
if _kp and _kk:
    tgt("mq-recv -n 0 of %s messages over %s keys ≥ 0.8× the same queue without keys (same run; both synced, ext4)" % (
        _kparams.split("N_KEYED=")[-1].split()[0] if "N_KEYED=" in _kparams else "N",
        _kparams.split("N_KEYS=")[-1].split()[0] if "N_KEYS=" in _kparams else "K"),
        med(_kk), "%s msg/s" % fmt(med(_kk)), med(_kp), 0.8,
        "without keys: %s → need ≥ %s" % (fmt(med(_kp)), fmt(0.8 * med(_kp))))
else:
    targets.append(("mq-recv -n 0 over keys ≥ 0.8× the same without keys", "-", "-", "-", verdict(None)))
_kpt, _kkt = rate("keys-plain-tmpfs", "deq"), rate("keys-keyed-tmpfs", "deq")
if _kpt and _kkt:
    _ck, _cp = cpu_us("keys-keyed-tmpfs", "deq"), cpu_us("keys-plain-tmpfs", "deq")
    targets.append(("the same on tmpfs (report: the algorithm alone, no disk)",
                    "%s msg/s (%s CPU µs/msg)" % (fmt(med(_kkt)), "%.1f" % _ck if _ck else "-"),
                    "without keys: %s msg/s (%s CPU µs/msg)" % (fmt(med(_kpt)), "%.1f" % _cp if _cp else "-"),
                    fx(med(_kkt) / med(_kpt)) + " of it" + ("; CPU %s" % fx(_cp / _ck) if _ck and _cp else ""),
                    "report"))
if first:
    ff = ms("first-floor")
    fc = ms("first-cold")
    v = verdict(first["med"] < 20)
    ref = "20 ms"
    if ff:
        ref += "; floor (one readdir of new/ + claim): %.1f ms" % ff["med"]
    if fc:
        ref += "; the consumer that reads new/ itself (no hint yet): %.1f ms" % fc["med"]
    targets.append(("first message from a %s backlog < 20 ms (one mq-recv process, with the head hint of the consumer before)" % env.get("params", "").split("BACKLOG=")[-1].split()[0],
                    "%.1f ms" % first["med"], ref, "%.2f× of it" % (first["med"] / 20), v))
else:
    targets.append(("first message from the backlog < 20 ms", "-", "20 ms", "-", verdict(None)))
dp = [(n, st) for n, st in drains() if st]
if len(dp) >= 2:
    (n0, s0), (n1, s1) = dp[0], dp[-1]
    c0, c1 = cpu_us("drain-%d" % n0, "deq"), cpu_us("drain-%d" % n1, "deq")
    wall = (1 / med(s1)) / (1 / med(s0))
    if c0 and c1:
        growth = c1 / c0
        targets.append(("drain linear in the backlog (tmpfs): CPU µs/msg at %s ÷ at %s ≤ 1.5" % (fmt(n1), fmt(n0)),
                        "%.1f → %.1f CPU µs/msg (wall %.1f → %.1f)" % (c0, c1, 1e6 / med(s0), 1e6 / med(s1)), "≤ 1.5×",
                        "%s (wall %s)" % (fx(growth), fx(wall)), verdict(growth <= 1.5)))
    else:
        targets.append(("drain linear in the backlog (wall µs/msg at %s ÷ at %s ≤ 1.5)" % (fmt(n1), fmt(n0)),
                        "%.1f → %.1f µs/msg" % (1e6 / med(s0), 1e6 / med(s1)), "≤ 1.5×", fx(wall), verdict(wall <= 1.5)))
else:
    targets.append(("drain linear in the backlog", "-", "≤ 1.5×", "-", verdict(None)))
churn = rate("mq-send-l-churn", "enq")
fgc = rate("floor-group-churn", "enq")
targets.append(("mq-send -l durable, churned spool (report; keep it near the fresh figure)",
                "%s msg/s" % fmt(med(churn)) if churn else "-",
                "fresh: %s; churned group floor: %s" % (fmt(med(send_l)), fmt(med(fgc))),
                ("%s of fresh, %s of churned floor" % (fx(x(med(churn), med(send_l))), fx(x(med(churn), med(fgc))))) if churn else "-",
                "report"))

# ------------------------------------------------------------------ relay ---
# bench/run's relay section: relay-floor (floor.c synced: enq = group commit, deq = claim +
# read + ack of on-disk files), relay-send-l (mq-send -l durable), relay-cN / relay-cN-rx
# (the relay with forward concurrency N: the sender's and the receiver's CPU and VmHWM over
# the same span), and relay.txt (the once-per-run kill/restart and big-message cases).
RELAY_CONCS = env.get("relay params", "").split("RELAY_CONCS=")[-1].split(" RELAY_CAP=")[0].split() \
    if "RELAY_CONCS=" in env.get("relay params", "") else []
_seen = [i for (i, m) in samples if m == "deq" and i.startswith("relay-c") and not i.endswith("-rx")]
for _i in _seen:
    if _i[len("relay-c"):] not in RELAY_CONCS:
        RELAY_CONCS.append(_i[len("relay-c"):])
relay_info = OrderedDict()
if os.path.exists(os.path.join(resdir, "relay.txt")):
    with open(os.path.join(resdir, "relay.txt")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition(": ")
            relay_info[k] = v
rel_fl, rel_fl_enq, rel_send = rate("relay-floor", "deq"), rate("relay-floor", "enq"), rate("relay-send-l", "enq")
rel_allow, rel_allow_what = None, ""
if rel_fl and rel_send:
    rel_allow, rel_allow_what = min((med(rel_fl), "the sender's claim+ack floor"), (med(rel_send), "the receiver's mq-send -l"))
relay_capped = [sk for sk in skipped if "relay" in sk]
BIG_FLAT_KIB = 16384      # "flat": a daemon's VmHWM after the big message at most this above its VmRSS before
relay_targets = []


def conc_label(c):
    return "the forward's default concurrency" if c == "default" else "forward concurrency %s" % c


rel_serial = 1 / (1 / med(rel_fl) + 1 / med(rel_send)) if rel_fl and rel_send else None


def _rtgt(what, fig, ref, ratio, ok):
    relay_targets.append((what, fig, ref, ratio, verdict(ok)))


if RELAY_CONCS:
    c0 = RELAY_CONCS[0]
    r0 = rate("relay-c%s" % c0, "deq")
    cap0 = any(sk.startswith("capped: relay-c%s " % c0) for sk in skipped)
    ref = ("claim+ack floor of on-disk files: %s; mq-send -l durable: %s → lesser (%s): %s → need ≥ %s" % (
        fmt(med(rel_fl)), fmt(med(rel_send)), rel_allow_what, fmt(rel_allow), fmt(0.8 * rel_allow))) if rel_allow else "-"
    if r0 and rel_allow:
        v = med(r0) / rel_allow
        _rtgt("relay of %s-byte messages between two mq-relayd over loopback, durable at both ends (%s) ≥ 0.8× what the disk allows a relay" % (
            env.get("params", "").split("MSG_SIZE=")[-1].split()[0] if "MSG_SIZE=" in env.get("params", "") else "1024", conc_label(c0)),
            "%s msg/s%s" % (fmt(med(r0)), " (capped: a partial figure)" if cap0 else ""), ref, fx(v) + " of it", False if cap0 else v >= 0.8)
    else:
        _rtgt("relay over loopback ≥ 0.8× what the disk allows a relay", "-", ref, "-", None)
if relay_info.get("kill-n"):
    ri = relay_info
    n = int(ri["kill-n"])
    ok = (ri.get("kill-done") == "1" and int(ri["kill-files"]) == n and int(ri["kill-distinct"]) == n and
          int(ri["kill-missing"]) == 0 and int(ri["kill-extra"]) == 0 and int(ri["kill-left"]) == 0 and int(ri["kill-dead"]) == 0)
    _rtgt("%d messages relayed while the receiver is killed (SIGKILL) and restarted %s times: every one arrives, none twice" % (n, ri["kill-kills"]),
          "%s files in the receiver's new/, %s distinct ids; %s missing, %s twice, %s unknown; %s left at the sender, %s dead%s" % (
              ri["kill-files"], ri["kill-distinct"], ri["kill-missing"], int(ri["kill-files"]) - int(ri["kill-distinct"]),
              ri["kill-extra"], ri["kill-left"], ri["kill-dead"], "" if ri.get("kill-done") == "1" else " (stopped at KILL_CAP)"),
          "killed at %s messages received; %.1f s in all" % (ri.get("kill-at") or "-", float(ri["kill-seconds"])),
          "%s of %d" % (ri["kill-distinct"], n), ok)
if relay_info.get("big-mb"):
    ri = relay_info
    if ri.get("big-skipped"):
        _rtgt("one %s MiB message relayed with both daemons' resident memory flat" % ri["big-mb"], "skipped: " + ri["big-skipped"], "", "-", None)
    else:
        rx_, tx_ = [list(map(int, ri[k].split())) for k in ("big-rx", "big-tx")]
        grow = max(rx_[4] - rx_[0], tx_[4] - tx_[0])
        body_ok = int(ri["big-body"]) == int(ri["big-mb"]) * 1048576 and ri["big-files"] == "1" and ri["big-left"] == "0" and ri["big-done"] == "1"
        _rtgt("one %s MiB message relayed (streamed): VmHWM after − VmRSS before ≤ %d MiB, for each daemon" % (ri["big-mb"], BIG_FLAT_KIB // 1024),
              "receiver %d → %d KiB (VmHWM %d), sender %d → %d KiB (VmHWM %d)" % (rx_[0], rx_[3], rx_[4], tx_[0], tx_[3], tx_[4]),
              "body arrived: %s (%s bytes); %.1f s" % ("yes" if body_ok else "NO", ri["big-body"], float(ri["big-relay-s"])),
              "+%d KiB at most" % grow, grow <= BIG_FLAT_KIB and body_ok)

# ------------------------------------------------------------------ writing ---
L = []
L.append("# spoolmq benchmark results")
L.append("")
L.append("Written by `make bench` (bench/run) on %s; every figure below comes from that one run "
         "(%s repetitions, rep-major: each case once, then all again). Raw samples: "
         "bench/results/%s/ (not kept in git)." % (env.get("date", "?"), env.get("params", "").split("REPS=")[-1].split()[0], env.get("stamp", "?")))
L.append("")
L.append("## Machine")
L.append("")
for k in ("date", "kernel", "cores", "cpu", "memory", "scratch fs", "drain linearity dir", "loadavg at start", "spoolmq", "mq-relayd", "mq-relayd forward", "peers", "params", "seconds"):
    if k in env:
        L.append("- %s: %s" % (k, env[k] + (" s (whole run)" if k == "seconds" else "")))
for sk in skipped:
    L.append("- " + sk)
L.append("")
L.append("## Targets (issue 5)")
L.append("")
if not HAVE_MQ:
    L.append("**The mq commands were not built when this ran: only the floor and the peers were measured.**")
    L.append("")
L.append("| target | figure (median) | reference in this run | ratio | verdict |")
L.append("|---|---|---|---|---|")
for t in targets:
    L.append("| " + " | ".join(t) + " |")
L.append("")
L.append("## All cases (msgs/s, median [min-max]; ratios = median ÷ median of the named floor in this run)")
L.append("")
L.append("Messages are 1 KiB. `enq` = send / add / put; `deq` = claim + read + ack (remove).")
L.append("")
for title, rows in CASES:
    L.append("### " + title)
    L.append("")
    L.append("| case | durability | N | enq msgs/s | enq ratio | deq msgs/s | deq ratio |")
    L.append("|---|---|---|---|---|---|---|")
    for id_, what, dur, eref, dref in rows:
        se, sd = rate(id_, "enq"), rate(id_, "deq")
        if se is None and sd is None:
            if title == "spoolmq":
                L.append("| %s | %s | - | not measured | | | |" % (what, dur))
            continue
        n = (se or sd)["n"]
        L.append("| %s | %s | %d | %s | %s | %s | %s |" % (
            what, dur, n, cell(se), ratio_cell(id_, "enq", eref) if se else "",
            cell(sd), ratio_cell(id_, "deq", dref) if sd else ""))
    L.append("")

L.append("### Time to the first message from a backlog (one process, wall time from fork to exit)")
L.append("")
fb = ms("first-floor")
fn = ms("first-noop")
if first:
    def fcpu(id_, table):
        v = cpu_us(id_, "first", table)
        return "%.1f" % (v / 1000) if v else "-"
    L.append("| what | wall ms, median [min-max] | CPU ms (user+sys) | user ms | peak RSS KiB |")
    L.append("|---|---|---|---|---|")
    L.append("| `mq-recv -d DIR q >/dev/null`, a consumer after another (uses QUEUE/.head) | %.2f [%.2f-%.2f] | %s | %s | %s |" % (
        first["med"], first["min"], first["max"], fcpu("first-mq-recv", None), fcpu("first-mq-recv", users), rss("first-mq-recv", "first")))
    fc = ms("first-cold")
    if fc:
        L.append("| `mq-recv -d DIR q >/dev/null`, cold: no hint, reads all of new/ and writes the hint | %.2f [%.2f-%.2f] | %s | %s | %s |" % (
            fc["med"], fc["min"], fc["max"], fcpu("first-cold", None), fcpu("first-cold", users), rss("first-cold", "first")))
    if fb:
        L.append("| floor: readdir all of new/, pick the smallest name, rename, read, write, unlink (bench/src/firstfloor.c) | %.2f [%.2f-%.2f] | %s | %s | %s |" % (
            fb["med"], fb["min"], fb["max"], fcpu("first-floor", None), fcpu("first-floor", users), rss("first-floor", "first")))
    if fn:
        L.append("| exec of a no-op binary (same timer) | %.2f [%.2f-%.2f] | | | %s |" % (fn["med"], fn["min"], fn["max"], rss("first-noop", "first")))
    L.append("")
    L.append("Runs alternate mq-recv, floor, no-op against the same backlog (each takes one message). "
             "The directory is hot in the page cache (it was just written); a cold cache adds the reads of the directory blocks.")
else:
    L.append("not measured (mq-recv not built)")
L.append("")

L.append("### Drain linearity: `mq-recv -n 0 -d DIR q >/dev/null` on backlogs of growing size (tmpfs)")
L.append("")
if dp:
    L.append("| backlog | drain msgs/s | wall µs/msg | ÷ smallest | CPU µs/msg (user+sys) | ÷ smallest | user µs/msg | ÷ smallest | fill with mq-send -l --no-sync (msgs/s) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    cbase = cpu_us("drain-%d" % dp[0][0], "deq")
    ubase = cpu_us("drain-%d" % dp[0][0], "deq", users)
    for n, st in dp:
        fs = rate("fill-%d" % n, "enq")
        cu = cpu_us("drain-%d" % n, "deq")
        uu = cpu_us("drain-%d" % n, "deq", users)
        L.append("| %s | %s | %.1f | %s | %s | %s | %s | %s | %s |" % (fmt(n), cell(st), 1e6 / med(st), fx(x(1e6 / med(st), 1e6 / med(dp[0][1]))),
                 "%.1f" % cu if cu else "-", fx(x(cu, cbase)), "%.1f" % uu if uu else "-", fx(x(uu, ubase)), cell(fs) if fs else "-"))
    L.append("")
    L.append("Filled with `mq-send -l --no-sync`, drained at once, on tmpfs (%s): what grows with the backlog is "
             "mq-recv's own work per message (listing, sorting, claiming), without ext4's writeback state and "
             "per-block discards, which move the disk figures by up to 10× on this shared machine. CPU = user + "
             "system time of the mq-recv process (wait4); the verdict uses it." % env.get("drain linearity dir", "?"))
    ed = rate("ext4-drain", "deq")
    if ed:
        sp_ = samples.get(("ext4-drain", "span"))
        L.append("")
        L.append("On ext4, the rest of the %s time-to-first-message backlog drains at %s msgs/s (%.1f wall µs/msg, "
                 "%s CPU µs/msg; fill to drain end %s s at most). Whether its data had been written back by then "
                 "(30 s dirty expiry, or any process's syncfs on this shared file system) decides between the "
                 "no-fsync and the on-disk claim+ack floor; drains are capped at DRAIN_CAP s." % (
                     env.get("params", "").split("BACKLOG=")[-1].split()[0], cell(ed), 1e6 / med(ed),
                     "%.1f" % cpu_us("ext4-drain", "deq") if cpu_us("ext4-drain", "deq") else "-",
                     "%.0f" % max(sec for _, sec, _ in sp_) if sp_ else "-"))
else:
    L.append("not measured")
L.append("")

L.append("### Peak resident memory (ru_maxrss of the process, as /usr/bin/time %M reports it)")
L.append("")
rss_rows = [("mq-send (one message)", rss("rss-mq-send", "rss")), ("mq-recv (one message)", rss("rss-mq-recv", "rss")),
            ("mq-send -l (N_BATCH lines)", rss("mq-send-l", "enq")), ("mq-send -l --no-sync (N_BATCH lines)", rss("mq-send-l-nosync", "enq")),
            ("mq-recv -n 0 (N_BATCH backlog)", rss("mq-send-l", "deq")), ("mq-recv -n 0 -x /bin/true", rss("mq-recv-x", "deq")),
            ("mq-recv, first message from the backlog", rss("first-mq-recv", "first"))]
for n, st in dp:
    rss_rows.append(("mq-recv -n 0 over %s (tmpfs)" % fmt(n), rss("drain-%d" % n, "deq")))
rss_rows.append(("mq-recv -n 0 over the rest of the ext4 backlog", rss("ext4-drain", "deq")))
rss_rows.append(("mq-relayd (VmHWM after the relayd cases)", rss("rss-mq-relayd", "rss")))
rss_rows.append(("floor: firstfloor (for scale)", rss("first-floor", "first")))
rss_rows.append(("no-op C binary (for scale)", rss("first-noop", "first")))
if any(v for _, v in rss_rows):
    L.append("| command | peak RSS KiB (max over reps) |")
    L.append("|---|---|")
    for name, v in rss_rows:
        L.append("| %s | %s |" % (name, v if v is not None else "-"))
else:
    L.append("not measured (mq commands not built)")
L.append("")

L.append("### mq-relayd")
L.append("")
relayd = env.get("mq-relayd", "not yet built")
fwd = env.get("mq-relayd forward", "not yet built")


def lat(id_):
    s = samples.get((id_, "lat"))
    if not s:
        return None
    v = sorted(sec * 1000 for _, sec, _ in s)
    return {"med": statistics.median(v), "min": v[0], "max": v[-1], "p90": v[min(len(v) - 1, int(0.9 * len(v)))], "n": len(v)}


L.append("| case | figure | beside |")
L.append("|---|---|---|")
la, lc, tp = lat("relayd-lat"), lat("relayd-lat-commit"), rate("relayd-tput", "deq")
if relayd != "built":
    L.append("| send-to-handler latency through mq-relayd | not yet built | |")
    L.append("| consumer throughput of mq-relayd | not yet built | |")
else:
    if la:
        L.append("| send-to-handler latency: `mq-send` (durable) started → handler running (%d sends, one at a time) | "
                 "%.2f ms median, p90 %.2f, [%.2f-%.2f] | one mq-send alone: %.2f ms (1/rate of the per-process case) |" % (
                     la["n"], la["med"], la["p90"], la["min"], la["max"], 1e3 / med(send_p) if send_p else float("nan")))
    if lc:
        L.append("| the same from mq-send's exit (commit) → handler running | %.2f ms median, p90 %.2f, [%.2f-%.2f] | "
                 "`sh -c` spawn floor: %.2f ms |" % (lc["med"], lc["p90"], lc["min"], lc["max"],
                                                     1e3 / med(rate("spawn-sh", "enq")) if rate("spawn-sh", "enq") else float("nan")))
    if tp:
        L.append("| consumer throughput: backlog of %d, `consume t printf . >>F`, concurrency 1 (daemon start to last handler) | %s msgs/s | "
                 "mq-recv -n 0 -x /bin/true: %s; sh spawn floor: %s |" % (tp["n"], cell(tp), fmt(med(rate("mq-recv-x", "deq"))), fmt(med(rate("spawn-sh", "enq")))))
    if not (la or lc or tp):
        L.append("| mq-relayd | built, not measured in this run (section relayd not run) | |")
_r1 = rate("relay-c%s" % RELAY_CONCS[0], "deq") if RELAY_CONCS else None
L.append("| relay throughput (HTTP forward between two spools) | %s | |" % (
    "not yet built" if fwd != "built" else
    ("%s msgs/s (%s): see \"Relay between two mq-relayd\" below" % (cell(_r1), conc_label(RELAY_CONCS[0]))) if _r1 else
    "built; not measured in this run (section relay not run)"))
L.append("")
# the soak (once per run) has its own heading and table: after the table above
_soak = os.path.join(sys.argv[1], "soak.md")
if os.path.exists(_soak):
    L.extend(open(_soak).read().rstrip("\n").split("\n"))
    L.append("")

# strace -c: syscalls per message
st_dir = os.path.join(resdir, "strace")
if os.path.isdir(st_dir) and os.path.exists(os.path.join(st_dir, "counts")):
    counts = {}
    with open(os.path.join(st_dir, "counts")) as f:
        for line in f:
            k, v = line.split()
            counts[k] = int(v)
    per = OrderedDict()
    calls_seen = OrderedDict()
    for name, n in counts.items():
        p = os.path.join(st_dir, name + ".txt")
        if not os.path.exists(p):
            continue
        d = {}
        with open(p) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                    try:
                        d[parts[-1]] = int(parts[3])
                    except ValueError:
                        pass
        per[name] = (n, d)
        for c in d:
            calls_seen[c] = calls_seen.get(c, 0) + d[c] / n
    if per:
        keyc = ["fsync", "fdatasync", "syncfs", "rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat",
                "openat", "close", "read", "pread64", "write", "getdents64", "newfstatat", "statx", "fstat", "mkdir", "mkdirat",
                "readlink", "flock", "brk", "mmap", "getrandom", "clone", "clone3", "vfork", "wait4", "pidfd_open", "poll"]
        top = [c for c in keyc if calls_seen.get(c)]
        top += [c for c, _ in sorted(calls_seen.items(), key=lambda kv: -kv[1]) if c not in top][:max(0, 18 - len(top))]
        L.append("### Syscalls per message (strace -c of the mq process itself, not timed)")
        L.append("")
        L.append("| command (messages) | total/msg | " + " | ".join(top) + " |")
        L.append("|---|---|" + "---|" * len(top))
        for name, (n, d) in per.items():
            tot = sum(d.values()) / n
            L.append("| %s (%d) | %.1f | %s |" % (name, n, tot, " | ".join(
                ("%.2f" % (d[c] / n) if d.get(c) else "") for c in top)))
        L.append("")
        L.append("For one-message commands the count includes process start-up (dynamic loader, locale).")
        L.append("")

if RELAY_CONCS or relay_info:
    L.append("## Relay between two mq-relayd (forward → listen over loopback)")
    L.append("")
    L.append("Measured by bench/run's relay section in the run above (%s; %s, %s cores, %s, %s; scratch: %s; "
             "loadavg at start %s), beside the floors of the same repetitions. %s." % (
                 env.get("date", "?"), env.get("cpu", "?"), env.get("cores", "?"), env.get("memory", "?"), env.get("kernel", "?"),
                 env.get("scratch fs", "?"), env.get("loadavg at start", "?"), env.get("relay params", "")))
    L.append("")
    L.append("| target | figure | reference in this run | ratio | verdict |")
    L.append("|---|---|---|---|---|")
    for t in relay_targets:
        L.append("| " + " | ".join(t) + " |")
    L.append("")
    L.append("| case | N | msgs/s, median [min-max] | ÷ what the disk allows | CPU µs/msg sender | CPU µs/msg receiver | peak RSS KiB sender / receiver |")
    L.append("|---|---|---|---|---|---|---|")

    def _us(v):
        return "%.0f" % v if v is not None else "-"
    if rel_fl:
        L.append("| (a) sender's floor: claim + read + ack of on-disk files (floor.c synced, as for mq-recv -n 0 of a durable backlog) | %d | %s | %s | | | |" % (
            rel_fl["n"], cell(rel_fl), fx(x(med(rel_fl), rel_allow))))
    if rel_send:
        L.append("| (b) receiver's: mq-send -l, durable (group commit), fresh spool | %d | %s | %s | %s | | %s |" % (
            rel_send["n"], cell(rel_send), fx(x(med(rel_send), rel_allow)), _us(cpu_us("relay-send-l", "enq")), rss("relay-send-l", "enq") or "-"))
    if rel_serial:
        L.append("| for scale: (a) and (b) one after the other, 1/(1/a + 1/b): both sides' disk work on this one disk, not overlapped | - | %s | %s | | | |" % (
            fmt(rel_serial), fx(x(rel_serial, rel_allow))))
    if rel_fl_enq:
        L.append("| for scale: that floor's enqueue (per 100: one syncfs + one fsync(new/)) | %d | %s | %s | | | |" % (
            rel_fl_enq["n"], cell(rel_fl_enq), fx(x(med(rel_fl_enq), rel_allow))))
    for c in RELAY_CONCS:
        st = rate("relay-c%s" % c, "deq")
        capn = [sk for sk in skipped if sk.startswith("capped: relay-c%s " % c)]
        if not st:
            L.append("| relay, %s | - | not measured | | | | |" % conc_label(c))
            continue
        L.append("| relay, %s: sender start → its last ack (all %s durable at the receiver)%s | %d | %s | %s | %s | %s | %s / %s |" % (
            conc_label(c), "acked" if not capn else "counted", " — **capped**" if capn else "", st["n"], cell(st), fx(x(med(st), rel_allow)),
            _us(cpu_us("relay-c%s" % c, "deq")), _us(cpu_us("relay-c%s-rx" % c, "deq")),
            rss("relay-c%s" % c, "deq") or "-", rss("relay-c%s-rx" % c, "deq") or "-"))
    L.append("")
    L.append("What the disk allows a relay is the lesser of (a) and (b): the sender claims, reads and acks "
             "messages that are on disk; the receiver writes and group-commits them. Both daemons run on this "
             "one machine (2 cores here), so their CPU adds up; CPU = user + system time of each daemon "
             "(/proc/PID/stat) over the relay, per message relayed.")
    if relay_capped:
        L.append("")
        for sk in relay_capped:
            L.append("- " + sk)
    ri = relay_info
    if ri.get("kill-n"):
        L.append("")
        L.append("Receiver killed and restarted (once per run): %s messages from an on-disk backlog, %s, with "
                 "`backoff 50ms..500ms`; the receiver was sent SIGKILL when its new/ held %s messages and started again on the same "
                 "port 0.3 s later. Ids checked against the sender's: the names in the receiver's new/. "
                 "Sender log warnings (peer gone, retried): %s; files left in the receiver's tmp/ by killed transfers: %s." % (
                     ri["kill-n"], conc_label(ri.get("kill-conc", "?")), ri.get("kill-at") or "-", ri.get("kill-warnings", "?"), ri.get("kill-tmp-left", "?")))
    if ri.get("big-mb") and not ri.get("big-skipped"):
        rx_, tx_ = [list(map(int, ri[k].split())) for k in ("big-rx", "big-tx")]
        L.append("")
        L.append("One %s MiB message (from /dev/zero, sent with `mq-send -d DIR big`: %.1f s, peak RSS %s KiB), relayed in %.1f s "
                 "(%.0f MiB/s, from mq-send's exit to the sender's ack); %s MiB were free on the scratch fs:" % (
                     ri["big-mb"], float(ri["big-send-s"]), ri["big-send-rss"], float(ri["big-relay-s"]),
                     int(ri["big-mb"]) / float(ri["big-relay-s"]) if float(ri["big-relay-s"]) > 0 else 0, ri["big-free-mb"]))
        L.append("")
        L.append("| daemon | VmRSS before | VmHWM before | VmRSS peak (sampled / 50 ms) | VmRSS after | VmHWM after | VmHWM after − VmRSS before |")
        L.append("|---|---|---|---|---|---|---|")
        for name, v in (("receiver (listen)", rx_), ("sender (forward)", tx_)):
            L.append("| %s | %d | %d | %d | %d | %d | %+d KiB |" % (name, v[0], v[1], v[2], v[3], v[4], v[4] - v[0]))
    L.append("")

# the fleet (issue 12, bench/fleet, once per run): its own section, written by fleet_check.py
_fleet = os.path.join(resdir, "fleet", "fleet.md")
if os.path.exists(_fleet):
    L.extend(open(_fleet).read().rstrip("\n").split("\n"))
    L.append("")
elif any(sk.startswith(("skipped: fleet", "fault: fleet")) for sk in skipped):
    L.append("## The fleet: hosts relaying to one collector (network namespaces)")
    L.append("")
    for sk in skipped:
        if sk.startswith(("skipped: fleet", "fault: fleet")):
            L.append("- " + sk)
    L.append("")

# bench/run's bridge section (issue 12): bridge-floor (natspub: plain js_PublishMsgAsync, the
# same window), bridge-out (mq-bridge -D out of a durable backlog), bridge-send-l (mq-send -l of
# the same N), bridge-in (mq-bridge -D in of the stream, 2 N), all against one three-node cluster.
br_fl, br_out = rate("bridge-floor", "enq"), rate("bridge-out", "deq")
br_send, br_in = rate("bridge-send-l", "enq"), rate("bridge-in", "deq")
br_disk, br_tmpfs = rate("bridge-disk-floor", "deq"), rate("bridge-out-tmpfs", "deq")
bridge_targets = []
if br_fl and br_out:
    _r = x(med(br_out), med(br_fl))
    bridge_targets.append(("mq-bridge out ≥ 0.8× plain libnats async publish (same cluster, same run)",
                           cell(br_out) + " msg/s", "natspub " + cell(br_fl) + " msg/s", fx(_r), verdict(_r >= 0.8)))
if br_fl and br_disk and br_out:
    _allow = min(med(br_fl), med(br_disk))
    _r = x(med(br_out), _allow)
    bridge_targets.append(("mq-bridge out ≥ 0.8× what the cluster and the disk allow (the lesser of natspub and "
                           "floor.c's claim+read+ack of on-disk files)", cell(br_out) + " msg/s",
                           "%s msg/s" % fmt(_allow), fx(_r), verdict(_r >= 0.8)))
if br_fl and br_tmpfs:
    _r = x(med(br_tmpfs), med(br_fl))
    bridge_targets.append(("for scale: mq-bridge out from a spool on tmpfs (no disk) ÷ natspub", cell(br_tmpfs) + " msg/s",
                           "natspub " + cell(br_fl) + " msg/s", fx(_r), "report"))
if br_fl or br_out:
    L.append("## Bridge to NATS JetStream (mq-bridge, three-node cluster on loopback)")
    L.append("")
    L.append("Measured by bench/run's bridge section (%s; %s, %s cores; %s). Each repetition starts three "
             "nats-server processes with JetStream on 127.0.0.1 (their stores on the scratch file system) and one "
             "stream of three replicas per case (file storage, duplicate window 2 min); the cluster, the bridge and "
             "the floor share this machine's cores." % (env.get("date", "?"), env.get("cpu", "?"), env.get("cores", "?"),
                                                    env.get("bridge params", "")))
    L.append("")
    L.append("| target | figure | reference in this run | ratio | verdict |")
    L.append("|---|---|---|---|---|")
    for t in bridge_targets:
        L.append("| " + " | ".join(t) + " |")
    L.append("")
    L.append("| case | N | msgs/s, median [min-max] | ÷ floor | CPU µs/msg | peak RSS KiB |")
    L.append("|---|---|---|---|---|---|")
    for label, st, id_, m in (
            ("floor: natspub, plain js_PublishMsgAsync with Nats-Msg-Id, window as the bridge's, whole process", br_fl, "bridge-floor", "enq"),
            ("mq-bridge -D out: claim, read, publish, ack on PubAck, from a durable backlog, whole process", br_out, "bridge-out", "deq"),
            ("floor.c: claim + read + ack of N on-disk files (the spool's part alone, what the disk allows)", br_disk, "bridge-disk-floor", "deq"),
            ("mq-bridge -D out from a spool on tmpfs (/dev/shm): the bridge without the disk", br_tmpfs, "bridge-out-tmpfs", "deq"),
            ("mq-send -l of the same N, durable (group commit), for scale", br_send, "bridge-send-l", "enq"),
            ("mq-bridge -D in: fetch 256, group commit, ack each (the N the bridge published)", br_in, "bridge-in", "deq")):
        if not st:
            continue
        cu = cpu_us(id_, m)
        L.append("| %s | %d | %s | %s | %s | %s |" % (label, st["n"], cell(st), fx(x(med(st), med(br_fl))),
                                                  "%.0f" % cu if cu is not None else "-", rss(id_, m) or "-"))
    L.append("")

L.append("## How it was measured")
L.append("")
L.append("""- One driver (bench/run), one run, rep-major repetitions; each figure is the median with [min-max].
- Each case runs in a fresh spool directory named with the run stamp under a `chattr +T` parent in
  bench/scratch, on the file system of the work tree. ext4 without a journal does not reuse a freed
  inode for 60-360 s (`recently_deleted()` in fs/ext4/ialloc.c) and each create scans past those
  inodes, so a busy spool gets slower creates: the "churned" rows send N_CHURN more messages into
  the same directory 1.1 s after its N_BATCH deletes, on purpose (an inode freed within the
  current second is not yet "recent": without the pause a short churned run looks fresh).
- Floors (bench/src/floor.c, gcc -O2) do only the syscalls of each operation in one process.
  The spawn floor runs a no-op C binary from a bash loop, as the per-process cases do.
- One-process figures (mq-send -l, mq-recv -n 0, -x, first message) are timed by bench/src/tm.c
  (fork to wait4, which also gives the peak RSS and the CPU time); per-process loops by bash's
  $EPOCHREALTIME. The batch section runs each mq-send -l / mq-recv -n 0 case right after the
  floor it is compared with, so that both see the same state of the shared machine.
- Drain linearity runs on tmpfs (the algorithm alone); the 100k time-to-first-message backlog
  is on ext4 and its drain is capped at DRAIN_CAP s (an ext4 backlog whose data was written back
  acks at the speed of one synchronous discard per message: 0.15-3 ms each here, depending on
  what else uses the disk).
- Peers: Redis with `appendonly yes, appendfsync always` on 127.0.0.1 (redis-cli --pipe;
  one redis-cli per message), beanstalkd `-b DIR -f0` (fsync on every write; Python socket client
  with 100 commands in flight; one nc per put), python3-dirq QueueSimple (no fsync option).
- Two properties of this file system shape the figures. (1) `discard` without a journal: ext4
  issues a synchronous discard for every block it frees (`perf stat -a -e block:block_rq_issue`
  around an `rm` of synced files shows one DS request per file), so acking a message whose data is
  on disk costs about 0.2 ms, while acking one whose data was never written back (delalloc) frees
  no block: compare the on-disk floor (floor-group deq) with the no-fsync floor. (2) delayed inode
  reuse (above): the churned rows. The recycling floor (ack renames into free/, send overwrites a
  file from free/) avoids both and shows what such a design would reach.
- The machine is a shared 2-core VM with a virtio disk behind a write-back cache: compare ratios
  within this run, not absolute figures across runs.
- Relay: two mq-relayd on 127.0.0.1 (a free port), each with its own spool in its own case
  directory on the scratch file system; the sender's backlog is written durably first; the
  figure runs from the sender's start to its last ack, then the receiver's new/ must hold every
  id once. Its floors, (a) floor.c synced (claim + read + ack of on-disk files) and (b) mq-send -l,
  run at the same N in the same repetition. Daemons are stopped by PID on every exit path.""")
L.append("")

with open(out, "w") as f:
    f.write("\n".join(L))

# headline on stdout
w = [max(len(t[i]) for t in targets) for i in range(5)]
print("\nHEADLINE (issue 5 targets; full report: %s)" % out)
for t in targets:
    print("  " + "  ".join(t[i].ljust(w[i]) for i in range(5)).rstrip())
if bridge_targets:
    print("BRIDGE")
    for t in bridge_targets:
        print("  " + " | ".join(t))
if relay_targets:
    print("RELAY")
    for t in relay_targets:
        print("  " + " | ".join(t))
