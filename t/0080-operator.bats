#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# What an operator does to a queue (issue 9): delete messages (mq-rm),
# expire old dead letters (dead-retention), run waiting retries now
# (mq-replay --now), pause and resume consumers (mq-pause), and a line-mode
# mq-send that waits for room in a full queue instead of breaking its pipe.

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

@test "mq-rm deletes messages by id, and ids read from stdin, in any state but claimed" {
	bury q
	local dead=$ID
	send q a b c d
	local a=${IDS[0]} b=${IDS[1]} c=${IDS[2]} d=${IDS[3]}
	run --separate-stderr -0 mq-rm q "$a"
	[ "$output" = "$a" ]
	[ -z "$stderr" ]
	[ "$(count q new)" -eq 3 ]
	! ids_in q new | grep -q "$a"
	run -0 sh -c 'printf "%s\n" "$1" "$2" | mq-rm q -' sh "$b" "$c"
	[ "$output" = "$b"$'\n'"$c" ]
	[ "$(ids_in q new)" = "$d" ]
	# mq-peek's lines pipe in: the id is the second word
	mq-peek -s dead q | mq-rm q - >"$T/out"
	[ "$(cat "$T/out")" = "$dead" ]
	[ "$(count q dead)" -eq 0 ]
	[ "$(count q new)" -eq 1 ]
}

@test "mq-rm -s STATE --all empties one state and leaves the others" {
	bury q
	local dead=$ID
	send q r1 r2
	echo later | mq-send --delay 1h q
	run -0 mq-rm -n -s dead --all q
	[ "$output" = "$dead" ]
	[ "$(count q dead)" -eq 1 ] # -n deleted nothing
	run -0 mq-rm -s dead --all q
	[ "$output" = "$dead" ]
	[ "$(count q dead)" -eq 0 ]
	[ "$(count q new)" -eq 3 ]
	run -0 mq-rm -s delayed --all q
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count q new)" -eq 2 ]
	run -0 mq-rm -s ready --all q
	[ "${#lines[@]}" -eq 2 ]
	[ "$(count q new)" -eq 0 ]
	run -1 mq-rm -s ready --all q # nothing left to match
	# done/, with keep-acked
	echo 'keep-acked = 1d' >"$(qdir q)/config"
	echo k | mq-send q
	mq-recv q >/dev/null
	[ "$(count q done)" -eq 1 ]
	run -0 mq-rm -s done --all q
	[ "$(count q done)" -eq 0 ]
}

@test "mq-rm leaves a claimed message alone (75) unless forced with -f" {
	send q x y
	local x=${IDS[0]} y=${IDS[1]} f
	f=$(mq-recv -c q) # claims x
	run --separate-stderr -75 mq-rm q "$x" "$y"
	check_error mq-rm
	[[ $stderr == *"$x: claimed by a consumer"*"-f"* ]]
	[ "$output" = "$y" ] # the other was deleted
	[ -f "$f" ]
	run -64 mq-rm -s claimed --all q
	[ -f "$f" ]
	run -0 mq-rm -f q "$x"
	[ "$output" = "$x" ]
	[ ! -e "$f" ]
	# its consumer finds it gone, as a lost lease
	run -2 mq-ack q "$f"
}

@test "mq-rm: bad ids, states and usage are one-line errors with their codes, and change nothing" {
	send q keep
	mkdir -p "$(qdir q)/dead"
	local before
	before=$(snapshot)
	run --separate-stderr -64 mq-rm q "${IDS[0]}" not-an-id
	check_error mq-rm
	[[ $stderr == *"bad id 'not-an-id'"* ]]
	run --separate-stderr -64 mq-rm -s bogus --all q
	check_error mq-rm
	[[ $stderr == *"bad state 'bogus'"* ]]
	run --separate-stderr -64 mq-rm --all q
	check_error mq-rm
	[[ $stderr == *"-s"* ]]
	run --separate-stderr -64 mq-rm q
	check_error mq-rm
	run --separate-stderr -64 mq-rm ../q "${IDS[0]}"
	check_error mq-rm
	run --separate-stderr -2 mq-rm nosuch "${IDS[0]}"
	check_error mq-rm
	[ "$(snapshot)" = "$before" ]
	# a well-formed id that is not there: 2, the others still deleted
	run --separate-stderr -2 mq-rm -s dead q "${IDS[0]}"
	check_error mq-rm
	[[ $stderr == *"${IDS[0]}: no such message in queue q"* ]]
	[ "$(snapshot)" = "$before" ]
}

