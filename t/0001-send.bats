#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-send: bodies go in byte for byte and come out the same, the message
# file on disk has the documented name and layout, several sends keep FIFO
# order, and nothing is left in tmp/ after a successful send.

bats_require_minimum_version 1.5.0
load helper

roundtrip() { # FILE: send FILE as one message, receive it, compare
	mq-send q <"$1"
	mq-recv q >"$BATS_TEST_TMPDIR/out"
	cmp "$1" "$BATS_TEST_TMPDIR/out"
}

@test "round trip of a text body" {
	printf 'hello\nworld\n' >"$BATS_TEST_TMPDIR/in"
	roundtrip "$BATS_TEST_TMPDIR/in"
}

@test "round trip of a body with NUL bytes and no trailing newline" {
	printf 'a\0b\0\0c\n\n\0\377end' >"$BATS_TEST_TMPDIR/in"
	roundtrip "$BATS_TEST_TMPDIR/in"
}

@test "round trip of an empty body" {
	: >"$BATS_TEST_TMPDIR/in"
	roundtrip "$BATS_TEST_TMPDIR/in"
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
}

@test "round trip of a body that looks like headers" {
	printf 'Id: fake\n\nX-Foo: bar\n\n' >"$BATS_TEST_TMPDIR/in"
	roundtrip "$BATS_TEST_TMPDIR/in"
}

@test "round trip of a 10 MiB random body" {
	head -c 10485760 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	roundtrip "$BATS_TEST_TMPDIR/in"
}

@test "send of a FILE argument equals send of stdin" {
	printf 'from a file\0\n' >"$BATS_TEST_TMPDIR/in"
	mq-send q "$BATS_TEST_TMPDIR/in"
	mq-recv q >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "several FILEs are several messages, in argument order" {
	local i args=()
	for i in 1 2 3 4 5; do
		printf 'file %s\n' "$i" >"$BATS_TEST_TMPDIR/f$i"
		args+=("$BATS_TEST_TMPDIR/f$i")
	done
	mq-send q "${args[@]}"
	[ "$(count q new)" -eq 5 ]
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'file %s\n' 1 2 3 4 5)" ]
}

@test "separate sends are received in FIFO order" {
	local i
	for i in 1 2 3 4 5 6; do
		echo "m$i" | mq-send q
		next_ms
	done
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'm%s\n' 1 2 3 4 5 6)" ]
}

@test "a message file in new/ has the name T.ID.0" {
	echo x | mq-send q
	f=$(only_file q new)
	is_msg_name "$f"
	[ "$(name_attempts "$f")" = 0 ]
	# T is the due time: now, give or take the time the send took.
	t=$(name_time "$f")
	[ "$t" -le "$(now_ms)" ]
	[ "$t" -gt "$(($(now_ms) - 60000))" ]
}

@test "a message file starts with Id: and has the body after the empty line" {
	printf 'line one\nline two\n' | mq-send q
	f=$(only_file q new)
	[ "$(head -n 1 "$f")" = "Id: $(name_id "$f")" ]
	[[ $(header_of "$f" Date) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]
	[ "$(body_of "$f")" = "$(printf 'line one\nline two')" ]
	# cat shows header, empty line, body
	run -0 cat "$f"
	[[ $output == *$'\n\nline one\nline two' ]]
}

@test "a binary body is stored byte for byte after the header" {
	printf '\0\1\2\n\n\377' >"$BATS_TEST_TMPDIR/in"
	mq-send q <"$BATS_TEST_TMPDIR/in"
	body_of "$(only_file q new)" >"$BATS_TEST_TMPDIR/body"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/body"
}

@test "-H adds a header to the message file" {
	echo x | mq-send -H 'X-Foo: bar baz' -H 'Content-Type: text/plain' q
	f=$(only_file q new)
	[ "$(header_of "$f" X-Foo)" = "bar baz" ]
	[ "$(header_of "$f" Content-Type)" = "text/plain" ]
	[ "$(body_of "$f")" = x ]
}

@test "tmp/ is empty after a successful send" {
	echo x | mq-send q
	[ "$(count q tmp)" -eq 0 ]
	[ "$(count q new)" -eq 1 ]
}

@test "the queue directories are created on first send" {
	[ ! -e "$MQ_SPOOL" ]
	echo x | mq-send q
	[ -d "$MQ_SPOOL/q/tmp" ]
	[ -d "$MQ_SPOOL/q/new" ]
	[ -d "$MQ_SPOOL/q/cur" ]
	[ -d "$MQ_SPOOL/q/dead" ]
}

@test "-i prints the id of the new message" {
	run -0 mq-send -i q <<<"x"
	[ "${#lines[@]}" -eq 1 ]
	[[ $output =~ ^$ULID_RE$ ]]
	[ "$output" = "$(name_id "$(only_file q new)")" ]
}

@test "-i ids are the ids mq-peek lists" {
	local ids
	ids=$(for i in 1 2 3; do echo "$i" | mq-send -i q; done | sort)
	[ "$(echo "$ids" | wc -l)" -eq 3 ]
	run -0 mq-peek q
	[ "$(printf '%s\n' "${lines[@]}" | awk '{print $2}' | sort)" = "$ids" ]
}

@test "ids of many sends are unique" {
	printf '%s\n' $(seq 1 50) >"$BATS_TEST_TMPDIR/in"
	for i in 1 2 3 4 5; do mq-send -i q <"$BATS_TEST_TMPDIR/in"; done \
		>"$BATS_TEST_TMPDIR/ids"
	mq-send -i -l q <"$BATS_TEST_TMPDIR/in" >>"$BATS_TEST_TMPDIR/ids"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/ids")" -eq 55 ]
	[ -z "$(sort "$BATS_TEST_TMPDIR/ids" | uniq -d)" ]
}

@test "-d DIR overrides MQ_SPOOL" {
	echo x | mq-send -d "$BATS_TEST_TMPDIR/other" q
	[ "$(count q new)" -eq 0 ]
	[ "$(ls "$BATS_TEST_TMPDIR/other/q/new" | wc -l)" -eq 1 ]
	run -0 mq-recv -d "$BATS_TEST_TMPDIR/other" q
	[ "$output" = x ]
}

@test "queue names may use letters, digits, dot, underscore and dash" {
	local q=A.b_c-9
	echo x | mq-send "$q"
	[ "$(count "$q" new)" -eq 1 ]
	q=$(printf 'q%.0s' $(seq 1 64))
	echo x | mq-send "$q"
	[ "$(count "$q" new)" -eq 1 ]
}

@test "--delay puts the due time in the future and mq-recv does not see it" {
	echo x | mq-send --delay 1h q
	f=$(only_file q new)
	[ "$(name_time "$f")" -gt "$(($(now_ms) + 3500000))" ]
	run -1 mq-recv q
}

@test "--no-sync still delivers" {
	echo x | mq-send --no-sync q
	run -0 mq-recv q
	[ "$output" = x ]
}
