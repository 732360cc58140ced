#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# A disk that fills, and a holder that dies (issue 8): a send with --id
# leaves its message and its dedup marker both or neither; a long-running
# consumer rides out a full disk and recovers when space returns; and the
# claims of a consumer that was killed come back at once, while a claim
# taken by hand (mq-recv -c) keeps its lease.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

setup() { relayd_setup; }

teardown() {
	if [ -n "${SMALL:-}" ] && mountpoint -q "$SMALL"; then
		relayd_teardown # the processes hold the spool open: stop them first
		umount "$SMALL"
	else
		relayd_teardown
	fi
}

# fill_small: fill $SMALL (a tmpfs) to the last page, then free one page:
# room for one small file's data, not for a second.
fill_small() {
	dd if=/dev/zero of="$SMALL/fill" bs=4096 2>/dev/null || true
	truncate -s -4096 "$SMALL/fill"
}

# alive PID: running (not gone, not a zombie).
alive() { ! pid_gone "$1"; }

# ---- bug 5: a dedup marker is whole, and with its message, or neither ----

@test "send --id: a disk that has room for the message but not its marker sends nothing, exit 75" {
	small_disk
	export MQ_SPOOL="$SMALL/spool"
	# the queue, its ids/ and its .lock exist: only the new files need room
	echo first | mq-send --id k0 q
	mq-recv q >/dev/null
	fill_small
	run --separate-stderr -75 mq-send -i --id k1 q <<<"second"
	check_error mq-send
	[[ $stderr == *"No space left on device"* ]]
	[ -z "$output" ]
	[ "$(count q new)" -eq 0 ]
	[ "$(count q tmp)" -eq 0 ]
	[ ! -e "$MQ_SPOOL/q/ids/k1" ]
	# space is back: the retry is sent (not a "duplicate of" nothing)
	rm "$SMALL/fill"
	run --separate-stderr -0 mq-send -i --id k1 q <<<"second"
	[ -z "$stderr" ]
	[[ $output =~ ^$ULID_RE$ ]]
	[ "$(cat "$MQ_SPOOL/q/ids/k1")" = "$output" ]
	[ "$(name_id "$(only_file q new)")" = "$output" ]
	[ "$(count q tmp)" -eq 0 ]
}

@test "send --id: an empty or torn marker names no message: the send goes ahead" {
	mkdir -p "$MQ_SPOOL/q/ids"
	: >"$MQ_SPOOL/q/ids/k1"
	printf '01M8SJND1P' >"$MQ_SPOOL/q/ids/k2"
	local k id
	for k in k1 k2; do
		run --separate-stderr -0 mq-send -i --id "$k" --strict q <<<"body $k"
		[ -z "$stderr" ]
		[[ $output =~ ^$ULID_RE$ ]]
		id=$output
		[ "$(cat "$MQ_SPOOL/q/ids/$k")" = "$id" ]
		# and now it is a real marker: the next send is a duplicate of it
		run --separate-stderr -3 mq-send -i --id "$k" --strict q <<<"again"
		[ "$output" = "$id" ]
		[ "$stderr" = "mq-send: duplicate of $id (key '$k' seen within the dedup window): not sent" ]
	done
	[ "$(count q new)" -eq 2 ]
	[ "$(count q tmp)" -eq 0 ]
}

# ---- bug 4: mq-recv -f rides out a full disk ----

@test "mq-recv -f: a burial refused by a full disk is tried again, and the consumer goes on" {
	small_disk
	export MQ_SPOOL="$SMALL/spool"
	handler h <<'EOF2'
body=$(cat)
[ "$body" = bad ] && exit 65
echo "$body" >>"$T/handled"
EOF2
	mkdir -p "$MQ_SPOOL"
	# due in a moment: the disk is full by then
	echo bad | mq-send --delay 2s q
	mq-recv -f -x "$T/h" q 2>"$T/recv.err" &
	local pid=$!
	echo "$pid" >>"$PIDFILE"
	dd if=/dev/zero of="$SMALL/fill" bs=4096 2>/dev/null || true
	wait_for 20 grep -q 'No space left on device' "$T/recv.err"
	# alive, and the message kept in cur/: not lost, not half-buried
	alive "$pid"
	[ "$(count q cur)" -eq 1 ]
	[ "$(count q dead)" -eq 0 ]
	[ "$(count q new)" -eq 0 ]
	[[ $(head -n 1 "$T/recv.err") == "mq-recv: "*"No space left on device"*"trying again in 1s" ]]
	# space returns: the burial is done at the next try, and it goes on serving
	rm "$SMALL/fill"
	wait_for 20 count_is 1 q dead
	[ "$(count q cur)" -eq 0 ]
	[ "$(header_of "$(only_file q dead)" Dead-Reason)" = "handler said bury (exit 65)" ]
	echo good | mq-send q
	wait_for 20 lines_ge 1 "$T/handled"
	[ "$(cat "$T/handled")" = good ]
	alive "$pid"
	kill -TERM "$pid"
	wait_pid 20 "$pid"
	[ "$(count q cur)" -eq 0 ]
}
