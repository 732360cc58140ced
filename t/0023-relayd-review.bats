#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# mq-relayd cases found by reading the code: a handler that completes its
# work on SIGTERM, two consumers of one queue, a hint left by a consumer.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

@test "relayd: a handler that finishes on SIGTERM at shutdown is acked, not given back" {
	# inline, so that the shell that handles TERM is the handler mq-relayd waits for
	relayd_conf "stop-timeout 1s" "kill-grace 5s" \
		"consume q trap 'echo \$MQ_ID >>$T/done; exit 0' TERM; echo started >>$T/started; sleep 30 & wait"
	start_relayd
	echo one | mq-send q
	wait_for 10 lines_ge 1 "$T/started"
	stop_relayd 15
	[ "$WAIT_STATUS" -eq 0 ]
	[ "$(lines "$T/done")" -eq 1 ]
	queue_empty q
}

@test "relayd: two consumers of one queue both hear of arrivals" {
	handler h <<'EOF'
echo "$MQ_ID" >>"$T/started"
sleep 1
EOF
	relayd_conf "consume q $T/h" "consume q $T/h --second"
	start_relayd
	t0=$(now_ms)
	echo a | mq-send q
	wait_for 10 lines_ge 1 "$T/started"
	echo b | mq-send q
	# the second consumer is free: it must not wait for the first or a rescan
	wait_for 10 lines_ge 2 "$T/started"
	t1=$(now_ms)
	[ "$((t1 - t0))" -lt 900 ]
}

@test "relayd: a head hint left by a one-shot consumer does not stall it behind a delayed message" {
	seq 1 3000 | mq-send -l --no-sync q
	run -0 mq-recv q                               # reads new/, leaves QUEUE/.head
	[ -s "$(qdir q)/.head" ]
	config q 'backoff = 1h'
	relayd_conf "consume q exit 3"
	start_relayd
	# 2999 messages, each retried an hour later: all must run once, soon
	all_tried() {
		[ "$(count q new)" -eq 2999 ] &&
			[ "$(ls "$(qdir q)/new" | cut -d. -f3 | sort -u)" = 1 ]
	}
	wait_for 60 all_tried
}
