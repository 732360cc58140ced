#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Several producers and consumers at once: every message is received exactly
# once (claims are renames, exactly one claimer wins); a queue created by
# racing producers works; a producer killed mid-message leaves nothing a
# consumer could see.  Every wait is bounded by a deadline.

bats_require_minimum_version 1.5.0
load helper

# consume I: receive into out.I until the producers are done and the queue
# is empty; record any unexpected exit status in err.I.
consume() {
	local i=$1 rc deadline=$(($(now_ms) + 90000))
	local T=$BATS_TEST_TMPDIR
	while [ "$(now_ms)" -lt "$deadline" ]; do
		rc=0
		mq-recv -n 0 q >>"$T/out.$i" 2>>"$T/err.$i" || rc=$?
		case $rc in
		0) ;;
		1)
			if [ -e "$T/producers-done" ]; then return 0; fi
			sleep 0.02
			;;
		*) echo "consumer $i: mq-recv exit $rc" >>"$T/err.$i" ;;
		esac
	done
	echo "consumer $i: deadline passed" >>"$T/err.$i"
}

@test "4 producers and 4 consumers: every message received exactly once" {
	local T=$BATS_TEST_TMPDIR p c producers=() consumers=()
	# The queue exists before the consumers start (a consumer racing the
	# queue's creation is tested in 0002-recv).
	echo warm-up | mq-send q
	mq-recv q >/dev/null
	for c in 1 2 3 4; do
		: >"$T/out.$c"
		: >"$T/err.$c"
		spawn consume "$c"
		consumers+=("$BG_PID")
	done
	for p in 0 1 2 3; do
		spawn sh -c "seq $((p * 500 + 1)) $((p * 500 + 500)) | mq-send -l q"
		producers+=("$BG_PID")
	done
	for p in "${producers[@]}"; do
		wait_pid 60 "$p"
		[ "$WAIT_STATUS" -eq 0 ]
	done
	touch "$T/producers-done"
	for c in "${consumers[@]}"; do
		wait_pid 100 "$c"
	done
	cat "$T"/err.*
	[ -z "$(cat "$T"/err.*)" ]
	cat "$T"/out.* | sort -n >"$T/all"
	[ -z "$(uniq -d "$T/all")" ]
	[ "$(wc -l <"$T/all")" -eq 2000 ]
	seq 1 2000 | cmp - "$T/all"
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "8 parallel claimers of 200 messages: each claimed exactly once" {
	local T=$BATS_TEST_TMPDIR i pids=()
	seq 1 200 | mq-send -l q
	for i in 1 2 3 4 5 6 7 8; do
		spawn sh -c "mq-recv -c -n 0 q >'$T/claimed.$i'; echo \$? >'$T/rc.$i'"
		pids+=("$BG_PID")
	done
	for i in "${pids[@]}"; do wait_pid 60 "$i"; done
	# each exits 0 (got some) or 1 (all taken by the others)
	for i in 1 2 3 4 5 6 7 8; do
		[[ $(cat "$T/rc.$i") == [01] ]]
	done
	cat "$T"/claimed.* | sort >"$T/all"
	[ "$(wc -l <"$T/all")" -eq 200 ]
	[ -z "$(uniq -d "$T/all")" ]
	[ "$(count q cur)" -eq 200 ]
	[ "$(count q new)" -eq 0 ]
	while read -r f; do [ -f "$f" ]; done <"$T/all"
}

@test "producers racing to create a new queue all succeed" {
	local T=$BATS_TEST_TMPDIR i pids=()
	for i in 1 2 3 4 5 6 7 8; do
		spawn sh -c "echo $i | mq-send fresh"
		pids+=("$BG_PID")
	done
	for i in "${pids[@]}"; do
		wait_pid 60 "$i"
		[ "$WAIT_STATUS" -eq 0 ]
	done
	[ "$(count fresh new)" -eq 8 ]
	run -0 mq-recv -n 0 fresh
	[ "$(printf '%s\n' "${lines[@]}" | sort -n)" = "$(seq 1 8)" ]
}

@test "a producer killed with SIGKILL mid-message leaves nothing in new/" {
	local T=$BATS_TEST_TMPDIR
	mkfifo "$T/fifo"
	exec 4<>"$T/fifo" # our end; mq-send never sees EOF while it is open
	spawn mq-send q <"$T/fifo" 4>&-
	pid=$BG_PID
	timeout 20 head -c 100000 /dev/urandom >&4
	# The partial message should be on its way through tmp/.
	wait_for 5 count_is 1 q tmp ||
		echo "note: no file in tmp/ before the kill" >&2
	kill -0 "$pid"
	kill -9 "$pid"
	wait_pid 10 "$pid"
	exec 4>&-
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
	run -1 mq-recv q
	run -1 mq-peek q
}

@test "a batch producer killed with SIGKILL leaves only whole messages" {
	local T=$BATS_TEST_TMPDIR
	mkfifo "$T/fifo"
	exec 4<>"$T/fifo"
	spawn mq-send -l q <"$T/fifo" 4>&-
	pid=$BG_PID
	printf 'line %s\n' 1 2 3 >&4
	wait_for 10 count_is 3 q new
	printf 'partial line without end' >&4
	kill -0 "$pid"
	kill -9 "$pid"
	wait_pid 10 "$pid"
	exec 4>&-
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'line %s\n' 1 2 3)" ]
}
