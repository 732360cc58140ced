#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Delayed messages (issue 3): mq-send --delay DUR and --at TIME put the due
# time in the name, so a delay survives any restart (kill -9 of every
# process); mq-recv does not deliver before it; mq-recv -w and -f wake when
# one falls due, by a timer, not by polling.

bats_require_minimum_version 1.5.0
load helper

# ctxt PID: voluntary context switches of PID so far (each sleep/wake is one).
ctxt() {
	awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status"
}

@test "--delay puts the due time in the name; mq-recv exits 1 before it" {
	t0=$(now_ms)
	echo later | mq-send --delay 1h q
	t1=$(now_ms)
	n=$(only_file q new)
	[ "$(name_time "$n")" -ge $((t0 + 3600000)) ]
	[ "$(name_time "$n")" -le $((t1 + 3600000)) ]
	[ "$(name_attempts "$n")" -eq 0 ]
	run -1 mq-recv q
	[ -z "$output" ]
	run -1 mq-recv -n 0 q
	run -1 mq-recv -c q
	[ "$(count q cur)" -eq 0 ]
	run -0 mq-peek q
	[[ $output == delayed* ]]
}

@test "mq-recv -w returns a message delayed 1.5s when due, sleeping on a timer" {
	local T=$BATS_TEST_TMPDIR
	echo soon | mq-send --delay 1500ms q
	due=$(name_time "$(only_file q new)")
	spawn sh -c "mq-recv -w 10 q >'$T/out'; echo \$? >'$T/rc'"
	# the sh's child: the mq-recv itself
	wait_for 5 eval 'pid=$(pgrep -P "$BG_PID" -x mq-recv)'
	wait_for 5 has_inotify "$pid"
	c0=$(ctxt "$pid")
	sleep 0.5
	c1=$(ctxt "$pid")
	# asleep the whole time: a poller would wake every few ms
	echo "context switches while waiting: $((c1 - c0))"
	[ $((c1 - c0)) -le 3 ]
	[ ! -s "$T/out" ]
	wait_pid 10 "$BG_PID"
	[ "$(cat "$T/rc")" = 0 ]
	[ "$(cat "$T/out")" = soon ]
	[ "$(now_ms)" -ge "$due" ]
	# and well before the 10 s were up
	[ "$(now_ms)" -lt $((due + 5000)) ]
}

@test "mq-recv -w gives up at its deadline when the message is due later" {
	echo later | mq-send --delay 1h q
	t0=$(now_ms)
	run -1 mq-recv -w 300ms q
	[ "$(now_ms)" -ge $((t0 + 300)) ]
	[ "$(count q new)" -eq 1 ]
}

