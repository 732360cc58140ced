#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-bridge against a real three-node nats-server cluster on loopback (one
# for the file, t/nats_helper.bash), streams of three replicas.  What is
# checked is what arrives: every message sent, in the stream (out) or the
# spool (in), exactly once, while the stream's leader is killed, while two
# of three servers are down, and while the bridge itself is killed at
# random moments.  Skipped only where nats-server or libnats is missing.

bats_require_minimum_version 1.5.0
load helper
load nats_helper

setup_file() {
	command -v nats-server >/dev/null || skip "nats-server not installed"
	[ -x "$BATS_TEST_DIRNAME/nats-tool" ] || skip "built without libnats"
	PIDFILE="$BATS_FILE_TMPDIR/.pids"
	nats_cluster_start
}

teardown_file() { nats_cluster_stop; }

setup() {
	common_setup
	nats_skip_unless_ready
	nats_load
	mkdir -p "$MQ_SPOOL" && touch "$MQ_SPOOL/.spoolmq"
}

teardown() {
	common_teardown
	nats_all_up >/dev/null 2>&1 || true # the next test has its three servers
}

# bodies_in Q: the body of every message in Q's new/ (one line each), sorted
bodies_in() {
	local d="$MQ_SPOOL/$1/new"
	[ -n "$(ls "$d" 2>/dev/null)" ] || return 0
	find "$d" -mindepth 1 -maxdepth 1 ! -name '.*' -exec awk 'FNR == 1 {b = 0} b {print} /^$/ {b = 1}' {} + |
		LC_ALL=C sort
}
# stream_bodies STREAM: the data of every message of the stream, sorted
stream_bodies() { NT dump "$1" | awk '{sub(/\\n$/, "", $3); print $3}' | LC_ALL=C sort; }
# ids_in Q: the ids of Q's new/, sorted
ids_in() { files "$1" new | xargs -r -n1 basename | cut -d. -f2 | LC_ALL=C sort; }
drained_once() { [ "$(count "$1" new)" -eq 0 ] && [ "$(count "$1" cur)" -eq 0 ]; }
# drained Q: empty twice in a row (a claim given back between the two counts
# is seen by neither alone)
drained() { drained_once "$1" && drained_once "$1"; }
holds() { [ "$(count "$1" new)" -ge "$2" ]; }
# expect FILE: the lines seq -f PREFIX%g 1 N would give, sorted
expect() { seq -f "$1%g" 1 "$2" | LC_ALL=C sort; }
bridge() { spawn mq-bridge -s "$NATS_URLS" "$@" 2>>"$BATS_TEST_TMPDIR/bridge.log"; }
# send_slowly Q PREFIX N: N lines into Q, 100 at a time, for a flow that lasts
send_slowly() {
	local i
	for ((i = 1; i <= $3; i += 100)); do
		seq -f "$2%g" "$i" $((i + 99 > $3 ? $3 : i + 99)) | mq-send -l "$1" || return 1
		sleep 0.05
	done
}
# what a failed wait leaves for the reader: the queues, the stream, the bridge's log
state() {
	local q
	for q in "$@"; do
		echo "$q: new $(count "$q" new) cur $(count "$q" cur) dead $(count "$q" dead)" >&2
	done
	tail -n 20 "$BATS_TEST_TMPDIR/bridge.log" >&2
}
no_twice() { [ -z "$(LC_ALL=C sort "$1" | uniq -d)" ]; }

@test "bad input: usage, a bad subject, a directory not a spool: the documented codes, the spool untouched" {
	run -0 mq-bridge --help
	[[ ${lines[0]} == "usage: mq-bridge"* ]]
	run -64 --separate-stderr mq-bridge out q
	run -64 --separate-stderr mq-bridge -s "$NATS_URLS" out q 'a.*'
	check_error mq-bridge
	[[ $stderr == *"bad subject"* ]]
	run -64 --separate-stderr mq-bridge -s "$NATS_URLS" in 'bad.name' c q
	check_error mq-bridge
	run -64 --separate-stderr mq-bridge -n 0 out q s
	# a directory that is not a spool: 66, nothing made in it
	mkdir "$BATS_TEST_TMPDIR/other" && echo keep >"$BATS_TEST_TMPDIR/other/file"
	run -66 --separate-stderr mq-bridge -d "$BATS_TEST_TMPDIR/other" -s "$NATS_URLS" out q s.x
	check_error mq-bridge
	[ "$(ls -A "$BATS_TEST_TMPDIR/other")" = file ]
	run -66 --separate-stderr mq-bridge -d "$BATS_TEST_TMPDIR/other" -s "$NATS_URLS" in S c q
	[ "$(ls -A "$BATS_TEST_TMPDIR/other")" = file ]
	run -78 --separate-stderr mq-bridge --token-file "$BATS_TEST_TMPDIR/nope" -s "$NATS_URLS" out q s.x
	[[ $stderr == *"token-file"* ]]
	[ ! -e "$MQ_SPOOL/q" ]
}

