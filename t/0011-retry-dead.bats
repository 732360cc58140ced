#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Retries and dead letters (issue 3): failed -x runs and mq-nack go back with
# backoff and attempt + 1; past max-attempts the message goes to dead/ with
# headers saying why; exit 65/100 and mq-nack --dead bury at once.  A dead
# letter keeps the message byte for byte under its Dead-* headers.

bats_require_minimum_version 1.5.0
load helper

# dead_headers FILE: the Dead-* lines at the top of FILE.
dead_headers() {
	sed -n '/^Dead-/!q; p' "$1"
}

@test "poison message: dead/ after exactly max-attempts runs, with the reason" {
	local T=$BATS_TEST_TMPDIR i
	config q 'max-attempts = 3' 'backoff = 0'
	printf 'poison\nsecond line\n' | mq-send -H 'X-Kind: test' q
	: >"$T/runs"
	for i in $(seq 1 20); do
		[ "$(count q dead)" -eq 1 ] && break
		rc=0
		mq-recv -n 0 -x "echo \"\$MQ_ATTEMPT\" >>'$T/runs'; exit 3" q 2>>"$T/err" || rc=$?
		[ "$rc" -eq 75 ] || [ "$rc" -eq 1 ]
	done
	d=$(only_file q dead)
	# exactly three runs, numbered 1, 2, 3
	[ "$(tr '\n' ' ' <"$T/runs")" = "1 2 3 " ]
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
	[ "$(name_attempts "$d")" -eq 3 ]
	[ "$(sed -n 1p "$d")" = "Dead-Reason: max attempts" ]
	[ "$(header_of "$d" Dead-Attempts)" = 3 ]
	[ "$(header_of "$d" Dead-Status)" = "exit 3" ]
	[[ $(header_of "$d" Dead-Date) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ ]]
	# the message itself is intact below the Dead-* headers
	[ "$(header_of "$d" X-Kind)" = test ]
	[ "$(header_of "$d" Id)" = "$(name_id "$d")" ]
	body_of "$d" | cmp - <(printf 'poison\nsecond line\n')
	# no more runs: nothing is delivered any more
	run -1 mq-recv -x "echo again >>'$T/runs'" q
	[ "$(wc -l <"$T/runs")" -eq 3 ]
}

@test "the dead letter's headers come first, then the original file byte for byte" {
	config q 'max-attempts = 1' 'backoff = 0'
	head -c 3000 /dev/urandom >"$BATS_TEST_TMPDIR/bin"
	mq-send q "$BATS_TEST_TMPDIR/bin"
	orig=$(only_file q new)
	cp "$orig" "$BATS_TEST_TMPDIR/orig"
	run -75 mq-recv -x 'exit 7' q
	d=$(only_file q dead)
	n=$(dead_headers "$d" | wc -c)
	tail -c +$((n + 1)) "$d" | cmp - "$BATS_TEST_TMPDIR/orig"
	[ "$(dead_headers "$d" | cut -d: -f1 | tr '\n' ' ')" = \
		"Dead-Reason Dead-Date Dead-Attempts Dead-Status " ]
	[ "$(header_of "$d" Dead-Status)" = "exit 7" ]
}

@test "handler exit 65 buries at once: handler said bury, exit 65" {
	local T=$BATS_TEST_TMPDIR
	config q 'max-attempts = 5' 'backoff = 0'
	echo bad | mq-send q
	run -75 mq-recv -x "echo run >>'$T/runs'; exit 65" q
	d=$(only_file q dead)
	[ "$(wc -l <"$T/runs")" -eq 1 ]
	[[ $(sed -n 1p "$d") == "Dead-Reason: handler said bury"* ]]
	[ "$(header_of "$d" Dead-Status)" = "exit 65" ]
	[ "$(header_of "$d" Dead-Attempts)" = 1 ]
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
}

@test "handler exit 100 buries at once too" {
	config q 'backoff = 0'
	echo bad | mq-send q
	run -75 mq-recv -x 'exit 100' q
	d=$(only_file q dead)
	[[ $(header_of "$d" Dead-Reason) == "handler said bury"* ]]
	[ "$(header_of "$d" Dead-Status)" = "exit 100" ]
}