@test "a delay survives kill -9 of every process" {
	local T=$BATS_TEST_TMPDIR
	echo 'still here' | mq-send --delay 2s q
	n=$(only_file q new)
	due=$(name_time "$n")
	spawn mq-recv -w 10 q
	pid=$BG_PID
	wait_for 5 has_inotify "$pid"
	kill -9 "$pid"
	wait_pid 5 "$pid"
	[ "$WAIT_STATUS" -eq 137 ]
	# nothing changed: the due time is only the name
	[ "$(files q new)" = "$n" ]
	[ "$(count q cur)" -eq 0 ]
	run -0 mq-recv -w 10 q
	[ "$output" = 'still here' ]
	[ "$(now_ms)" -ge "$due" ]
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-recv -f wakes for a delayed message and keeps following" {
	local T=$BATS_TEST_TMPDIR
	mkdir -p "$MQ_SPOOL"
	spawn sh -c "exec mq-recv -f q >'$T/out'"
	pid=$BG_PID
	wait_for 5 has_inotify "$pid"
	echo delayed | mq-send --delay 700ms q
	due=$(name_time "$(only_file q new)")
	echo ready | mq-send q
	wait_for 5 grep -qx ready "$T/out"
	wait_for 10 grep -qx delayed "$T/out"
	[ "$(now_ms)" -ge "$due" ]
	[ "$(cat "$T/out")" = "$(printf 'ready\ndelayed')" ]
	kill -0 "$pid"
	kill -TERM "$pid"
	wait_pid 10 "$pid"
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "a delayed message does not hold back ready ones; due order is delivery order" {
	echo third | mq-send --delay 1h q
	next_ms
	echo second | mq-send --delay 30m q
	next_ms
	echo first | mq-send q
	run -0 mq-recv -n 0 q
	[ "$output" = first ]
	# the due times order them, not the send order
	files q new >"$BATS_TEST_TMPDIR/names"
	[ "$(body_of "$(sed -n 1p "$BATS_TEST_TMPDIR/names")")" = second ]
	[ "$(body_of "$(sed -n 2p "$BATS_TEST_TMPDIR/names")")" = third ]
}

@test "--at @EPOCH and ISO times set the due time exactly" {
	s=$(($(now_ms) / 1000 + 7200))
	echo a | mq-send --at "@$s" q
	[ "$(name_time "$(only_file q new)")" = "${s}000" ]
	rm "$(qdir q)"/new/*
	echo b | mq-send --at "$(date -u -d "@$s" +%Y-%m-%dT%H:%M:%SZ)" q
	[ "$(name_time "$(only_file q new)")" = "${s}000" ]
	rm "$(qdir q)"/new/*
	# local time (TZ=UTC here)
	echo c | mq-send --at "$(date -d "@$s" '+%Y-%m-%d %H:%M:%S')" q
	[ "$(name_time "$(only_file q new)")" = "${s}000" ]
	run -1 mq-recv q
}

@test "--at a time in the past is due at once" {
	echo past | mq-send --at @1000000000 q
	run -0 mq-recv q
	[ "$output" = past ]
}

@test "--at the next second: mq-recv -w gets it when due" {
	s=$(($(now_ms) / 1000 + 1))
	echo tick | mq-send --at "@$s" q
	run -0 mq-recv -w 10 q
	[ "$output" = tick ]
	[ "$(now_ms)" -ge "${s}000" ]
}

@test "--delay with --at, and bad delays or times, exit 64" {
	run --separate-stderr -64 mq-send --delay 1s --at @2000000000 q <<<x
	check_error mq-send
	run --separate-stderr -64 mq-send --delay soon q <<<x
	check_error mq-send
	run --separate-stderr -64 mq-send --at tomorrow q <<<x
	check_error mq-send
	[ ! -e "$(qdir q)/new" ] || [ "$(count q new)" -eq 0 ]
}

@test "--at refuses what is no date, and times a name cannot hold" {
	local t
	for t in 2026-02-31 2027-02-29 '@inf' '@nan' '@0x10' '@1e20' '@ 5' '@-5' \
		' 2026-01-01' '2026-01-01T00:00+99:99' '2026-01-01T00:00+01:00x' \
		'2026-01-01T00:00+01:' 1969-12-31 '2300-01-01T00:00:00Z'; do
		run --separate-stderr -64 mq-send --at "$t" q <<<x
		check_error mq-send
	done
	run --separate-stderr -64 mq-send --delay 20000w q <<<x
	check_error mq-send
	[ ! -e "$(qdir q)/new" ] || [ "$(count q new)" -eq 0 ]
}

@test "--at with a UTC offset, and a leap day" {
	echo a | mq-send --at 2030-01-01T05:30:00+05:30 q
	[ "$(name_time "$(only_file q new)")" = "$(date -u -d 2030-01-01T00:00:00Z +%s)000" ]
	rm "$(qdir q)"/new/*
	echo b | mq-send --at 2028-02-29T00:00:00-0100 q
	[ "$(name_time "$(only_file q new)")" = "$(date -u -d 2028-02-29T01:00:00Z +%s)000" ]
}