@test "out: id as Nats-Msg-Id, headers as NATS headers, body as data; acked once the stream has it" {
	NT stream OUT1 'o1.>' 3 120
	seq -f 'm%g' 1 500 | mq-send -l -H 'Content-Type: text/plain' -H 'X-Trace: t-1' q
	ids_in q >"$BATS_TEST_TMPDIR/sent"
	run -0 mq-bridge -D -s "$NATS_URLS" out q o1.logs
	drained q
	NT dump OUT1 >"$BATS_TEST_TMPDIR/dump"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/dump")" -eq 500 ]
	diff <(awk '{print $2}' "$BATS_TEST_TMPDIR/dump" | LC_ALL=C sort) "$BATS_TEST_TMPDIR/sent"
	diff <(stream_bodies OUT1) <(expect m 500)
	grep -q 'Content-Type=text/plain' "$BATS_TEST_TMPDIR/dump"
	grep -q 'X-Trace=t-1' "$BATS_TEST_TMPDIR/dump"
	grep -q 'Date=20' "$BATS_TEST_TMPDIR/dump"
	! grep -q ';Id=' "$BATS_TEST_TMPDIR/dump"
}

@test "out: answers that can never succeed bury with the server's words; an outage does not" {
	NT stream OUT2 'o2.>' 3 120 200
	echo small | mq-send q
	head -c 500 /dev/zero | tr '\0' x | mq-send q
	run -0 mq-bridge -D -s "$NATS_URLS" out q o2.a
	[ "$(count q dead)" -eq 1 ]
	run header_of "$(files q dead)" Dead-Reason
	[[ $output == *"message size exceeds maximum"* ]]
	# no stream takes the subject: buried, the reason says so
	echo lost | mq-send q2
	run -0 mq-bridge -D -s "$NATS_URLS" out q2 nostream.here
	[ "$(count q2 dead)" -eq 1 ]
	run header_of "$(files q2 dead)" Dead-Reason
	[[ $output == *"o responders available"*"no JetStream stream takes subject nostream.here"* ]]
	[ "$(NT dump OUT2 | wc -l)" -eq 1 ]
}

