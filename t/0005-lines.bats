#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-send -l: every input line is one message, newline kept; batches are
# committed together, and a quiet input (like `tail -F`) has its lines
# committed at once rather than held for a full batch.

bats_require_minimum_version 1.5.0
load helper

@test "seq 1 2000 | mq-send -l, then mq-recv -n 0 equals seq 1 2000" {
	seq 1 2000 | mq-send -l q
	[ "$(count q new)" -eq 2000 ]
	[ "$(count q tmp)" -eq 0 ]
	mq-recv -n 0 q >"$BATS_TEST_TMPDIR/out"
	seq 1 2000 | cmp - "$BATS_TEST_TMPDIR/out"
	run -1 mq-recv q
}

@test "-l keeps each newline; the last line may lack one" {
	printf 'one\ntwo\nlast' | mq-send -l q
	[ "$(count q new)" -eq 3 ]
	mq-recv q >"$BATS_TEST_TMPDIR/1"
	mq-recv q >"$BATS_TEST_TMPDIR/2"
	mq-recv q >"$BATS_TEST_TMPDIR/3"
	printf 'one\n' | cmp - "$BATS_TEST_TMPDIR/1"
	printf 'two\n' | cmp - "$BATS_TEST_TMPDIR/2"
	printf 'last' | cmp - "$BATS_TEST_TMPDIR/3"
	run -1 mq-recv q
}

@test "-l: an empty line is a message of one newline" {
	printf 'a\n\nb\n' | mq-send -l q
	[ "$(count q new)" -eq 3 ]
	mq-recv -n 0 q >"$BATS_TEST_TMPDIR/out"
	printf 'a\n\nb\n' | cmp - "$BATS_TEST_TMPDIR/out"
}

@test "-l: a line with NUL bytes is kept whole" {
	printf 'a\0b\nc\0\n' | mq-send -l q
	[ "$(count q new)" -eq 2 ]
	mq-recv q >"$BATS_TEST_TMPDIR/out"
	printf 'a\0b\n' | cmp - "$BATS_TEST_TMPDIR/out"
}

@test "-l on empty input sends nothing and exits 0" {
	run -0 mq-send -l q </dev/null
	[ "$(count q new)" -eq 0 ]
}

@test "-l each message file has the name grammar and one line as body" {
	printf '%s\n' x y | mq-send -l q
	for f in $(files q new); do
		is_msg_name "$f"
		[ "$(name_attempts "$f")" = 0 ]
		[ "$(head -n 1 "$f")" = "Id: $(name_id "$f")" ]
	done
	[ "$(body_of "$(files q new | head -n 1)")" = x ]
}

@test "-l -i prints one id per line, in order" {
	run -0 mq-send -l -i q < <(seq 1 5)
	[ "${#lines[@]}" -eq 5 ]
	for i in 1 2 3 4 5; do
		[[ ${lines[i - 1]} =~ ^$ULID_RE$ ]]
		mq-peek q "${lines[i - 1]}" >"$BATS_TEST_TMPDIR/m"
		[ "$(body_of "$BATS_TEST_TMPDIR/m")" = "$i" ]
	done
}

@test "-l with FILE arguments: every line of each file" {
	printf '1\n2\n' >"$BATS_TEST_TMPDIR/a"
	printf '3\n4\n' >"$BATS_TEST_TMPDIR/b"
	mq-send -l q "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf '1\n2\n3\n4')" ]
}

@test "-l: long lines are kept" {
	head -c 300000 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/in"
	echo >>"$BATS_TEST_TMPDIR/in"
	echo short >>"$BATS_TEST_TMPDIR/in"
	mq-send -l q <"$BATS_TEST_TMPDIR/in"
	[ "$(count q new)" -eq 2 ]
	mq-recv -n 0 q >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "-l commits a line at once when no more input is waiting" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	exec 4<>"$BATS_TEST_TMPDIR/fifo" # our end; mq-send sees EOF when it closes
	spawn mq-send -l q <"$BATS_TEST_TMPDIR/fifo" 4>&-
	pid=$BG_PID
	echo first >&4
	# The writer stays open: the line must still be committed promptly.
	wait_for 5 count_is 1 q new
	kill -0 "$pid"
	run -0 mq-recv q
	[ "$output" = first ]
	echo second >&4
	wait_for 5 count_is 1 q new
	exec 4>&-
	wait_pid 10 "$pid"
	[ "$WAIT_STATUS" -eq 0 ]
	run -0 mq-recv q
	[ "$output" = second ]
}
