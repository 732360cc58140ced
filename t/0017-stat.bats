#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-stat (issue 3): per queue ready, delayed, in flight, expired leases,
# dead, kept, oldest ready age, bytes, and a backlog-by-age histogram (after
# Postfix's qshape); --json for scripts.  It repairs what may safely be
# repaired (expired leases, expired messages, stale tmp/ files, kept
# messages past keep-acked, old dedup markers) and says so.

bats_require_minimum_version 1.5.0
load helper

# row Q: the whitespace-squeezed line of Q in the first table.
row() {
	mq-stat "$1" | awk -v q="$1" '$1 == q {$1 = $1; print; exit}'
}

# js EXPR: the Python expression EXPR of d, the JSON in $output (from
# `run mq-stat --json`); strings raw, None as null, numbers as numbers.
js() {
	python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
v = eval(sys.argv[1])
print("null" if v is None else v)' "$1" <<<"$output"
}

# populate: queue q with 2 ready, 1 delayed, 1 in flight, 1 dead, 1 kept
populate() {
	config q 'keep-acked = 1h'
	echo later | mq-send --delay 1h q
	echo claimed | mq-send q
	mq-recv -c q >/dev/null
	echo dead | mq-send q
	mq-nack --dead 'for the test' q "$(mq-recv -c q)"
	echo "done" | mq-send q
	mq-ack q "$(mq-recv -c q)"
	echo r1 | mq-send q
	echo r2 | mq-send q
	[ "$(count q new)" -eq 3 ]
	[ "$(count q cur)" -eq 1 ]
	[ "$(count q dead)" -eq 1 ]
	[ "$(count q "done")" -eq 1 ]
}

@test "mq-stat prints the columns and one row per queue" {
	populate
	run -0 mq-stat q
	# the first line says which spool was read and when (mq-stat >> log keeps the time)
	[[ ${lines[0]} =~ ^spool\ $MQ_SPOOL\ at\ 20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9:.]+Z$ ]]
	[ "$(echo "${lines[1]}" | tr -s ' ')" = "QUEUE READY DELAYED INFLIGHT LAPSED DEAD KEPT OLDEST BYTES" ]
	r=$(row q)
	read -r name ready delayed inflight expired dead kept oldest bytes <<<"$r"
	[ "$name $ready $delayed $inflight $expired $dead $kept" = "q 2 1 1 0 1 1" ]
	[[ $oldest =~ ^[0-9]+s$ ]]
	[[ $bytes =~ ^[0-9]+(\.[0-9])?[BKMG]$ ]]
	# no repairs were needed
	[[ $output != *repaired* ]]
}

@test "mq-stat --json: the same numbers, with every key" {
	populate
	run -0 mq-stat --json q
	[ "$(js 'len(d)')" = 1 ]
	[ "$(js '" ".join(sorted(d[0]))')" = \
		"backlog_by_age bytes corrupt corrupt_files dead delayed expired_leases in_flight kept keys oldest_ready_age paused queue ready repaired waiting" ]
	[ "$(js 'd[0]["corrupt"]')" = 0 ]
	[ "$(js 'len(d[0]["corrupt_files"])')" = 0 ]
	[ "$(js '" ".join(str(d[0][k]) for k in ("queue", "ready", "delayed", "in_flight", "expired_leases", "dead", "kept"))')" = \
		"q 2 1 1 0 1 1" ]
	age=$(js 'd[0]["oldest_ready_age"]')
	[[ $age =~ ^[0-9]+$ ]]
	[ "$age" -lt 60 ]
	# bytes: every message file in every state
	want=$(find "$(qdir q)"/{new,cur,dead,done} -type f ! -name '.*' -printf '%s\n' | awk '{s += $1} END {print s}')
	[ "$(js 'd[0]["bytes"]')" = "$want" ]
}

@test "the backlog histogram holds every ready message in its age bucket" {
	populate
	run -0 mq-stat --json q
	# fresh messages are in the first bucket (under a minute)
	[ "$(js 'list(d[0]["backlog_by_age"])[0]')" = 1m ]
	[ "$(js 'list(d[0]["backlog_by_age"].values())[0]')" = 2 ]
	[ "$(js 'sum(d[0]["backlog_by_age"].values())')" = 2 ]
	run -0 mq-stat q
	[[ $output == *"ready backlog by age"* ]]
	# the histogram row: QUEUE TOTAL then the buckets
	hist=$(printf '%s\n' "${lines[@]}" | awk '$1 == "q"' | sed -n 2p | tr -s ' ')
	[ "$hist" = "q 2 2 0 0 0 0 0 0 0 0 0 0" ]
}

