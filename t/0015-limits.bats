#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Peak shaving (issue 3): with max-length ready messages, or less than
# min-free bytes free on the spool's filesystem, mq-send refuses with exit 75
# and a clear message, and writes nothing (new/ and tmp/ unchanged).  And
# max-size: a message over it is refused with exit 65.

bats_require_minimum_version 1.5.0
load helper

# tree Q: every file and directory of the queue with its size.
tree() {
	find "$(qdir "$1")" -printf '%P %s\n' | LC_ALL=C sort
}

@test "max-length: the send past the limit exits 75 with a message and writes nothing" {
	config q 'max-length = 2'
	echo 1 | mq-send q
	echo 2 | mq-send q
	before=$(tree q)
	run --separate-stderr -75 mq-send -i q <<<3
	[ -z "$output" ]
	check_error mq-send
	[[ $stderr == *full* ]]
	[[ $stderr == *max-length* ]]
	[ "$(tree q)" = "$before" ]
	[ "$(count q tmp)" -eq 0 ]
	[ "$(count q new)" -eq 2 ]
}

@test "max-length: once a message is consumed there is room again" {
	config q 'max-length = 1'
	echo 1 | mq-send q
	run -75 mq-send q <<<2
	run -0 mq-recv q
	[ "$output" = 1 ]
	run -0 mq-send q <<<2
	run -0 mq-recv q
	[ "$output" = 2 ]
}

@test "max-length counts ready messages only: delayed and claimed ones do not count" {
	config q 'max-length = 1'
	echo later | mq-send --delay 1h q
	echo claimed | mq-send q
	mq-recv -c q >/dev/null
	run -0 mq-send q <<<ready
	run -75 mq-send q <<<over
	[ "$(count q new)" -eq 2 ]
	[ "$(count q cur)" -eq 1 ]
}

@test "a full queue refuses a delayed message too" {
	config q 'max-length = 1'
	echo ready | mq-send q
	run --separate-stderr -75 mq-send --delay 1h q <<<later
	check_error mq-send
	[[ $stderr == *"is full"* ]]
	[ "$(count q new)" -eq 1 ]
}

@test "max-length with several FILEs: all or nothing" {
	local T=$BATS_TEST_TMPDIR
	config q 'max-length = 3'
	echo 0 | mq-send q
	for i in 1 2 3; do echo "$i" >"$T/f$i"; done
	before=$(tree q)
	run --separate-stderr -75 mq-send q "$T/f1" "$T/f2" "$T/f3"
	check_error mq-send
	[ "$(tree q)" = "$before" ]
	run -0 mq-send q "$T/f1" "$T/f2"
	[ "$(count q new)" -eq 3 ]
}

@test "a send refused for max-length leaves no dedup marker: the retry is accepted" {
	config q 'max-length = 1'
	echo filler | mq-send q
	run -75 mq-send --id order-1 q <<<first
	[ ! -e "$(qdir q)/ids/order-1" ]
	mq-recv q >/dev/null
	run --separate-stderr -0 mq-send --id order-1 q <<<retry
	[ -z "$stderr" ]
	run -0 mq-recv q
	[ "$output" = retry ]
}

@test "min-free unmet: exit 75 with a message, nothing written" {
	echo first | mq-send q
	config q 'min-free = 1000T'
	before=$(tree q)
	run --separate-stderr -75 mq-send q <<<x
	check_error mq-send
	[[ $stderr == *min-free* ]]
	[ "$(tree q)" = "$before" ]
	# line mode waits for room instead (t/0080-operator.bats), sending nothing meanwhile
	spawn sh -c 'printf "a\nb\n" | mq-send -l q 2>"$1"' sh "$BATS_TEST_TMPDIR/err"
	wait_for 10 grep -q 'min-free.*: waiting for room$' "$BATS_TEST_TMPDIR/err"
	[ "$(count q new)" -eq 1 ]
}

@test "min-free met: sends go through" {
	config q 'min-free = 1K'
	run -0 mq-send q <<<x
	[ "$(count q new)" -eq 1 ]
}

@test "a bad min-free or max-length value exits 78" {
	config q 'min-free = plenty'
	run --separate-stderr -78 mq-send q <<<x
	[[ $stderr == *"config:1: bad value for min-free: 'plenty'"* ]]
	rm "$(qdir q)/config"
	config q 'max-length = -1'
	run --separate-stderr -78 mq-send q <<<x
	[[ $stderr == *"bad value for max-length"* ]]
}

@test "max-length = 0 and min-free = 0 mean unlimited" {
	config q 'max-length = 0' 'min-free = 0'
	seq 1 50 | mq-send -l q
	[ "$(count q new)" -eq 50 ]
}

@test "max-size: a message over it exits 65 and writes nothing (no tmp/ file left)" {
	echo seed | mq-send q
	config q 'max-size = 100'
	before=$(tree q)
	run --separate-stderr -65 mq-send q < <(head -c 101 /dev/zero)
	check_error mq-send
	[ "$(tree q)" = "$before" ]
	run -0 mq-send q < <(head -c 100 /dev/zero)
	[ "$(count q new)" -eq 2 ]
}

@test "max-length holds against 8 parallel senders" {
	local T=$BATS_TEST_TMPDIR r i pids
	echo seed | mq-send q
	mq-recv q >/dev/null
	config q 'max-length = 2'
	for r in 1 2 3; do
		pids=()
		rm -f "$T"/rc.*
		for i in 1 2 3 4 5 6 7 8; do
			spawn sh -c "echo $i | mq-send q 2>/dev/null; echo \$? >'$T/rc.$i'"
			pids+=("$BG_PID")
		done
		for i in "${pids[@]}"; do wait_pid 30 "$i"; done
		echo "round $r: $(sort "$T"/rc.* | uniq -c | tr -s ' \n' ' ')"
		[ "$(count q new)" -eq 2 ]
		[ "$(cat "$T"/rc.* | grep -cx 0)" -eq 2 ]
		[ "$(cat "$T"/rc.* | grep -cx 75)" -eq 6 ]
		[ "$(count q tmp)" -eq 0 ]
		mq-recv -n 0 q >/dev/null
	done
}
