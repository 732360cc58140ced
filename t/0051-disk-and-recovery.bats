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

# ---- mq-send -l rides out a full disk ----

@test "send -l: a full disk (ENOSPC) is waited out, the pipe unbroken: every line sent once when space returns" {
	small_disk
	export MQ_SPOOL="$SMALL/spool"
	echo first | mq-send q # the queue's directories exist: only the messages need room
	mq-recv q >/dev/null
	dd if=/dev/zero of="$SMALL/fill" bs=4096 2>/dev/null || true # to the last page
	mkfifo "$BATS_TEST_TMPDIR/in"
	exec 4<>"$BATS_TEST_TMPDIR/in" # the pipe's writer, open first (no blocking open)
	spawn mq-send -l q <"$BATS_TEST_TMPDIR/in" 2>"$BATS_TEST_TMPDIR/err" 4>&- # EOF once 4 closes
	local pid=$BG_PID
	seq 1 40 >&4
	wait_for 10 grep -q 'No space left on device: waiting for room on the disk' "$BATS_TEST_TMPDIR/err"
	# it waits: nothing sent, nothing half-written left in tmp/, the pipe open
	! pid_gone "$pid"
	[ "$(count q new)" -eq 0 ]
	[ "$(count q tmp)" -eq 0 ]
	seq 41 60 >&4 # the writer is not refused either: the pipe has room
	rm "$SMALL/fill"
	wait_for 10 count_is 60 q new
	seq 61 80 >&4
	exec 4>&-
	wait_for 10 pid_gone "$pid"
	wait "$pid" # exit 0
	[ "$(count q new)" -eq 80 ]
	[ "$(count q tmp)" -eq 0 ]
	local f
	for f in "$MQ_SPOOL"/q/new/*; do sed '1,/^$/d' "$f"; done | sort -n >"$BATS_TEST_TMPDIR/got"
	diff <(seq 1 80) "$BATS_TEST_TMPDIR/got" # each line once
	[ "$(grep -c 'waiting for room' "$BATS_TEST_TMPDIR/err")" -eq 1 ]
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
	wait_for 5 count_is 0 q cur
	[ "$(header_of "$(only_file q dead)" Dead-Reason)" = "handler said bury (exit 65)" ]
	echo good | mq-send q
	wait_for 20 lines_ge 1 "$T/handled"
	[ "$(cat "$T/handled")" = good ]
	alive "$pid"
	kill -TERM "$pid"
	wait_pid 20 "$pid"
	[ "$(count q cur)" -eq 0 ]
}

# ---- claims of a holder that died come back at once ----

# holders_left Q: holder files in QUEUE/holders/ (0 when it does not exist).
holders_left() {
	local d="$MQ_SPOOL/$1/holders"
	[ -d "$d" ] || { echo 0; return; }
	find "$d" -mindepth 1 | wc -l | tr -d ' '
}

# burst_then_kill: six messages (ids in $T/ids), mq-relayd with four
# handlers that hang, killed with SIGKILL while they hold four claims whose
# leases (1h) are far from over.
burst_then_kill() {
	config q 'lease = 1h'
	handler h <<'EOF2'
echo "$MQ_ID" >>"$T/started"
exec sleep 60
EOF2
	relayd_conf "consume q $T/h" "	concurrency 4"
	local i
	for i in 1 2 3 4 5 6; do
		echo "m$i" | mq-send -i q >>"$T/ids"
	done
	start_relayd
	wait_for 20 lines_ge 4 "$T/started"
	[ "$(count q cur)" -eq 4 ]
	[ "$(holders_left q)" -eq 1 ]
	kill -9 "$RELAYD_PID"
	wait_pid 20 "$RELAYD_PID"
	[ "$(count q cur)" -eq 4 ]
}

@test "recovery: after kill -9 of mq-relayd mid-burst, the next mq-recv gets every message it held" {
	burst_then_kill
	# one look, no waiting: the four claims are taken back as it starts
	run --separate-stderr -0 mq-recv -n 0 -x 'echo "$MQ_ID $MQ_ATTEMPT"' q
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 6 ]
	printf '%s\n' "${lines[@]}" | cut -d' ' -f1 >"$T/again"
	each_once "$T/ids" "$T/again"
	# the held ones were delivered once before: this is their attempt 2
	local id
	while read -r id; do
		printf '%s\n' "${lines[@]}" | grep -qx "$id 2"
	done <"$T/started"
	[ "$(printf '%s\n' "${lines[@]}" | grep -c ' 1$')" -eq 2 ]
	queue_empty q
	[ "$(holders_left q)" -eq 0 ] # the dead holder's file is gone too
}

@test "recovery: a restarted mq-relayd handles every message the killed one held, once" {
	burst_then_kill
	handler h2 <<'EOF2'
echo "$MQ_ID" >>"$T/done"
EOF2
	relayd_conf "consume q $T/h2" "	concurrency 4"
	start_relayd
	wait_for 10 lines_ge 6 "$T/done"
	wait_for 10 queue_empty q
	each_once "$T/ids" "$T/done"
	stop_relayd 20
	[ "$(holders_left q)" -eq 0 ]
}

@test "recovery: kill -9 of mq-recv -x leaves a claim that the next mq-recv gets at once" {
	config q 'lease = 1h'
	echo hello | mq-send q
	spawn mq-recv -x "echo started >'$T/started'; exec sleep 30" q
	local pid=$BG_PID
	wait_for 20 test -s "$T/started"
	# while it lives, its claim is its own: nothing to take back
	run --separate-stderr -1 mq-recv q
	[ "$(count q cur)" -eq 1 ]
	kill -9 "$pid"
	wait_pid 20 "$pid"
	run --separate-stderr -0 mq-recv -x 'echo "$MQ_ATTEMPT"; cat' q
	[ -z "$stderr" ]
	[ "$output" = $'2\nhello' ]
	queue_empty q
	[ "$(holders_left q)" -eq 0 ]
}

# in_write PID: PID is blocked in write(2) (a pipe that nobody reads).
in_write() {
	grep -q pipe_write "/proc/$1/wchan" 2>/dev/null ||
		[[ $(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null) == 1 ]]
}

@test "recovery: kill -9 of mq-recv blocked writing to stdout: its batch comes back at once" {
	# mq-recv to stdout records a batch's claims with one write, just before
	# the batch leaves the process (6.12); a pipe nobody reads stops it there
	config q 'lease = 1h'
	local i
	for i in 1 2 3; do
		head -c 200000 /dev/zero | tr '\0' "$i" | mq-send q
	done
	mkfifo "$T/pipe"
	spawn sh -c 'exec sleep 30 <"$1"' sh "$T/pipe" # opens the reading end, never reads
	local reader=$BG_PID
	spawn mq-recv -n 0 q >"$T/pipe"
	local pid=$BG_PID
	wait_for 20 in_write "$pid"
	[ "$(count q cur)" -ge 1 ]
	kill -9 "$pid"
	wait_pid 20 "$pid"
	kill "$reader" 2>/dev/null || true
	run --separate-stderr -0 mq-recv -n 0 q
	[ "${#output}" -eq 600000 ]
	queue_empty q
	[ "$(holders_left q)" -eq 0 ]
}

@test "recovery: a claim by mq-recv -c keeps its lease although its claimer is gone" {
	config q 'lease = 5s' 'backoff = 0'
	echo hello | mq-send q
	run --separate-stderr -0 mq-recv -c q
	local path=$output t0
	t0=$(now_ms)
	[ -f "$path" ]
	[ "$(holders_left q)" -eq 0 ] # -c holds nothing: no holder file
	# neither a consumer nor mq-stat's full repair takes it back early
	run --separate-stderr -1 mq-recv q
	mq-stat --repair q >/dev/null
	[ -f "$path" ]
	time_past $((t0 + 5000)) && skip "too slow to check within the lease"
	# at the end of its lease it is taken back and delivered again
	run --separate-stderr -0 mq-recv -w 20 q
	[ "$output" = hello ]
	time_past $((t0 + 4000))
}

# in_poll PID: PID is asleep in poll(2), waiting for an event.
in_poll() {
	grep -q poll "/proc/$1/wchan" 2>/dev/null ||
		[[ $(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null) == @(7|271) ]]
}

@test "recovery: a consumer already waiting (mq-recv -f) takes over the claim of one killed, at once" {
	config q 'lease = 1h'
	echo hello | mq-send q
	spawn mq-recv -x "echo started >'$T/started'; exec sleep 30" q
	local killed=$BG_PID
	wait_for 20 test -s "$T/started"
	spawn mq-recv -f q >"$T/out" 2>"$T/err"
	local pid=$BG_PID
	# it has looked (nothing for it: the claim's holder lives) and sleeps
	wait_for 20 in_poll "$pid"
	[ "$(count q cur)" -eq 1 ]
	kill -9 "$killed"
	# its holder file closing wakes the waiting consumer: no lease, no timer
	wait_for 10 lines_ge 1 "$T/out"
	[ "$(cat "$T/out")" = hello ]
	[ ! -s "$T/err" ]
	wait_for 10 queue_empty q
}

@test "recovery: a running mq-relayd takes over at once the claim of a killed mq-recv -x" {
	config q 'lease = 1h'
	echo hello | mq-send -i q >"$T/ids"
	spawn mq-recv -x "echo started >'$T/started'; exec sleep 30" q
	local killed=$BG_PID
	wait_for 20 test -s "$T/started"
	handler h <<'EOF2'
echo "$MQ_ID $MQ_ATTEMPT" >>"$T/done"
EOF2
	relayd_conf "consume q $T/h"
	start_relayd
	# it has looked and claimed (another message): that holder lives
	local other
	other=$(echo other | mq-send -i q)
	wait_for 20 lines_ge 1 "$T/done"
	[ "$(cat "$T/done")" = "$other 1" ]
	[ "$(count q cur)" -eq 1 ]
	kill -9 "$killed"
	wait_for 10 lines_ge 2 "$T/done"
	[ "$(sed -n 2p "$T/done")" = "$(cat "$T/ids") 2" ]
	wait_for 10 queue_empty q
}

@test "recovery: strays in holders/ neither hang nor mislead a consumer; a dead holder's junk is read safely" {
	config q 'lease = 1h'
	echo one | mq-send q
	run -0 mq-recv -c q
	local claim h=$MQ_SPOOL/q/holders
	claim=$(basename "$output")
	mkdir -p "$h"
	# not holder files: a FIFO, a symlink to one, a directory, other names
	mkfifo "$h/01M8SJND1PX5THHSH0MK3T7ZK9.1" "$BATS_TEST_TMPDIR/fifo"
	ln -s "$BATS_TEST_TMPDIR/fifo" "$h/01M8SJND1PX5THHSH0MK3T7ZK9.2"
	mkdir "$h/01M8SJND1PX5THHSH0MK3T7ZK9.3"
	echo "$claim" >"$h/.01M8SJND1PX5THHSH0MK3T7ZK9.4"
	echo "$claim" >"$h/README"
	run --separate-stderr -1 timeout 20 mq-recv q
	[ -f "$MQ_SPOOL/q/cur/$claim" ]
	[ -p "$h/01M8SJND1PX5THHSH0MK3T7ZK9.1" ]
	[ -L "$h/01M8SJND1PX5THHSH0MK3T7ZK9.2" ]
	[ -d "$h/01M8SJND1PX5THHSH0MK3T7ZK9.3" ]
	[ -f "$h/.01M8SJND1PX5THHSH0MK3T7ZK9.4" ]
	[ -f "$h/README" ]
	# an unlocked holder file of short lines, NULs and a torn end, naming the claim
	{
		for i in $(seq 2000); do printf 'x\n\n'; done
		printf '%s\n' "$claim"
		printf 'a\0b\n1796169882004.01M8T0SH'
	} >"$h/01M8SJND1PX5THHSH0MK3T7ZK9.5"
	run --separate-stderr -0 timeout 20 mq-recv q
	[ "$output" = one ]
	[ ! -e "$h/01M8SJND1PX5THHSH0MK3T7ZK9.5" ]
	queue_empty q
}