@test "handler failure retries later with backoff and attempt + 1" {
	config q 'backoff = 10s'
	id=$(echo x | mq-send -i q)
	t0=$(now_ms)
	run -75 mq-recv -x 'exit 3' q
	n=$(only_file q new)
	[ "$(name_id "$n")" = "$id" ]
	[ "$(name_attempts "$n")" -eq 1 ]
	[ "$(name_time "$n")" -ge $((t0 + 5000)) ]
	[ "$(name_time "$n")" -le $(($(now_ms) + 10000)) ]
	# not due yet
	run -1 mq-recv q
	[ "$(count q dead)" -eq 0 ]
}

@test "handler exit 75 and 111 retry (not bury)" {
	config q 'backoff = 0' 'max-attempts = 5'
	echo x | mq-send q
	run -75 mq-recv -x 'exit 75' q
	[ "$(name_attempts "$(only_file q new)")" -eq 1 ]
	run -75 mq-recv -x 'exit 111' q
	[ "$(name_attempts "$(only_file q new)")" -eq 2 ]
	[ "$(count q dead)" -eq 0 ]
}

@test "a handler killed by a signal counts as a failure: Dead-Status signal 9" {
	config q 'max-attempts = 1' 'backoff = 0'
	echo x | mq-send q
	run -75 mq-recv -x 'kill -9 $$' q
	d=$(only_file q dead)
	[ "$(header_of "$d" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$d" Dead-Status)" = "signal 9" ]
}

@test "mq-nack gives back with attempt + 1; the next claim is delivery 2" {
	local T=$BATS_TEST_TMPDIR
	config q 'backoff = 0'
	id=$(echo x | mq-send -i q)
	p=$(mq-recv -c q)
	run -0 mq-nack q "$p"
	n=$(only_file q new)
	[ "$(name_attempts "$n")" -eq 1 ]
	[ "$(name_id "$n")" = "$id" ]
	run -0 mq-recv -x "echo \"\$MQ_ATTEMPT\" >'$T/attempt'" q
	[ "$(cat "$T/attempt")" = 2 ]
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-nack uses the queue's backoff when no --delay is given" {
	config q 'backoff = 20s'
	echo x | mq-send q
	p=$(mq-recv -c q)
	t0=$(now_ms)
	mq-nack q "$p"
	n=$(only_file q new)
	[ "$(name_time "$n")" -ge $((t0 + 10000)) ]
	[ "$(name_time "$n")" -le $(($(now_ms) + 20000)) ]
	run -1 mq-recv q
}

@test "backoff grows exponentially per attempt up to its cap" {
	config q 'backoff = 10s..25s'
	echo x | mq-send q
	# attempt 1 back at once (--delay 0), so attempt 2 and 3 use the backoff
	mq-nack --delay 0 q "$(mq-recv -c q)"
	p=$(mq-recv -c q)
	[ "$(name_attempts "$p")" -eq 2 ]
	t0=$(now_ms)
	mq-nack q "$p"
	n=$(only_file q new)
	# attempt 2: 20 s, with equal jitter 10..20 s
	[ "$(name_time "$n")" -ge $((t0 + 10000)) ]
	[ "$(name_time "$n")" -le $(($(now_ms) + 20000)) ]
	# an operator makes it due now (the due time is only the name)
	mv "$n" "$(qdir q)/new/$(now_ms).$(name_id "$n").$(name_attempts "$n")"
	p=$(mq-recv -c q)
	[ "$(name_attempts "$p")" -eq 3 ]
	t0=$(now_ms)
	mq-nack q "$p"
	n=$(only_file q new)
	# attempt 3: 40 s capped to 25 s: 12.5..25 s
	[ "$(name_time "$n")" -ge $((t0 + 12500)) ]
	[ "$(name_time "$n")" -le $(($(now_ms) + 25000)) ]
}

