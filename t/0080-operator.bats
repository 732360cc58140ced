#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# What an operator does to a queue (issue 9): a line-mode mq-send that
# waits for room in a full queue instead of breaking its pipe.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

# send Q BODY...: one message per BODY; the ids in $IDS (in order).
send() {
	local q=$1 b
	shift
	IDS=()
	for b in "$@"; do
		IDS+=("$(echo "$b" | mq-send -i "$q")")
	done
}

# bury Q: send one message and bury it; its id in $ID.
bury() {
	local f
	ID=$(echo dead-one | mq-send -i "$1")
	f=$(mq-recv -c "$1")
	mq-nack --dead "test" "$1" "$f"
}

ids_in() { files "$1" "$2" | sed -E 's#.*/[0-9]{13}\.([^.]+)\..*#\1#'; }

@test "mq-send -l into a full queue waits for room, all lines in order; a one-shot send exits 75" {
	mkdir -p "$(qdir q)"
	echo 'max-length = 100' >"$(qdir q)/config"
	printf '%s\n' {1..300} >"$T/in"
	spawn sh -c 'mq-send -l q <"$1" 2>"$2"; echo $? >"$3"' sh "$T/in" "$T/err" "$T/rc"
	local sender=$BG_PID
	wait_for 20 grep -q 'waiting for room' "$T/err"
	[ "$(count q new)" -eq 100 ]
	# a one-shot send is refused meanwhile
	run --separate-stderr -75 sh -c 'echo x | mq-send q'
	[[ $stderr == *"queue q is full"* ]]
	spawn mq-recv -f q >"$T/out"
	local consumer=$BG_PID
	wait_for 30 test -s "$T/rc"
	[ "$(cat "$T/rc")" -eq 0 ]
	wait_for 30 lines_ge 300 "$T/out"
	wait_for 10 count_is 0 q cur # acked
	kill -TERM "$consumer"
	wait_pid 10 "$consumer"
	diff "$T/in" "$T/out"
	[ "$(grep -c . "$T/err")" -eq 1 ]
	grep -q '^mq-send: queue q is full (100 ready, max-length 100): waiting for room$' "$T/err"
	[ "$(count q tmp)" -eq 0 ]
	wait_pid 10 "$sender"
}
