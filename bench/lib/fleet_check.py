#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/fleet's verdict: what the producers made against what reached the collector.

usage: fleet_check.py RUNDIR OUTDIR

Reads RUNDIR/info (key: value lines written by bench/fleet: parameters, the phase
and fault times in ms, the fault mechanisms), RUNDIR/hNN/prod-*.json (the producers'
summaries), RUNDIR/ceiling (one "lines seconds" per local mq-send -l run) and every
message file of the collector's queue (RUNDIR/c/spool/logs/new/ and cur/): its body
is "HOST SEQ SEND_MS ...", its arrival time the ctime of the file, which the
receiver's rename into new/ sets (the commit; before the directory's fsync).

Writes OUTDIR/fleet.txt (key: value, for scripts and the test) and OUTDIR/fleet.md
(the RESULTS.md section).  Exit 0 when nothing is lost or duplicated and every
producer's lines were confirmed, 1 otherwise.
"""
import json, os, statistics, sys
from collections import Counter, OrderedDict

run, outdir = sys.argv[1], sys.argv[2]
info = OrderedDict()
with open(os.path.join(run, "info")) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition(": ")
        info[k] = v


def ival(k, d=0):
    try:
        return int(info.get(k, d))
    except ValueError:
        return d


B = ival("backlog")
hosts = info["hosts"].split()

# ---- produced: per host, seqs first..last of each producer run, all confirmed
produced = {}
prod = {}
for h in hosts:
    s = set()
    prod[h] = {"refused": 0, "refused_lines": 0, "restarts": 0, "unsent": 0, "confirmed": 0, "generated": 0, "exits": [],
               "stderr": []}
    for name in sorted(os.listdir(os.path.join(run, h))):
        if not (name.startswith("prod-") and name.endswith(".json")):
            continue
        with open(os.path.join(run, h, name)) as f:
            p = json.load(f)
        s.update(range(p["first"], p["last"] + 1))
        for k in ("refused", "refused_lines", "restarts", "unsent", "confirmed"):
            prod[h][k] += p.get(k, 0)
        prod[h]["generated"] += p["last"] - p["first"] + 1
        prod[h]["exits"] += [e for e in p["exits"] if e != 0]
        prod[h]["stderr"] += p.get("stderr", [])
    produced[h] = s

# ---- arrived: every file of the collector's queue
arr = {}            # (host, seq) -> [arrival ms...]
sendms = {}
ids = Counter()
bad = 0
qdir = os.path.join(run, "c", "spool", info.get("queue", "logs"))
for st in ("new", "cur"):
    d = os.path.join(qdir, st)
    if not os.path.isdir(d):
        continue
    for e in os.scandir(d):
        if e.name.startswith("."):
            continue
        parts = e.name.split(".")
        if len(parts) >= 2:
            ids[parts[1]] += 1
        try:
            with open(e.path, "rb") as f:
                data = f.read()
            ct = os.stat(e.path).st_ctime_ns / 1e6
        except OSError:
            bad += 1
            continue
        i = data.find(b"\n\n")
        body = data[i + 2:].split()
        try:
            key = (body[0].decode(), int(body[1]))
            sendms[key] = int(body[2])
        except (IndexError, ValueError):
            bad += 1
            continue
        arr.setdefault(key, []).append(ct)

lost = []
for h in hosts:
    for s in produced[h]:
        if (h, s) not in arr:
            lost.append((h, s))
dup = sum(len(v) - 1 for v in arr.values() if len(v) > 1)
dup_ids = sum(c - 1 for c in ids.values() if c > 1)
unknown = sum(1 for (h, s) in arr if h not in produced or s not in produced[h])
refused = sum(prod[h]["refused"] for h in hosts)
refused_lines = sum(prod[h]["refused_lines"] for h in hosts)
unsent = sum(prod[h]["unsent"] for h in hosts)
gen = sum(prod[h]["generated"] for h in hosts)


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


# ---- aggregate rate: the backlog phase (every sender holds B lines when its forward starts)
ab = sorted(min(v) for (h, s), v in arr.items() if s <= B)
rate = span_rate = None
if len(ab) >= 10:
    n = len(ab)
    i10, i90 = int(0.1 * n), int(0.9 * n)
    if ab[i90] > ab[i10]:
        rate = (i90 - i10) / ((ab[i90] - ab[i10]) / 1000.0)
    if ab[-1] > ab[0]:
        span_rate = n / ((ab[-1] - ab[0]) / 1000.0)
ceil = []
if os.path.exists(os.path.join(run, "ceiling")):
    with open(os.path.join(run, "ceiling")) as f:
        for line in f:
            n_, s_ = line.split()
            ceil.append(int(n_) / float(s_))
ceiling = statistics.median(ceil) if ceil else None
ratio = rate / ceiling if rate and ceiling else None

# ---- latency of the steady lines: first arrival - send time
kill0, kill1 = ival("kill_ms"), ival("restart_ms")
faulted = {info.get(k) for k in ("lossy_host", "cut_host", "full_host") if info.get(k)}
lat_all, lat_clean = [], []
lat_by = {h: [] for h in hosts}
for (h, s), v in arr.items():
    if s <= B or (h, s) not in sendms:
        continue
    l = min(v) - sendms[(h, s)]
    lat_all.append(l)
    if h in lat_by:
        lat_by[h].append(l)
    if h not in faulted and not (kill0 and kill0 - 1000 <= sendms[(h, s)] <= kill1 + 5000):
        lat_clean.append(l)
b0, b1 = ival("steady_start_ms"), ival("steady_end_ms")
steady_n = sum(1 for (h, s), v in arr.items() if s > B)
# what reached the collector while the steady phase ran (any line), a second
steady_rate = (sum(1 for v in arr.values() for t in v if b0 <= t < b1) / ((b1 - b0) / 1000.0)
               if b1 > b0 else None)

ok = not lost and not dup and not dup_ids and not unknown and not unsent and not bad
R = OrderedDict()
R["hosts"] = len(hosts)
R["generated"] = gen
R["arrived_distinct"] = len(arr)
R["lost"] = len(lost)
R["duplicated"] = dup
R["duplicate_ids"] = dup_ids
R["unknown"] = unknown
R["unreadable"] = bad
R["refused_at_source"] = refused_lines
R["refused_writes"] = refused
R["unsent_at_source"] = unsent
R["producer_restarts"] = sum(prod[h]["restarts"] for h in hosts)
R["backlog_lines"] = len(ab)
R["aggregate_rate"] = "%.0f" % rate if rate else "-"
R["aggregate_span_rate"] = "%.0f" % span_rate if span_rate else "-"
R["ceiling"] = "%.0f" % ceiling if ceiling else "-"
R["ceiling_samples"] = " ".join("%.0f" % c for c in ceil)
R["ratio"] = "%.2f" % ratio if ratio else "-"
R["steady_lines"] = steady_n
R["steady_rate"] = "%.0f" % steady_rate if steady_rate else "-"
for name, v in (("all", lat_all), ("clean", lat_clean)):
    R["latency_%s_n" % name] = len(v)
    for p in (50, 99):
        x = pct(v, p)
        R["latency_%s_p%d_ms" % (name, p)] = "%.1f" % x if x is not None else "-"
    R["latency_%s_max_ms" % name] = "%.0f" % max(v) if v else "-"
for k in ("lossy_host", "cut_host", "full_host"):
    h = info.get(k)
    if h and lat_by.get(h):
        R["latency_%s_p50_ms" % k] = "%.1f" % pct(lat_by[h], 50)
        R["latency_%s_p99_ms" % k] = "%.1f" % pct(lat_by[h], 99)
        R["latency_%s_max_ms" % k] = "%.0f" % max(lat_by[h])
R["verdict"] = "ok" if ok else "FAIL"
os.makedirs(outdir, exist_ok=True)
with open(os.path.join(outdir, "fleet.txt"), "w") as f:
    for k, v in info.items():
        f.write("info_%s: %s\n" % (k, v))
    for k, v in R.items():
        f.write("%s: %s\n" % (k, v))
    if lost:
        f.write("lost_first: %s\n" % " ".join("%s/%d" % x for x in sorted(lost)[:20]))
    for h in hosts:
        p = prod[h]
        # mq-send -l says once that it waits out a full disk (mq-send(1))
        waited = any("waiting for room on the disk" in l for l in p.get("stderr", []))
        f.write("producer_%s: generated %d confirmed %d refused %d restarts %d unsent %d exits %s%s\n" % (
            h, p["generated"], p["confirmed"], p["refused"], p["restarts"], p["unsent"],
            ",".join(map(str, p["exits"])) or "-", " waited-for-disk" if waited else ""))

# ---- the RESULTS.md section
L = []
L.append("## The fleet: %d hosts relaying to one collector (network namespaces)" % len(hosts))
L.append("")
L.append("Measured by bench/fleet (%s; %s; %s cores; spools on %s; load average %s). %d hosts, each a network namespace "
         "with its own spool and mq-relayd (`forward logs http://COLLECTOR:8080`, %s), joined by veth pairs to "
         "a bridge in a namespace of its own; the collector a namespace with one mq-relayd (`listen`, %s). "
         "Lines of %s bytes, `HOST SEQ SEND_MS xxx...`, from one producer per host into `mq-send -l -i logs`. %s" % (
             info.get("date", "?"), info.get("cpu", "?"), info.get("cores", "?"), info.get("fs", "?"),
             info.get("loadavg", "?"), len(hosts),
             info.get("forward_opts", ""), info.get("listen_opts", ""), info.get("line_bytes", "?"),
             info.get("bridge_stage", "")))
L.append("")
L.append("| figure | value | target | verdict |")
L.append("|---|---|---|---|")
tgt = ival("hosts_target", 20)
L.append("| collector's aggregate rate, %d senders each with a backlog of %d lines (10%%–90%% of arrivals) | %s lines/s | | |" % (
    len(hosts), B, R["aggregate_rate"]))
L.append("| collector's local `mq-send -l` durable rate, same namespace, same disk, same lines (median of %d) | %s lines/s [%s] | | |" % (
    len(ceil), R["ceiling"], R["ceiling_samples"]))
L.append("| aggregate ÷ local | %s | ≥ 0.8 with 20 senders | %s |" % (
    R["ratio"], ("met" if ratio and ratio >= 0.8 else "**not met**") if ratio and len(hosts) >= tgt else
    ("(%d senders: not the target's run)" % len(hosts) if ratio else "-")))
L.append("| lines produced / arrived (distinct) | %d / %d | all | %s |" % (gen, len(arr), "ok" if len(arr) >= gen - len(lost) else ""))
L.append("| lost (produced, never arrived) | %d | 0 | %s |" % (len(lost), "ok" if not lost else "**FAIL**"))
L.append("| duplicated (a line stored twice at the collector) | %d (ids twice: %d) | 0 | %s |" % (
    dup, dup_ids, "ok" if not dup and not dup_ids else "**FAIL**"))
L.append("| refused at source: lines mq-send did not take at first (written again; %d writes in all) / never taken | %d / %d | - / 0 | %s |" % (
    refused, refused_lines, unsent, "ok" if not unsent else "**FAIL**"))
L.append("| steady phase: %s lines/s per host for %s s: lines sent; arrivals at the collector while it ran | %d lines; %s lines/s | | |" % (
    info.get("rate", "?"), info.get("duration", "?"), steady_n, R["steady_rate"]))
L.append("| latency send → durable at the collector, every steady line (median / p99 / max) | %s / %s / %s ms | | |" % (
    R["latency_all_p50_ms"], R["latency_all_p99_ms"], R["latency_all_max_ms"]))
L.append("| the same, hosts without a fault of their own, sent outside the collector's outage | %s / %s / %s ms | | |" % (
    R["latency_clean_p50_ms"], R["latency_clean_p99_ms"], R["latency_clean_max_ms"]))
for k, what in (("lossy_host", "the lossy, delayed host"), ("cut_host", "the host cut off"), ("full_host", "the host whose disk filled")):
    if "latency_%s_p50_ms" % k in R:
        L.append("| the same, %s (%s) | %s / %s / %s ms | | |" % (
            what, info.get(k), R["latency_%s_p50_ms" % k], R["latency_%s_p99_ms" % k], R["latency_%s_max_ms" % k]))
if info.get("backlog_cpu_collector_s"):
    w = float(info["backlog_wall_s"])
    cc, cs = float(info["backlog_cpu_collector_s"]), float(info["backlog_cpu_senders_s"])
    L.append("| CPU over the backlog phase (%.1f s): the collector's mq-relayd / the %d senders' together | %.1f s (%.0f%% of one core, %.0f µs a line) / %.1f s (%.0f%%) | | |" % (
        w, len(hosts), cc, 100 * cc / w if w else 0, 1e6 * cc / len(ab) if ab else 0, cs, 100 * cs / w if w else 0))
L.append("")
L.append("Faults, while the steady phase ran (seconds from its start), and what produced each:")
L.append("")
L.append("| fault | when | mechanism |")
L.append("|---|---|---|")
for k in ("fault_kill", "fault_lossy", "fault_cut", "fault_full"):
    if info.get(k):
        when, _, how = info[k].partition(" | ")
        L.append("| %s | %s | %s |" % ({"fault_kill": "collector killed and restarted", "fault_lossy": "one link: 5% loss, 50 ms delay",
                                        "fault_cut": "one host cut off, then reconnected", "fault_full": "one host's disk full"}[k], when, how))
for k in info:
    if k.startswith("fault_skipped"):
        L.append("| %s | - | not produced: %s |" % (k[len("fault_skipped_"):], info[k]))
L.append("")
L.append("Each producer's mq-send printed the id of every line it committed (`-i`); a line it did not "
         "confirm (mq-send exited 75 on the full disk) was written again to a new mq-send, counted once per "
         "time as refused at source. Arrival = the ctime of the message file in the collector's new/ (set by "
         "the receiver's rename, the commit); latency = arrival − the send time in the line, for the lines of "
         "the steady phase (the backlog lines waited on purpose). The aggregate rate is taken from the backlog "
         "phase, when the offered load is unbounded: what the collector takes, not what producers offer. "
         "All %d hosts, the collector and the senders' producers share this machine's %s cores, so the "
         "senders' CPU is taken from the collector's." % (len(hosts), info.get("cores", "?")))
if info.get("notes"):
    L.append("")
    L.append(info["notes"])
L.append("")
with open(os.path.join(outdir, "fleet.md"), "w") as f:
    f.write("\n".join(L))
for k, v in R.items():
    print("%s: %s" % (k, v))
sys.exit(0 if ok else 1)
