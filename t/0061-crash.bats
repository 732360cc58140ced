#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# The crash test (issue 8): every kind of participant under load, killed
# with SIGKILL at random for CRASH_SECONDS (default 45, 20 in a sanitizer
# build; `make stress` runs STRESS_SECONDS): producers (mq-send,
# mq-send -l), consumers (mq-recv -x one at a time, mq-recv -f -x,
# mq-relayd consume), their handlers, and a relay pair (node A's forward
# to node B's listen, B consuming).  Each
# killed consumer or daemon is restarted by its loop.  Then everything is
# drained and t/spool-check (section 13) judges both spools; every id
# acknowledged as sent was handled at least once, and a message handled
# twice only where section 7 says it may be: an earlier run whose handler,
# or whose consumer, was killed after the work and before the ack.  The
# duplicates are reported, each with its reason.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper
load relay_helper # free_port

setup() {
	relayd_setup
	LOOPS=()
}

teardown() {
	local p
	touch "$T/stop" 2>/dev/null || true
	for p in "${LOOPS[@]}"; do
		kill_tree "$p"
	done
	relayd_teardown
}

# descendants PID: the pids of PID's children, grandchildren and so on.
descendants() {
	local c
	for c in $(children "$1"); do
		echo "$c"
		descendants "$c"
	done
}

children() { { tr ' ' '\n' </proc/"$1"/task/"$1"/children; } 2>/dev/null | grep .; }

kill_tree() {
	local p
	for p in $(descendants "$1") "$1"; do
		kill -9 "$p" 2>/dev/null || true
	done
}

# loop NAME CMD...: run CMD again and again until $T/stop exists (each
# killed participant comes back), in the background; fd 3 closed.
loop() {
	local name=$1
	shift
	(
		while [ ! -e "$T/stop" ]; do
			"$@" || true
		done
	) 3>&- </dev/null 2>>"$T/$name.err" &
	LOOPS+=($!)
	eval "LOOP_$name=$!"
}

