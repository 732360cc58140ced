#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# QUEUE/.head, the cache of the oldest ready names that spares a one-shot
# consumer the read of a large new/: it must never change what is delivered
# or in which order, whatever state it is in.

bats_require_minimum_version 1.5.0
load helper

# one message at a time, each by a new process, as a cron loop would
recv_each() {
	local i
	for ((i = 0; i < $1; i++)); do mq-recv q || return 1; done
}

@test "a large backlog gets a hint, and one-shot consumers keep FIFO across it" {
	seq 1 3000 | mq-send -l --no-sync q
	run -0 mq-recv q
	[ "$output" = 1 ]
	[ -s "$(qdir q)/.head" ]
	# past the 256 names of the hint and into the next read of new/
	run -0 recv_each 400
	[ "$output" = "$(seq 2 401)" ]
}

@test "messages sent after the hint was written come after the hinted ones, in order" {
	seq 1 3000 | mq-send -l --no-sync q
	run -0 mq-recv q
	seq 3001 3010 | mq-send -l q
	run -0 mq-recv -n 0 q
	[ "$output" = "$(seq 2 3010)" ]
}

@test "a stale or torn hint is harmless" {
	seq 1 3000 | mq-send -l --no-sync q
	run -0 mq-recv q
	mq-recv -n 300 q >/dev/null                # every hinted name is gone now
	printf 'garbage\n1234567890123.NOTANID.0\n' >>"$(qdir q)/.head"
	printf '%s' "$(head -c 20 "$(qdir q)/.head")" >"$(qdir q)/.head.torn"
	run -0 mq-recv q
	[ "$output" = 302 ]
	mv "$(qdir q)/.head.torn" "$(qdir q)/.head"
	run -0 mq-recv q
	[ "$output" = 303 ]
}

@test "a hint removed at any time changes nothing" {
	seq 1 3000 | mq-send -l --no-sync q
	run -0 recv_each 3
	rm "$(qdir q)/.head"
	run -0 recv_each 3
	[ "$output" = "$(seq 4 6)" ]
}

@test "the hint goes away when the backlog is small again" {
	seq 1 2100 | mq-send -l --no-sync q
	run -0 mq-recv q
	[ -e "$(qdir q)/.head" ]
	mq-recv -n 1000 q >/dev/null
	run -0 mq-recv q
	[ ! -e "$(qdir q)/.head" ]
}

@test "a delayed message never enters the hint" {
	seq 1 3000 | mq-send -l --no-sync q
	echo later | mq-send --delay 1h q
	run -0 mq-recv q
	! grep -q "$(ls "$(qdir q)/new" | sort | tail -1)" "$(qdir q)/.head"
	run -0 mq-recv -n 0 q
	[ "$(echo "$output" | tail -1)" = 3000 ]
}
