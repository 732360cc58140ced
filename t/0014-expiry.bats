#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Expiry (issue 3): mq-send --ttl DUR and the queue's retention (counted
# from the due time).  An expired message is never delivered late and never
# lost without trace: it goes to dead/ with Dead-Reason: expired, whether
# mq-recv or mq-stat finds it first.

bats_require_minimum_version 1.5.0
load helper

@test "--ttl puts the expiry in the name and an Expires header" {
	t0=$(now_ms)
	echo x | mq-send --ttl 1h q
	t1=$(now_ms)
	n=$(only_file q new)
	is_msg_name "$n"
	e=$(basename "$n" | cut -d. -f4)
	[ "$e" -ge $((t0 + 3600000)) ]
	[ "$e" -le $((t1 + 3600000)) ]
	[[ $(header_of "$n" Expires) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ ]]
	# not expired: delivered as usual, and the claim keeps the expiry
	p=$(mq-recv -c q)
	[ "$(basename "$p" | cut -d. -f4)" = "$e" ]
	mq-ack q "$p"
}

@test "an expired message is never delivered: mq-recv buries it (expired) and exits 1" {
	printf 'too late\n' | mq-send --ttl 200ms q
	e=$(basename "$(only_file q new)" | cut -d. -f4)
	wait_for 5 time_past "$e"
	run --separate-stderr -1 mq-recv q
	[ -z "$output" ]
	d=$(only_file q dead)
	[ "$(sed -n 1p "$d")" = "Dead-Reason: expired" ]
	[ -n "$(header_of "$d" Expires)" ]
	body_of "$d" | cmp - <(printf 'too late\n')
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
}

@test "mq-recv -x and -n 0 skip expired messages and deliver the rest in order" {
	local T=$BATS_TEST_TMPDIR
	echo a | mq-send --ttl 200ms q
	next_ms
	echo b | mq-send q
	next_ms
	echo c | mq-send --ttl 200ms q
	next_ms
	echo d | mq-send q
	wait_for 5 time_past $(($(now_ms) + 250))
	run -0 mq-recv -x "cat >>'$T/got'" q
	[ "$(cat "$T/got")" = b ]
	run -0 mq-recv -n 0 q
	[ "$output" = d ]
	[ "$(count q dead)" -eq 2 ]
	for f in $(files q dead); do
		[ "$(header_of "$f" Dead-Reason)" = expired ]
	done
}

@test "mq-recv -w does not wait for and deliver an expired message" {
	echo old | mq-send --ttl 100ms q
	wait_for 5 time_past $(($(now_ms) + 150))
	run -1 mq-recv -w 300ms q
	[ -z "$output" ]
	[ "$(count q dead)" -eq 1 ]
}

@test "queue retention expires messages without a ttl" {
	config q 'retention = 300ms'
	echo x | mq-send q
	t=$(name_time "$(only_file q new)")
	wait_for 5 time_past $((t + 300))
	run -1 mq-recv q
	d=$(only_file q dead)
	[ "$(header_of "$d" Dead-Reason)" = expired ]
	[ "$(count q new)" -eq 0 ]
}

@test "retention is counted from the due time, not the send time" {
	config q 'retention = 1s'
	echo delayed | mq-send --delay 1200ms q
	# sent more than retention ago by the time it is due, yet delivered
	run -0 mq-recv -w 10 q
	[ "$output" = delayed ]
	[ "$(count q dead)" -eq 0 ]
}

@test "a message younger than its retention is delivered" {
	config q 'retention = 1h'
	echo fresh | mq-send q
	run -0 mq-recv q
	[ "$output" = fresh ]
}

@test "mq-stat --repair buries expired messages nobody came for, and says so" {
	echo x | mq-send --ttl 200ms q
	echo y | mq-send q
	e=$(basename "$(files q new | grep '\.[0-9]*\.[0-9]\{13\}$')" | cut -d. -f4)
	wait_for 5 time_past "$e"
	run -0 mq-stat q
	[[ $output != *repaired* ]] # only looking: nothing moved
	[ "$(count q new)" -eq 2 ]
	run -0 mq-stat --repair q
	[[ $output == *"repaired q: 1 expired messages moved to dead/"* ]]
	[ "$(header_of "$(only_file q dead)" Dead-Reason)" = expired ]
	[ "$(count q new)" -eq 1 ]
	run -0 mq-stat --json q
	[ "$(python3 -c 'import json, sys; d = json.load(sys.stdin)[0]; print(d["dead"], d["ready"])' <<<"$output")" = "1 1" ]
}

@test "a message that expires while claimed is not redelivered after its lease" {
	config q 'lease = 200ms' 'backoff = 0'
	echo x | mq-send --ttl 400ms q
	p=$(mq-recv -c q)
	e=$(basename "$p" | cut -d. -f4)
	wait_for 5 time_past "$e"
	run -1 mq-recv q
	[ -z "$output" ]
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q new)" -eq 0 ]
	[ "$(header_of "$(only_file q dead)" Dead-Reason)" = expired ]
	run -2 mq-ack q "$p"
}

@test "--ttl 0 and a bad ttl exit 64" {
	run --separate-stderr -64 mq-send --ttl 0 q <<<x
	check_error mq-send
	run --separate-stderr -64 mq-send --ttl forever q <<<x
	check_error mq-send
}

@test "a bad retention value exits 78" {
	config q 'retention = a while'
	run --separate-stderr -78 mq-send q <<<x
	[[ $stderr == *"config:1: bad value for retention"* ]]
}
