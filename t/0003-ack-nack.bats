#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-ack and mq-nack on messages claimed with mq-recv -c: by path, by id,
# and from stdin; a second ack of the same claim is "lease lost" (exit 2);
# nack puts the message back with its attempt counted; an expired lease is
# taken over by the next claimer and the old claim can no longer be acked.

bats_require_minimum_version 1.5.0
load helper

claim() { # Q: claim one message, print its path
	mq-recv -c "$1"
}

@test "mq-ack by path exits 0 and removes the message" {
	echo x | mq-send q
	p=$(claim q)
	run -0 mq-ack q "$p"
	[ ! -e "$p" ]
	[ "$(messages_anywhere q)" -eq 0 ]
	run -1 mq-recv q
}

@test "a second mq-ack of the same path exits 2" {
	echo x | mq-send q
	p=$(claim q)
	mq-ack q "$p"
	run --separate-stderr -2 mq-ack q "$p"
	check_error mq-ack
}

@test "mq-ack by id exits 0" {
	id=$(echo x | mq-send -i q)
	p=$(claim q)
	run -0 mq-ack q "$id"
	[ ! -e "$p" ]
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-ack of an unknown id exits 2" {
	echo x | mq-send q
	run --separate-stderr -2 mq-ack q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	check_error mq-ack
}

@test "mq-ack of a message that is not claimed exits 2 and leaves it ready" {
	id=$(echo x | mq-send -i q)
	run -2 mq-ack q "$id"
	[ "$(count q new)" -eq 1 ]
}

@test "mq-ack - reads ids from stdin" {
	printf '%s\n' 1 2 3 | mq-send -l q
	mq-recv -c -n 0 q >"$BATS_TEST_TMPDIR/paths"
	[ "$(count q cur)" -eq 3 ]
	while read -r p; do name_id "$p"; done <"$BATS_TEST_TMPDIR/paths" |
		mq-ack q -
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-ack - reads paths from stdin (mq-recv -c | mq-ack q -)" {
	printf '%s\n' 1 2 3 | mq-send -l q
	mq-recv -c -n 0 q | mq-ack q -
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-ack with one unknown id exits 2 but acks the others" {
	printf '%s\n' 1 2 | mq-send -l q
	mq-recv -c -n 0 q >"$BATS_TEST_TMPDIR/paths"
	run -2 mq-ack q "$(head -n 1 "$BATS_TEST_TMPDIR/paths")" \
		01ARZ3NDEKTSV4RRFFQ69G5FAV "$(tail -n 1 "$BATS_TEST_TMPDIR/paths")"
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-ack --extend moves the lease deadline later and prints the new path" {
	echo x | mq-send q
	p=$(claim q)
	run -0 mq-ack --extend 2h q "$p"
	[ "${#lines[@]}" -eq 1 ]
	np=$output
	[ -f "$np" ]
	[ ! -e "$p" ]
	[ "$(name_id "$np")" = "$(name_id "$p")" ]
	[ "$(name_attempts "$np")" = "$(name_attempts "$p")" ]
	[ "$(name_time "$np")" -gt "$(($(now_ms) + 7000000))" ]
	# the old path is gone: acking it is "lease lost"
	run -2 mq-ack q "$p"
	run -0 mq-ack q "$np"
}

@test "mq-nack puts the message back in new/ with attempt count 1" {
	config q 'backoff = 0'
	echo x | mq-send q
	p=$(claim q)
	run -0 mq-nack q "$p"
	[ "$(count q cur)" -eq 0 ]
	f=$(only_file q new)
	is_msg_name "$f"
	[ "$(name_id "$f")" = "$(name_id "$p")" ]
	[ "$(name_attempts "$f")" = 1 ]
	[ "$(name_time "$f")" -le "$(now_ms)" ]
}

@test "a nacked message is delivered again, as attempt 2" {
	config q 'backoff = 0'
	printf 'body\0x' >"$BATS_TEST_TMPDIR/in"
	mq-send q <"$BATS_TEST_TMPDIR/in"
	mq-nack q "$(claim q)"
	run -0 mq-recv -c q
	[ "$(name_attempts "$output")" = 2 ]
	mq-nack q "$output"
	mq-recv q >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "mq-nack by id works" {
	config q 'backoff = 0'
	id=$(echo x | mq-send -i q)
	claim q >/dev/null
	run -0 mq-nack q "$id"
	[ "$(name_attempts "$(only_file q new)")" = 1 ]
}

@test "mq-nack - reads ids from stdin" {
	config q 'backoff = 0'
	printf '%s\n' 1 2 3 | mq-send -l q
	mq-recv -c -n 0 q | while read -r p; do name_id "$p"; done | mq-nack q -
	[ "$(count q new)" -eq 3 ]
	[ "$(count q cur)" -eq 0 ]
}

@test "mq-nack with the default backoff delays the message" {
	echo x | mq-send q
	mq-nack q "$(claim q)"
	f=$(only_file q new)
	[ "$(name_time "$f")" -gt "$(now_ms)" ]
	run -1 mq-recv q
}

@test "mq-nack --delay sets the due time" {
	echo x | mq-send q
	mq-nack --delay 1h q "$(claim q)"
	f=$(only_file q new)
	[ "$(name_time "$f")" -gt "$(($(now_ms) + 3500000))" ]
	run -0 mq-peek q
	[ "$(awk '{print $1, $2}' <<<"$output")" = "delayed $(name_id "$f")" ]
}

@test "a second mq-nack of the same path exits 2" {
	config q 'backoff = 0'
	echo x | mq-send q
	p=$(claim q)
	mq-nack q "$p"
	run --separate-stderr -2 mq-nack q "$p"
	check_error mq-nack
	[ "$(count q new)" -eq 1 ]
}

@test "mq-ack after mq-nack exits 2" {
	config q 'backoff = 0'
	echo x | mq-send q
	p=$(claim q)
	mq-nack q "$p"
	run -2 mq-ack q "$p"
	[ "$(count q new)" -eq 1 ]
}

@test "mq-nack --dead buries the message with the reason" {
	printf 'the body\n' | mq-send q
	p=$(claim q)
	run -0 mq-nack --dead 'no such customer' q "$p"
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q new)" -eq 0 ]
	f=$(only_file q dead)
	is_msg_name "$f"
	[ "$(name_id "$f")" = "$(name_id "$p")" ]
	[ "$(header_of "$f" Dead-Reason)" = 'no such customer' ]
	[ "$(header_of "$f" Dead-Attempts)" = 1 ]
	[ "$(header_of "$f" Id)" = "$(name_id "$p")" ]
	[ "$(body_of "$f")" = 'the body' ]
	[ "$(count q tmp)" -eq 0 ]
}

@test "an expired lease is taken over and the old claim can no longer be acked" {
	config q 'backoff = 0' 'lease = 1'
	echo x | mq-send q
	p=$(claim q)
	deadline=$(name_time "$p")
	# Lease deadline is about 1 s away; wait until it has passed.
	wait_for 10 time_past "$deadline"
	run -0 mq-recv -c q
	np=$output
	[ "$(name_id "$np")" = "$(name_id "$p")" ]
	[ "$(name_attempts "$np")" = 2 ]
	run -2 mq-ack q "$p"
	run -0 mq-ack q "$np"
	[ "$(messages_anywhere q)" -eq 0 ]
}