@test "dead-retention: the full repair removes old dead letters and keeps young ones" {
	bury q
	local old=$ID f
	bury q
	local young=$ID
	# make the first one buried two days ago (T of a dead/ name is the burial time)
	f=$(files q dead | grep "$old")
	mv "$f" "$(qdir q)/dead/$(($(now_ms) - 2 * 86400000)).${f#*/dead/*.}"
	run -0 mq-stat --repair q # no dead-retention: kept for ever
	[ "$(count q dead)" -eq 2 ]
	echo 'dead-retention = 1d' >"$(qdir q)/config"
	run -0 mq-stat q # only looks
	[ "$(count q dead)" -eq 2 ]
	run -0 mq-stat --repair q
	[[ $output == *"repaired q: 1 dead letters past dead-retention removed"* ]]
	[ "$(ids_in q dead)" = "$young" ]
	run -0 mq-stat --repair --json q
	[[ $output == *'"dead_removed": 0'* ]]
	# a bad value is a bad config: 78, nothing changed
	echo 'dead-retention = soon' >"$(qdir q)/config"
	run -78 mq-stat --repair q
	[ "$(ids_in q dead)" = "$young" ]
}

@test "mq-replay --now makes a waiting retry due at once, keeping its attempts" {
	send q job
	local id=${IDS[0]} f
	echo 'backoff = 1h' >"$(qdir q)/config"
	f=$(mq-recv -c q)
	mq-nack q "$f" # a retry due in 30 to 60 minutes
	run -1 mq-recv q
	run -0 mq-peek -s delayed q
	[[ $output == *"$id"* ]]
	run -0 mq-replay --now --all q
	[ "$output" = "$id" ]
	[[ "$(files q new)" == *".$id.1" ]] # attempt count kept
	run -0 mq-recv q
	[ "$output" = job ]
	# by id; a ready or unknown id matches nothing
	echo later | mq-send --delay 1h q
	echo now | mq-send q
	local later
	later=$(mq-peek -s delayed q | awk '{print $2}')
	run -1 mq-replay --now q "$(mq-peek -s ready q | awk '{print $2}')"
	run -0 mq-replay --now q "$later"
	[ "$output" = "$later" ]
	run -1 mq-peek -s delayed q
	run --separate-stderr -64 mq-replay --now --from done --all q
	check_error mq-replay
}

@test "mq-pause: mq-recv exits 4 on a paused queue, mq-send still sends, mq-stat shows it" {
	echo one | mq-send q
	run -0 mq-pause q
	[ -f "$(qdir q)/paused" ]
	grep -q '^paused by uid' "$(qdir q)/paused"
	run --separate-stderr -4 mq-recv q
	check_error mq-recv
	[[ $stderr == *"queue q is paused"* ]]
	[ -z "$output" ]
	run -0 sh -c 'echo two | mq-send q'
	[ "$(count q new)" -eq 2 ]
	run -0 mq-stat q
	[[ $output == *"paused q:"* ]]
	run -0 mq-stat --json q
	[[ $output == *'"paused": true'* ]]
	run -0 mq-pause q # again: no error, marker kept
	run -0 mq-pause -u q
	[ ! -e "$(qdir q)/paused" ]
	run -0 mq-pause -u q
	run -0 mq-stat --json q
	[[ $output == *'"paused": false'* ]]
	run -0 mq-recv -n 2 q
	[ "$output" = $'one\ntwo' ]
	run --separate-stderr -2 mq-pause nosuch
	check_error mq-pause
	[ ! -e "$(qdir nosuch)" ]
	run --separate-stderr -64 mq-pause q ../x
	check_error mq-pause
}