# the participants' kinds, and how to find a live one to kill
pick() {
	local kind=$1 l
	case $kind in
	producer) for l in $LOOP_send $LOOP_batch $LOOP_sendr; do descendants "$l"; done ;;
	consumer) for l in $LOOP_recvx $LOOP_recvf; do children "$l"; done ;;
	relayd) for l in $LOOP_relaya $LOOP_relayb; do children "$l"; done ;;
	handler) grep -lzF "CRASH_TEST_TAG=$T" /proc/[0-9]*/environ 2>/dev/null |
		while read -r l; do grep -qz '^MQ_ID=' "$l" && { l=${l#/proc/}; echo "${l%/environ}"; }; done ;;
	esac 2>/dev/null | shuf -n 1
}

send_one() {
	local id
	id=$(echo "m $RANDOM" | mq-send -i "$1") && echo "$id" >>"$T/sent-$1"
	sleep 0.02 # load, not a fork bomb: the killer must get the CPU too
}

send_batch() {
	seq $((RANDOM % 30 + 1)) | mq-send -l -i q >"$T/batch.out"
	# printed only after the commit: every whole id line was sent, killed or not
	grep -xE '[0-7][0-9A-HJKMNP-TV-Z]{25}' "$T/batch.out" >>"$T/sent-q" || true
	sleep 0.1
}

drained() { drained_once && drained_once; } # twice: a message moving between two counts
drained_once() {
	[ "$(on A count q new)$(on A count q cur)$(on A count r new)$(on A count r cur)" = 0000 ] &&
		[ "$(on B count r new)$(on B count r cur)" = 00 ]
}

show_state() {
	local n f
	for n in A B; do
		echo "--- $n:"
		(cd "$T/$n" && find . -type f | sort | head -40)
	done
	for f in "$T"/*.err; do
		echo "--- $f:"
		tail -n 20 "$f"
	done
}

on() {
	local n=$1
	shift
	MQ_SPOOL="$T/$n" "$@"
}

@test "crash: random SIGKILLs of producers, consumers, handlers and a relay pair lose nothing" {
	local secs=${CRASH_SECONDS:-45} pb kind pid deadline kills=0
	# the sanitizer pass of make check: the same kills, for less time
	if [ -z "${CRASH_SECONDS:-}" ] && ldd "$MQ_BIN/mq-send" 2>/dev/null | grep -q libasan; then
		secs=20
	fi
	export CRASH_TEST_TAG=$T
	mkdir -p "$T/A/q" "$T/A/r" "$T/B/r"
	# short leases: a killed holder's messages come back in seconds, not 5m
	for d in A/q A/r B/r; do
		printf 'lease = 2s\nbackoff = 0\nmax-attempts = 0\n' >"$T/$d/config"
	done
	# the work: one line, ID ATTEMPT and the pids of the handler and its
	# two ancestors (a consumer, or sh under it), then the ack by the consumer
	handler h <<'EOF2'
pp=$(awk '{print $4}' /proc/$PPID/stat 2>/dev/null)
cat >/dev/null
echo "$MQ_ID $MQ_ATTEMPT $$ $PPID $pp" >>"$T/done-$MQ_QUEUE_NAME"
sleep 0.05
EOF2
	sed -i 's/\$MQ_QUEUE_NAME/$1/' "$T/h"
	pb=$(free_port)
	cat >"$T/A.conf" <<EOF2
spool $T/A
name A
rescan 60s
consume q $T/h q
	concurrency 2
forward r http://127.0.0.1:$pb
	backoff 100ms..1s
EOF2
	cat >"$T/B.conf" <<EOF2
spool $T/B
name B
rescan 60s
listen 127.0.0.1:$pb
consume r $T/h r
	concurrency 2
EOF2
	export -f send_one send_batch
	loop relaya mq-relayd -c "$T/A.conf"
	loop relayb mq-relayd -c "$T/B.conf"
	loop recvx env MQ_SPOOL="$T/A" mq-recv -w 1 -x "$T/h q" q
	loop recvf env MQ_SPOOL="$T/A" mq-recv -f -x "$T/h q" q
	loop send env MQ_SPOOL="$T/A" T="$T" bash -c 'send_one q'
	loop batch env MQ_SPOOL="$T/A" T="$T" bash -c 'send_batch'
	loop sendr env MQ_SPOOL="$T/A" T="$T" bash -c 'send_one r'

	# the killer: one participant of a random kind every 20 to 120 ms
	deadline=$(($(now_ms) + secs * 1000))
	while ! time_past "$deadline"; do
		kind=$(shuf -n 1 -e producer producer consumer relayd handler handler)
		pid=$(pick "$kind")
		if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
			echo "$(now_ms) $kind $pid" >>"$T/kills"
			kills=$((kills + 1))
		fi
		sleep "$(printf '0.%03d' $((RANDOM % 100 + 20)))"
	done
	# producers stop; consumers and relays go on until all is delivered
	kill_tree "$LOOP_send"
	kill_tree "$LOOP_batch"
	kill_tree "$LOOP_sendr"
	# generous: on a loaded machine a sync storm stalls every consumer at once
	wait_for 180 drained || {
		show_state
		false
	}
	touch "$T/stop"
	for pid in "${LOOPS[@]}"; do kill_tree "$pid"; done
	kill_handlers

	# the repair clears tmp/ of what killed producers and receivers left
	for d in A/q A/r B/r; do echo 'tmp-grace = 1ms' >>"$T/$d/config"; done
	sleep 0.01
	on A mq-stat --repair >/dev/null
	on B mq-stat --repair >/dev/null
	cut -d' ' -f1 "$T/done-q" "$T/done-r" | sort -u >"$T/handled"
	: >>"$T/sent-q"
	: >>"$T/sent-r"
	run "$BATS_TEST_DIRNAME/spool-check" -1 -e -s "$T/sent-q" -c "$T/handled" "$T/A"
	echo "spool-check A: $output"
	[ "$status" -eq 0 ]
	run "$BATS_TEST_DIRNAME/spool-check" -1 -e -c "$T/handled" "$T/B"
	echo "spool-check B: $output"
	[ "$status" -eq 0 ]

	# every id acknowledged as sent was handled (q on A, r on B)
	run comm -23 <(sort -u "$T/sent-q" "$T/sent-r") "$T/handled"
	[ -z "$output" ] || { echo "sent but never handled: $output"; false; }

	# duplicates: each must follow a run whose handler or consumer was killed
	local dups=0 bad=0 id earlier why
	for id in $(cut -d' ' -f1 "$T/done-q" "$T/done-r" | sort | uniq -d); do
		dups=$((dups + 1))
		why=
		# every run but the last must have been cut off by a kill
		while read -r earlier; do
			for pid in $(echo "$earlier" | cut -d' ' -f3-); do
				if grep -q " $pid\$" "$T/kills"; then
					why="attempt $(echo "$earlier" | cut -d' ' -f2): $(grep " $pid\$" "$T/kills" | cut -d' ' -f2) $pid killed after the work, before the ack"
					break
				fi
			done
			# an ancestor that is init: its consumer was gone before the
			# handler looked (killed), and the handler ran on (section 13)
			if [ -z "$why" ] && [[ " $(echo "$earlier" | cut -d' ' -f4-) " == *" 1 "* ]]; then
				why="attempt $(echo "$earlier" | cut -d' ' -f2): its consumer was killed while the handler ran on, orphaned"
			fi
			[ -n "$why" ] || break
		done < <(grep -h "^$id " "$T/done-q" "$T/done-r" | head -n -1)
		if [ -n "$why" ]; then
			echo "# duplicate $id: $why" >&3
		else
			echo "# UNEXPLAINED duplicate $id:" $(grep -h "^$id " "$T/done-q" "$T/done-r") >&3
			bad=$((bad + 1))
		fi
	done
	echo "# $kills kills in ${secs}s; $(sort -u "$T/sent-q" "$T/sent-r" | wc -l) messages sent, $(wc -l <"$T/handled") handled, $dups duplicates ($bad unexplained)" >&3
	[ "$kills" -gt 0 ]
	[ "$bad" -eq 0 ]
}
