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

# Found by fuzzing the library (fuzz/).

@test "stray files whose names only look like messages are left alone by every command" {
	echo real | mq-send q
	local id n
	id=$(name_id "$(only_file q new)")
	n=$(basename "$(only_file q new)")
	# short, non-canonical attempts, a zero expiry, junk after the last field
	for s in 1795298656123. 1795298656123.txt "1795298656123.$id.00" \
		"1795298656123.$id.01" "1795298656123.$id.12345678" \
		"1795298656123.$id.0.0000000000000" "$n.bak" "1795298656123.${id}X.0"; do
		echo stray >"$(qdir q)/new/$s"
		echo stray >"$(qdir q)/cur/$s"
	done
	before=$(ls "$(qdir q)/new" "$(qdir q)/cur")
	run -0 mq-recv -n 0 q
	[ "$output" = real ]
	run -1 mq-recv q
	run -0 mq-stat --json q
	[[ $output == *'"ready": 0'* ]]
	[[ $output == *'"in_flight": 0'* ]]
	# all still there, untouched (only the real message is gone)
	[ "$(ls "$(qdir q)/new" "$(qdir q)/cur")" = "$(printf '%s\n' "$before" | grep -v "^$n\$")" ]
}

@test "unlimited attempts stop counting at 1000000, the most a name holds" {
	config q 'max-attempts = 0' 'backoff = 0'
	echo x | mq-send q
	f=$(only_file q new)
	mv "$f" "$(qdir q)/new/$(name_time "$f").$(name_id "$f").1000000"
	run -0 mq-recv -c q
	[ "$(name_attempts "$output")" -eq 1000000 ]
	run -0 mq-nack q "$output"
	run -0 mq-recv -x 'echo "$MQ_ATTEMPT"; cat' q
	[ "$output" = "1000000
x" ]
}

@test "config: a line of any length, a comment after a value" {
	config q "# $(printf 'x%.0s' $(seq 3000))" 'lease = 2m   # slow jobs' 'max-attempts = 2 # few'
	run -0 mq-send q <<<x
	run -0 mq-recv -c q
	# the lease given is 2 minutes
	[ "$(name_time "$output")" -gt "$(($(now_ms) + 100000))" ]
	[ "$(name_time "$output")" -le "$(($(now_ms) + 120000))" ]
}

@test "config: durations too long for a name exit 78" {
	config q 'backoff = 5000000000000000..9000000000000000'
	run --separate-stderr -78 mq-send q </dev/null
	[[ $stderr == *"config:1:"*backoff* ]]
	rm "$(qdir q)/config"
	config q 'lease = 20000w'
	run --separate-stderr -78 mq-send q </dev/null
	[[ $stderr == *"config:1:"*lease* ]]
}