@test "in: a durable pull consumer into a queue; a Nats-Msg-Id that is a spool id is kept; stored once" {
	NT stream IN1 'i1.>' 3 120
	NT pub i1.x 300 ext
	seq -f 'own%g' 1 200 | mq-send -l src
	ids_in src >"$BATS_TEST_TMPDIR/src-ids"
	mq-bridge -D -s "$NATS_URLS" out src i1.own
	run -0 mq-bridge -D -s "$NATS_URLS" -t 3s in IN1 c1 dst
	[ "$(count dst new)" -eq 500 ]
	diff <(bodies_in dst) <({ seq -f 'ext-%g' 0 299; expect own 200; } | LC_ALL=C sort)
	# the spool ids of src came through, and the others are derived from the stream
	ids_in dst >"$BATS_TEST_TMPDIR/dst-ids"
	[ -z "$(LC_ALL=C comm -23 "$BATS_TEST_TMPDIR/src-ids" "$BATS_TEST_TMPDIR/dst-ids")" ]
	f=$(grep -l '^ext-7$' "$MQ_SPOOL"/dst/new/*)
	[ "$(header_of "$f" Nats-Msg-Id)" = ext-7 ]
	[ "$(header_of "$f" Nats-Stream)" = IN1 ]
	[ -n "$(header_of "$f" Nats-Sequence)" ]
	# a second consumer over the same stream: every message again, each held already
	run -0 --separate-stderr mq-bridge -D -s "$NATS_URLS" -t 3s in IN1 c2 dst
	[[ $stderr == *"0 stored, 500 already held"* ]]
	[ "$(count dst new)" -eq 500 ]
}

@test "both ways while the stream leader is killed -9 mid-flow: every message once" {
	NT stream FLOW 'f.>' 3 120
	config q 'backoff = 100ms..1s'
	NT consumer FLOW c 2000
	bridge -t 2s out q f.out
	bridge -n 64 in FLOW c r
	send_slowly q q- 3000 &
	local sender=$!
	NT pub f.ext 500 e &
	local pub=$!
	sleep 0.7
	local l
	l=$(nats_leader FLOW)
	nats_kill "$l"
	wait "$sender"
	wait "$pub"
	nats_start "$l"
	wait_for 90 holds r 3500 || { state q r; false; }
	wait_for 10 drained q
	sleep 2 # a redelivery that would be a second copy
	[ "$(count r new)" -eq 3500 ]
	diff <(bodies_in r) <({ expect q- 3000; seq -f 'e-%g' 0 499; } | LC_ALL=C sort)
	stream_bodies FLOW >"$BATS_TEST_TMPDIR/stream"
	no_twice "$BATS_TEST_TMPDIR/stream"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/stream")" -eq 3500 ]
	[ "$(count q dead)" -eq 0 ]
}

@test "two of three servers down: publishing waits (no attempts counted), then resumes" {
	NT stream WAIT 'w.>' 3 120
	config q 'backoff = 100ms..1s'
	bridge -t 1s out q w.out
	seq -f 'a%g' 1 200 | mq-send -l q
	wait_for 20 drained q
	local l k down=()
	l=$(nats_leader WAIT)
	for k in 1 2 3; do [ "$k" = "$l" ] || down+=("$k"); done
	nats_stop "${down[0]}"
	nats_kill "$l" # the leader and one more: no quorum
	seq -f 'b%g' 1 300 | mq-send -l q
	sleep 4
	# waiting in the spool, none dead, no attempt counted
	[ "$(count q dead)" -eq 0 ]
	[ "$(($(count q new) + $(count q cur)))" -gt 0 ]
	for f in $(files q new); do [ "$(name_attempts "$f")" -eq 0 ]; done
	nats_start "${down[0]}"
	nats_start "$l"
	wait_for 60 drained q || { state q; false; }
	diff <(stream_bodies WAIT) <({ expect a 200; expect b 300; } | LC_ALL=C sort)
	grep -q 'cannot take messages now' "$BATS_TEST_TMPDIR/bridge.log"
	[ "$(count q dead)" -eq 0 ]
}

@test "the bridge killed -9 at random moments, both ways: every message once" {
	NT stream KILL 'k.>' 3 120
	# a claim a killed bridge had not yet recorded (spool-layout.md 6.12) waits for its lease
	config q 'backoff = 100ms..1s' 'lease = 5s'
	NT consumer KILL c 1500
	seq -f 'k%g' 1 4000 | mq-send -l q
	NT pub k.ext 400 x &
	local pub=$! i out in
	for ((i = 0; i < 6; i++)); do
		bridge -n 128 out q k.out
		out=$BG_PID
		bridge -n 50 in KILL c r
		in=$BG_PID
		sleep "0.$((RANDOM % 6 + 2))"
		kill -9 "$out" "$in"
		wait "$out" "$in" 2>/dev/null || true
	done
	wait "$pub"
	bridge out q k.out
	bridge in KILL c r
	wait_for 90 holds r 4400 || { state q r; NT dump KILL | wc -l >&2; false; }
	wait_for 10 drained q
	sleep 2.5 # past AckWait: a message stored but not acked comes again, and is held
	[ "$(count r new)" -eq 4400 ]
	diff <(bodies_in r) <({ expect k 4000; seq -f 'x-%g' 0 399; } | LC_ALL=C sort)
	stream_bodies KILL >"$BATS_TEST_TMPDIR/stream"
	no_twice "$BATS_TEST_TMPDIR/stream"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/stream")" -eq 4400 ]
}
