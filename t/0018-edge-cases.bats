#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Edges found by reading the code: headers too big to read back, a bad config
# on a queue that does not exist yet, burying a message whose body was read,
# a dedup key too long to be a file name.

bats_require_minimum_version 1.5.0
load helper

@test "mq-send: headers over the limit in all are refused before anything is written" {
	local args=() i v
	v=$(printf 'x%.0s' $(seq 990))
	for i in $(seq 300); do args+=(-H "X-H$i: $v"); done
	run -64 --separate-stderr mq-send "${args[@]}" q </dev/null
	[[ $stderr == "mq-send: headers: "* ]]
	[ ! -e "$MQ_SPOOL/q" ]
}

@test "mq-send: a dedup key too long once encoded is refused before the queue is made" {
	run -64 --separate-stderr mq-send --id "$(printf '/%.0s' $(seq 100))" q </dev/null
	[[ $stderr == "mq-send: --id: key too long"* ]]
	[ ! -e "$MQ_SPOOL/q" ]
}

@test "a bad config refuses the queue without making its subdirectories" {
	config q 'lease = abc'
	run -78 mq-recv q
	[ "$(ls "$MQ_SPOOL/q")" = config ]
}

@test "a message that cannot be written to stdout is given back, and buried past max-attempts" {
	[ -w /dev/full ] || skip "no /dev/full"
	config q 'max-attempts = 1'
	echo hello | mq-send q
	run -74 sh -c 'mq-recv q >/dev/full'
	f=$(only_file q dead)
	[ "$(header_of "$f" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$f" Dead-Status)" = "output failed" ]
	[ "$(body_of "$f")" = hello ]
}