@test "mq-pause: a waiting mq-recv -f goes on at the resume event, well before its timer" {
	mkdir -p "$(qdir q)"
	mq-pause q
	send q a b
	spawn mq-recv -f q >"$T/out" 2>"$T/err"
	local pid=$BG_PID
	wait_for 10 grep -q 'queue q is paused: waiting' "$T/err"
	[ ! -s "$T/out" ]
	[ "$(count q new)" -eq 2 ]
	mq-pause -u q
	# its repair timer is a minute away: only the inotify event brings this
	wait_for 10 grep -qx b "$T/out"
	[ "$(cat "$T/out")" = $'a\nb' ]
	kill -TERM "$pid"
	wait_pid 10 "$pid"
}

@test "mq-pause: mq-relayd holds a paused queue's consumer and runs its backlog after the resume" {
	handler record <<'EOF'
cat >>"$T/done-$MQ_QUEUE"
EOF
	relayd_conf "consume q $T/record" "consume other $T/record"
	mkdir -p "$(qdir q)"
	mq-pause q
	start_relayd
	send q m1 m2 m3
	echo marker | mq-send other
	# the daemon has seen what came before the marker, and ran nothing of q
	wait_for 10 test -s "$T/done-other"
	wait_for 10 log_has 'q: queue paused'
	[ ! -e "$T/done-q" ]
	[ "$(count q new)" -eq 3 ]
	mq-pause -u q
	wait_for 10 log_has 'q: queue resumed'
	wait_for 10 lines_ge 3 "$T/done-q"
	wait_for 10 count_is 0 q new
	[ "$(cat "$T/done-q")" = $'m1\nm2\nm3' ]
}

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

# on_tty CMD: run the shell command CMD with a terminal as its stderr (and
# stdin), through script(1); what the terminal got is in $output, CRs as LFs.
on_tty() {
	run script -qec "$1" /dev/null
	output=${output//$'\r'/$'\n'}
}

@test "progress: a long mq-recv -n 0 says on a terminal how far it is; a pipe or log gets nothing" {
	seq 12 | mq-send -l q
	on_tty "mq-recv -n 0 -x 'sleep 0.1' q >/dev/null"
	[ "$status" -eq 0 ]
	[[ $output == *"mq-recv: "*" of 12 messages, "*"/s, "*"s left"* ]]
	[[ $output == *"mq-recv: 12 messages in "*"s, "*"/s"* ]]
	queue_empty q
	# stderr not a terminal: not a word
	seq 12 | mq-send -l q
	run --separate-stderr -0 mq-recv -n 0 -x 'sleep 0.1' q
	[ -z "$stderr" ]
	# stdout on the terminal too (the messages themselves): no progress line in them
	seq 3 | mq-send -l q
	on_tty "mq-recv -n 0 q"
	[[ $output != *"messages in"* ]]
}

@test "progress: mq-rm -s ready --all over many messages ends with its count and rate on a terminal" {
	seq 40000 | mq-send -l --no-sync q
	local t0
	t0=$(now_ms)
	on_tty "mq-rm -s ready --all q >/dev/null"
	[ "$status" -eq 0 ]
	[ "$(count q new)" -eq 0 ]
	# the line comes after half a second: a machine quicker than that shows none
	if time_past $((t0 + 800)); then
		[[ $output == *"mq-rm: "*" of 40000 messages"* || $output == *"mq-rm: 40000 messages in "* ]]
	fi
	[[ $output != *"mq-rm: 40000 messages in "* ]] || [[ $output == *"/s"* ]]
}