@test "mq-nack --delay puts the message back for that long" {
	config q 'backoff = 0'
	echo x | mq-send q
	p=$(mq-recv -c q)
	t0=$(now_ms)
	run -0 mq-nack --delay 1h q "$p"
	n=$(only_file q new)
	[ "$(name_time "$n")" -ge $((t0 + 3600000)) ]
	[ "$(name_time "$n")" -le $(($(now_ms) + 3600000)) ]
	[ "$(name_attempts "$n")" -eq 1 ]
	run -1 mq-recv q
}

@test "mq-nack --delay 500ms: mq-recv -w gets it when due" {
	echo later | mq-send q
	p=$(mq-recv -c q)
	mq-nack --delay 500ms q "$p"
	due=$(name_time "$(only_file q new)")
	run -1 mq-recv q
	run -0 mq-recv -w 10 q
	[ "$output" = later ]
	[ "$(now_ms)" -ge "$due" ]
}

@test "mq-nack --dead REASON buries at once with that reason" {
	config q 'max-attempts = 5'
	printf 'payload' | mq-send q
	p=$(mq-recv -c q)
	run -0 mq-nack --dead 'schema v1 not supported' q "$p"
	d=$(only_file q dead)
	[ "$(sed -n 1p "$d")" = "Dead-Reason: schema v1 not supported" ]
	[ "$(header_of "$d" Dead-Attempts)" = 1 ]
	[ "$(body_of "$d")" = payload ]
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
	run -1 mq-recv q
	# mq-peek shows the reason
	run -0 mq-peek q
	[[ $output == dead*"schema v1 not supported"* ]]
}

@test "mq-nack --dead of a lost lease exits 2 and buries nothing" {
	echo x | mq-send q
	p=$(mq-recv -c q)
	mq-ack q "$p"
	run --separate-stderr -2 mq-nack --dead why q "$p"
	check_error mq-nack
	[ "$(count q dead)" -eq 0 ]
}

@test "mq-nack past max-attempts buries with reason max attempts" {
	config q 'max-attempts = 2' 'backoff = 0'
	echo x | mq-send q
	mq-nack q "$(mq-recv -c q)"
	[ "$(count q new)" -eq 1 ]
	p=$(mq-recv -c q)
	[ "$(name_attempts "$p")" -eq 2 ]
	run --separate-stderr -0 mq-nack q "$p"
	[[ $stderr == *"dead/"* ]]
	d=$(only_file q dead)
	[ "$(header_of "$d" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$d" Dead-Attempts)" = 2 ]
	[ "$(count q new)" -eq 0 ]
}

@test "max-attempts = 0 retries without limit" {
	config q 'max-attempts = 0' 'backoff = 0'
	echo x | mq-send q
	for i in 1 2 3 4 5 6 7; do
		run -75 mq-recv -x 'exit 1' q
	done
	n=$(only_file q new)
	[ "$(name_attempts "$n")" -eq 7 ]
	[ "$(count q dead)" -eq 0 ]
}

@test "the default max-attempts is 5" {
	config q 'backoff = 0'
	echo x | mq-send q
	for i in 1 2 3 4; do
		run -75 mq-recv -x 'exit 1' q
		[ "$(count q new)" -eq 1 ]
	done
	run -75 mq-recv -x 'exit 1' q
	d=$(only_file q dead)
	[ "$(header_of "$d" Dead-Attempts)" = 5 ]
}

@test "bad config values exit 78 naming the file and line" {
	config q '# settings' 'lease = 1m' 'max-attempts = lots'
	run --separate-stderr -78 mq-send q </dev/null
	check_error mq-send
	[[ $stderr == *"/q/config:3:"*"max-attempts"*"lots"* ]]
	run --separate-stderr -78 mq-recv q
	check_error mq-recv
}

@test "a bad backoff value exits 78" {
	config q 'backoff = 1h..1s'
	run --separate-stderr -78 mq-send q </dev/null
	[[ $stderr == *"config:1:"*backoff* ]]
}

@test "an unknown config key warns and is ignored" {
	config q 'colour = blue' 'lease = 1m'
	run --separate-stderr -0 mq-send q <<<x
	[[ $stderr == *"config:1"*colour* ]]
	[ "$(count q new)" -eq 1 ]
}