@test "an old ready message shows in its age bucket and as the oldest" {
	echo x | mq-send q
	n=$(only_file q new)
	# the age is the enqueue time in the id: give the message an id (a ULID)
	# made 30 minutes ago
	old_id=$(python3 -c '
import sys, time
t = int(time.time() * 1000) - 30 * 60 * 1000
a = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
s = ""
for i in range(10):
    s = a[t % 32] + s
    t //= 32
print(s + "0000000000000000")')
	sed "s/^Id: .*/Id: $old_id/" "$n" >"$(qdir q)/new/$(name_time "$n").$old_id.0"
	rm "$n"
	run -0 mq-stat --json q
	age=$(js 'd[0]["oldest_ready_age"]')
	[ "$age" -ge 1790 ]
	[ "$age" -le 1900 ]
	[ "$(js 'd[0]["backlog_by_age"]["40m"]')" = 1 ]
	[ "$(js 'sum(d[0]["backlog_by_age"].values())')" = 1 ]
	run -0 mq-stat q
	[ "$(row q | cut -d' ' -f8)" = 30m ]
}

@test "oldest_ready_age is null and OLDEST '-' when nothing is ready" {
	echo later | mq-send --delay 1h q
	run -0 mq-stat --json q
	[ "$(js 'd[0]["oldest_ready_age"]')" = null ]
	[ "$(js 'd[0]["delayed"]')" = 1 ]
	[ "$(row q | cut -d' ' -f8)" = - ]
}

@test "mq-stat without arguments lists every queue, sorted" {
	echo x | mq-send b
	echo x | mq-send a
	echo x | mq-send c.2
	mkdir -p "$MQ_SPOOL/.hidden"
	run -0 mq-stat --json
	[ "$(js '" ".join(q["queue"] for q in d)')" = "a b c.2" ]
	run -0 mq-stat
	[ "$(printf '%s\n' "${lines[@]}" | sed -n '3,5p' | cut -d' ' -f1 | tr '\n' ' ')" = "a b c.2 " ]
}

@test "mq-stat with no spool at all says so (66); an empty one prints only its spool line (--json: [])" {
	run --separate-stderr -66 mq-stat
	check_error mq-stat
	[[ $stderr == *"spool $MQ_SPOOL does not exist"* ]]
	[ ! -e "$MQ_SPOOL" ]
	mkdir "$MQ_SPOOL"
	run -0 mq-stat
	[[ $output == "spool $MQ_SPOOL at "* ]]
	[ "${#lines[@]}" -eq 1 ]
	run -0 mq-stat --json
	[ "$(js 'len(d)')" = 0 ]
}

@test "mq-stat of an unknown queue exits 2; a bad name exits 64" {
	echo x | mq-send q
	run --separate-stderr -2 mq-stat nosuch
	check_error mq-stat
	run --separate-stderr -64 mq-stat ../q
	check_error mq-stat
}

@test "expired leases: counted, taken back, and reported as repaired" {
	config q 'lease = 200ms' 'backoff = 0'
	echo a | mq-send q
	echo b | mq-send q
	mq-recv -c -n 0 q >"$BATS_TEST_TMPDIR/claims"
	wait_for 5 time_past "$(name_time "$(sed -n 2p "$BATS_TEST_TMPDIR/claims")")"
	# only looking: counted, left where they are
	run -0 mq-stat --json q
	[ "$(js 'd[0]["expired_leases"]')" = 2 ]
	[ "$(js 'd[0]["repaired"]["expired_leases"]')" = 0 ]
	[ "$(js 'd[0]["in_flight"]')" = 2 ]
	[ "$(row q | cut -d' ' -f5)" = 2 ]
	run -0 mq-stat --repair --json q
	[ "$(js 'd[0]["expired_leases"]')" = 2 ]
	[ "$(js 'd[0]["repaired"]["expired_leases"]')" = 2 ]
	[ "$(js 'd[0]["in_flight"]')" = 0 ]
	[ "$(js 'd[0]["ready"]')" = 2 ]
	# done once: the next look finds nothing to mend
	run -0 mq-stat --repair q
	[[ $output != *repaired* ]]
	[ "$(row q | cut -d' ' -f5)" = 0 ]
}

@test "stale tmp/ files are removed after tmp-grace; fresh ones left alone" {
	echo x | mq-send q
	t=$(now_ms)
	echo partial >"$(qdir q)/tmp/$t.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	echo partial >"$(qdir q)/tmp/$t.01ARZ3NDEKTSV4RRFFQ69G5FAW.0"
	touch -d '-2 hours' "$(qdir q)/tmp/$t.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	run -0 mq-stat --repair q
	[[ $output == *"repaired q: 1 abandoned tmp/ files removed"* ]]
	[ "$(files q tmp)" = "$(qdir q)/tmp/$t.01ARZ3NDEKTSV4RRFFQ69G5FAW.0" ]
	[ "$(count q new)" -eq 1 ]
}

@test "tmp-grace from the config" {
	echo x | mq-send q
	config q 'tmp-grace = 1m'
	echo partial >"$(qdir q)/tmp/1.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	touch -d '-2 minutes' "$(qdir q)/tmp/1.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	run -0 mq-stat --repair --json q
	[ "$(js 'd[0]["repaired"]["tmp_files"]')" = 1 ]
	[ "$(count q tmp)" -eq 0 ]
}

@test "keep-acked: acked messages are kept in done/, counted, removed after it" {
	config q 'keep-acked = 300ms'
	echo x | mq-send q
	mq-recv q >/dev/null
	f=$(only_file q "done")
	run -0 mq-stat --json q
	[ "$(js 'd[0]["kept"]')" = 1 ]
	wait_for 5 time_past $(($(name_time "$f") + 300))
	run -0 mq-stat --repair q
	[[ $output == *"repaired q: 1 kept messages past keep-acked removed"* ]]
	[ "$(count q "done")" -eq 0 ]
}

@test "mq-stat counts dead letters, and never touches names starting with ." {
	echo x | mq-send q
	mq-nack --dead why q "$(mq-recv -c q)"
	echo junk >"$(qdir q)/new/.swp"
	echo junk >"$(qdir q)/tmp/.keep"
	touch -d '-2 days' "$(qdir q)/tmp/.keep"
	run -0 mq-stat --repair --json q
	[ "$(js 'd[0]["dead"]')" = 1 ]
	[ "$(js 'd[0]["ready"]')" = 0 ]
	[ -e "$(qdir q)/new/.swp" ]
	[ -e "$(qdir q)/tmp/.keep" ]
}

@test "a queue directory holding only a config reads as empty (mq-stat, mq-recv, mq-replay)" {
	# spool-layout.md: "A tool that finds a subdirectory missing treats it as empty."
	config q 'lease = 1m'
	run --separate-stderr -0 mq-stat q
	[ "$(row q)" = "q 0 0 0 0 0 0 - 0B" ]
	run --separate-stderr -1 mq-recv q
	run --separate-stderr -1 mq-replay --all q
}

# last_rates FILE Q: "SENT ACKED FAILED" from the last refresh of mq-stat -w
# in FILE with figures for Q.
last_rates() {
	awk -v q="$2" '$1 == q && NF == 12 && $10 != "-" { r = $10 " " $11 " " $12 } END { print r }' "$1"
}

@test "mq-stat -w refreshes with rates: sent, acked and failed a second, counted as they happen" {
	config q 'backoff = 1h'
	local out=$BATS_TEST_TMPDIR/w
	echo seed | mq-send q
	spawn mq-stat -w 300ms q >"$out"
	# the first refresh has no interval behind it yet
	wait_for 10 grep -q '^q .* -  *-  *-$' "$out"
	head -c 60 "$out" | grep -q "^spool $MQ_SPOOL at "
	seq 40 | mq-send -l q
	mq-recv -n 20 q >/dev/null
	run -75 mq-recv -x false q # one failure, given back for a retry
	# the rates times their interval add up to what happened: 40 sent,
	# 20 acked, 1 failed (within the rounding of the printed rates)
	cat >"$BATS_TEST_TMPDIR/sums.py" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("q ")]
rated = [r for r in rows if r[9] != "-"]
sent, acked, failed = (sum(float(r[k]) for r in rated) * 0.3 for k in (9, 10, 11))
sys.exit(not (35 <= sent <= 45 and 17 <= acked <= 23 and 0.7 <= failed <= 1.3))
PY
	wait_for 10 python3 "$BATS_TEST_TMPDIR/sums.py" "$out"
	kill "$BG_PID"
	wait_pid 10 "$BG_PID"
	# it only looks: the spool is as the commands left it, nothing of mq-stat's
	[ "$(count q new)" -eq 21 ]
}

@test "mq-stat -w: a bad interval, or with --repair, is a usage error (64)" {
	echo x | mq-send q
	run --separate-stderr -64 mq-stat -w 0 q
	check_error mq-stat
	run --separate-stderr -64 mq-stat -w soon q
	check_error mq-stat
	run --separate-stderr -64 mq-stat -w 2 --repair q
	check_error mq-stat
	[[ $stderr == *"does not go with --repair"* ]]
}

@test "mq-stat -w --json: one compact array a line, with rates once there is an interval" {
	echo x | mq-send q
	local out=$BATS_TEST_TMPDIR/j
	spawn mq-stat -w 200ms --json q >"$out"
	wait_for 10 grep -q '"rates"' "$out"
	kill "$BG_PID"
	wait_pid 10 "$BG_PID"
	python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert "rates" not in lines[0][0]
r = [l[0]["rates"] for l in lines if "rates" in l[0]][0]
assert set(r) == {"sent", "acked", "failed"}, r
assert lines[-1][0]["ready"] == 1' "$out"
}
