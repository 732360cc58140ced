#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Bad input gets one line on stderr prefixed with the program name, a
# distinct exit status, and changes nothing: no message in new/, and for a
# bad queue name not a single file anywhere.  Also --help and --version.

bats_require_minimum_version 1.5.0
load helper

COMMANDS=(mq-send mq-recv mq-ack mq-nack mq-peek)

teardown() {
	if [ -n "${SMALL:-}" ] && mountpoint -q "$SMALL"; then
		umount "$SMALL"
	fi
	common_teardown
}

# bad_queue NAME: mq-send refuses NAME with 64 and touches nothing.
bad_queue() {
	local before
	before=$(snapshot)
	run --separate-stderr -64 mq-send -- "$1" <<<"body"
	check_error mq-send
	[ "$(snapshot)" = "$before" ]
}

@test "queue name .. is refused" { bad_queue ..; }
@test "queue name . is refused" { bad_queue .; }
@test "queue name a/b is refused" { bad_queue a/b; }
@test "queue name /abs is refused" { bad_queue /abs; }
@test "queue name .hidden is refused" { bad_queue .hidden; }
@test "queue name -x is refused" { bad_queue -x; }
@test "an empty queue name is refused" { bad_queue ''; }
@test "queue name 'bad name' is refused" { bad_queue 'bad name'; }
@test "queue name with a newline is refused" { bad_queue $'a\nb'; }
@test "queue name with a non-ASCII byte is refused" { bad_queue $'caf\xc3\xa9'; }

@test "a 65-byte queue name is refused" {
	bad_queue "$(printf 'q%.0s' $(seq 1 65))"
}

# refuses CMD...: CMD exits 64 with a one-line error and touches nothing.
refuses() {
	local before
	before=$(snapshot)
	run --separate-stderr -64 "$@" </dev/null
	check_error "$1"
	[ "$(snapshot)" = "$before" ]
}

@test "every command refuses a bad queue name with 64" {
	local id=01ARZ3NDEKTSV4RRFFQ69G5FAV name
	echo x | mq-send q
	for name in .. a/b .hidden 'bad name'; do
		refuses mq-recv -- "$name"
		refuses mq-peek -- "$name"
		refuses mq-peek -- "$name" "$id"
		refuses mq-ack -- "$name" "$id"
		refuses mq-nack -- "$name" "$id"
	done
}

@test "a queue name starting with - is taken as an option: 64" {
	run --separate-stderr -64 mq-send -x q </dev/null
	[[ ${stderr_lines[0]} == "mq-send: "* ]]
	[ ! -e "$MQ_SPOOL" ]
}

@test "no queue name at all is a usage error" {
	for cmd in "${COMMANDS[@]}"; do
		run -64 "$cmd" </dev/null
		[ -n "$output" ]
	done
}

@test "an unknown option exits 64 for every command" {
	for cmd in "${COMMANDS[@]}"; do
		run --separate-stderr -64 "$cmd" --no-such-option q </dev/null
		[[ ${stderr_lines[0]} == "$cmd: "* ]]
	done
	[ ! -e "$MQ_SPOOL/q/new" ] || [ "$(count q new)" -eq 0 ]
}

@test "a bad number for mq-recv -n or -w exits 64" {
	run --separate-stderr -64 mq-recv -n abc q
	check_error mq-recv
	run --separate-stderr -64 mq-recv -w xyz q
	check_error mq-recv
}

@test "a bad duration for --delay exits 64" {
	run --separate-stderr -64 mq-send --delay soon q <<<"x"
	check_error mq-send
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "a nonexistent FILE exits 66 and writes nothing" {
	run --separate-stderr -66 mq-send q "$BATS_TEST_TMPDIR/missing"
	check_error mq-send
	[[ $stderr == *missing* ]]
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "two FILEs where the second is missing: nothing written at all" {
	echo first >"$BATS_TEST_TMPDIR/a"
	run --separate-stderr -66 mq-send q "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/missing"
	check_error mq-send
	[ "$(messages_anywhere q)" -eq 0 ]
	[ ! -e "$MQ_SPOOL" ] # not even the spool
}

@test "-l with a missing second FILE: nothing written at all" {
	printf '1\n2\n' >"$BATS_TEST_TMPDIR/a"
	run --separate-stderr -66 mq-send -l q "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/missing"
	check_error mq-send
	[ "$(count q new)" -eq 0 ]
}

@test "a directory as FILE is refused and writes nothing" {
	run --separate-stderr mq-send q "$BATS_TEST_TMPDIR"
	[ "$status" -ne 0 ]
	check_error mq-send
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "a message over max-size exits 65 and writes nothing" {
	config q 'max-size = 1K'
	head -c 2048 /dev/zero >"$BATS_TEST_TMPDIR/big"
	run --separate-stderr -65 mq-send q <"$BATS_TEST_TMPDIR/big"
	check_error mq-send
	[ "$(messages_anywhere q)" -eq 0 ]
	# a small one still goes in
	echo small | mq-send q
	[ "$(count q new)" -eq 1 ]
}

@test "a FILE over max-size exits 65 and writes nothing" {
	config q 'max-size = 1K'
	echo small >"$BATS_TEST_TMPDIR/a"
	head -c 4096 /dev/zero >"$BATS_TEST_TMPDIR/big"
	run --separate-stderr -65 mq-send q "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/big"
	check_error mq-send
	[ "$(messages_anywhere q)" -eq 0 ]
}

bad_header() { # HEADER: mq-send -H HEADER exits 64 and writes nothing
	run --separate-stderr -64 mq-send -H "$1" q <<<"x"
	check_error mq-send
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "-H without a colon is refused" { bad_header 'NoColon'; }
@test "-H with a space in the name is refused" { bad_header 'Bad Name: x'; }
@test "-H may not set Id" { bad_header 'Id: x'; }
@test "-H may not set Date" { bad_header 'Date: x'; }
@test "-H may not set Key" { bad_header 'Key: x'; }
@test "-H may not set Dedup-Key or Order-Key" { bad_header 'Dedup-Key: x'; bad_header 'Order-Key: x'; }
@test "-H may not set Expires" { bad_header 'Expires: x'; }
@test "-H may not set a Dead- header" { bad_header 'Dead-Reason: x'; }
@test "-H name must start with a letter" { bad_header '1abc: x'; }
@test "-H with an empty name is refused" { bad_header ': x'; }
@test "-H value with a newline is refused" { bad_header $'X-Foo: a\nb'; }
@test "-H value with a carriage return is refused" { bad_header $'X-Foo: a\rb'; }
@test "-H value with DEL is refused" { bad_header $'X-Foo: a\177b'; }
@test "-H value over 998 bytes is refused" {
	bad_header "X-Foo: $(head -c 999 /dev/zero | tr '\0' v)"
}

@test "-H value of exactly 998 bytes is taken, the blank after the colon not counted" {
	v=$(head -c 998 /dev/zero | tr '\0' v)
	run -0 mq-send -H "X-Foo:   $v" q <<<x
	[ "$(header_of "$(only_file q new)" X-Foo)" = "$v" ]
}

@test "-H name of 65 bytes is refused" {
	bad_header "$(printf 'H%.0s' $(seq 1 65)): x"
}

@test "a bad config value exits 78 naming the file and line" {
	config q '# settings' 'max-attempts = 3' 'lease = abc'
	run --separate-stderr -78 mq-send q <<<"x"
	check_error mq-send
	[[ $stderr == *"q/config:3:"* ]]
	[[ $stderr == *lease* ]]
	[[ $stderr == *abc* ]]
	[ "$(count q new)" -eq 0 ]
}

@test "mq-recv also exits 78 on a bad config value" {
	echo x | mq-send q
	config q 'lease = abc'
	run --separate-stderr -78 mq-recv q
	check_error mq-recv
	[[ $stderr == *"q/config:1:"* ]]
	[ "$(count q new)" -eq 1 ]
}

@test "an unknown config key is a warning, not an error" {
	config q 'no-such-key = 1'
	run --separate-stderr -0 mq-send q <<<"x"
	[[ $stderr == "mq-send: "* ]]
	[ "$(count q new)" -eq 1 ]
}

@test "a disk full during send exits 75 and leaves nothing in new/" {
	small_disk
	head -c 2097152 /dev/urandom >"$BATS_TEST_TMPDIR/big"
	run --separate-stderr -75 mq-send -d "$SMALL" q <"$BATS_TEST_TMPDIR/big"
	check_error mq-send
	[ "$(ls -A "$SMALL/q/new" | wc -l)" -eq 0 ]
	[ "$(ls -A "$SMALL/q/tmp" | wc -l)" -eq 0 ]
	# and the space is usable again afterwards
	echo small | mq-send -d "$SMALL" q
	run -0 mq-recv -d "$SMALL" q
	[ "$output" = small ]
}

@test "--help exits 0 and prints a usage line, for every command" {
	for cmd in "${COMMANDS[@]}"; do
		run -0 "$cmd" --help
		[[ ${output,,} == *usage:*"$cmd"* ]]
		run -0 "$cmd" -h
		[[ ${output,,} == *usage:*"$cmd"* ]]
	done
}

@test "--version exits 0 and prints the version, for every command" {
	for cmd in "${COMMANDS[@]}"; do
		run -0 "$cmd" --version
		[[ $output =~ ^"$cmd (spoolmq) "[0-9]+\.[0-9]+\.[0-9]+$ ]]
	done
}

@test "a queue or spool path that is a file: 73 to create it, 66 to read it, one line each" {
	mq-send q <<<x # a spool, with a queue
	echo not a queue >"$MQ_SPOOL/fileq"
	run --separate-stderr -73 mq-send fileq <<<x
	check_error mq-send
	[[ $stderr == *"not a directory"* ]]
	run --separate-stderr -66 mq-recv fileq
	check_error mq-recv
	echo not a spool >"$BATS_TEST_TMPDIR/plain"
	run --separate-stderr -73 mq-send -d "$BATS_TEST_TMPDIR/plain" q <<<x
	check_error mq-send
	run --separate-stderr -66 mq-peek -d "$BATS_TEST_TMPDIR/plain" q
	check_error mq-peek
	[ "$(cat "$MQ_SPOOL/fileq")" = "not a queue" ]
}

@test "a duration is digits, a fraction and a unit: C's float syntax is refused everywhere" {
	local d
	for d in 0x10 0x1p4 1e3 1E3 inf nan 2.s .5s '1 s'; do
		run --separate-stderr -64 mq-send --delay "$d" q <<<"x"
		check_error mq-send
		run --separate-stderr -64 mq-recv -w "$d" q
		check_error mq-recv
	done
	[ ! -d "$MQ_SPOOL/q/new" ] || [ "$(count q new)" -eq 0 ]
	# in a queue's config and in mq-relayd.conf the same: 78 naming the line
	config q 'lease = 0x10'
	run --separate-stderr -78 mq-send q <<<"x"
	[[ $stderr == *"config"* ]]
	printf 'spool %s\nconsume q true\n\ttimeout 1e3\n' "$MQ_SPOOL" >"$BATS_TEST_TMPDIR/r.conf"
	run --separate-stderr -78 mq-relayd -n -c "$BATS_TEST_TMPDIR/r.conf"
	[[ $stderr == *"r.conf:3:"* ]]
	# what the pages document still reads
	rm "$MQ_SPOOL/q/config"
	for d in 90 30s 250ms 1.5h 5m 7d 2w; do
		run -0 mq-send --delay "$d" q <<<"x"
	done
}

@test "a duration split in two words (--delay 5 minutes) is a usage error that says how to write it" {
	echo x | mq-send q
	local f
	f=$(mq-recv -c q)
	run --separate-stderr -64 mq-nack --delay 5 minutes q "$f"
	check_error mq-nack
	[[ $stderr == *"--delay 5 minutes is read as --delay 5 and queue minutes"*"--delay 5m" ]]
	[ -f "$f" ] # the claim is untouched
	run --separate-stderr -64 mq-send --delay 2 hours q <<<"y"
	check_error mq-send
	[[ $stderr == *"--delay 2h" ]]
	run --separate-stderr -64 mq-recv -w 30 s
	[[ $stderr == *"-w 30s" ]]
	[ ! -e "$MQ_SPOOL/minutes" ] && [ ! -e "$MQ_SPOOL/hours" ] && [ ! -e "$MQ_SPOOL/s" ]
	# a queue of that name that exists is taken at its word
	echo z | mq-send days
	run --separate-stderr -0 mq-recv -w 1 days
	[ "$output" = z ]
}
