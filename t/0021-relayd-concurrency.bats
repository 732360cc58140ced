#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-relayd under a burst: a consumer never runs more handlers at once than
# its concurrency, every message is handled and acked exactly once, and
# several daemons (or a daemon and mq-recv -f) on one queue still deliver
# each message once, because claiming is by rename.
#
# The counting handler: each run puts a file named after its message in a
# "running" directory, counts the entries there, records the count, sleeps
# a little, removes its file, and appends its id to a done log.  A file
# exists only while its handler process runs, so the count can only
# under-state how many run at once, never over-state it.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

# counting_handler NAME: the handler script $T/NAME, recording in $T/NAME.*
counting_handler() {
	mkdir -p "$T/$1.running"
	handler "$1" <<EOF
: >"\$T/$1.running/\$MQ_ID"
set -- "\$T/$1.running"/*
echo \$# >>"\$T/$1.counts"
sleep 0.02
rm -f "\$T/$1.running/\$MQ_ID"
echo "\$MQ_ID" >>"\$T/$1.done"
EOF
}

max_of() { sort -n "$1" | tail -n 1; }


@test "relayd: a burst of 200 with concurrency 3 never runs more than 3 at once" {
	counting_handler h
	relayd_conf "consume q $T/h" "	concurrency 3"
	start_relayd
	seq 200 | mq-send -l -i q >"$T/ids"
	[ "$(lines "$T/ids")" -eq 200 ]
	wait_for 60 lines_ge 200 "$T/h.done"
	wait_for 10 queue_empty q
	echo "most at once: $(max_of "$T/h.counts")" >&2
	[ "$(max_of "$T/h.counts")" -le 3 ]
	# and the slots are used: more than one ran at once at some point
	[ "$(max_of "$T/h.counts")" -ge 2 ]
	each_once "$T/ids" "$T/h.done"
	[ "$(lines "$T/h.counts")" -eq 200 ]
	! log_has 'failed|lost|error'
}

@test "relayd: concurrency is per consumer (1 and 2 on two queues of one daemon)" {
	counting_handler a
	counting_handler b
	relayd_conf "consume qa $T/a" \
		"consume qb $T/b" "	concurrency 2"
	start_relayd
	seq 40 | mq-send -l -i qa >"$T/ids.a"
	seq 40 | mq-send -l -i qb >"$T/ids.b"
	wait_for 60 lines_ge 40 "$T/a.done"
	wait_for 60 lines_ge 40 "$T/b.done"
	wait_for 10 queue_empty qa
	wait_for 10 queue_empty qb
	echo "most at once: a $(max_of "$T/a.counts"), b $(max_of "$T/b.counts")" >&2
	[ "$(max_of "$T/a.counts")" -eq 1 ]
	[ "$(max_of "$T/b.counts")" -le 2 ]
	each_once "$T/ids.a" "$T/a.done"
	each_once "$T/ids.b" "$T/b.done"
}

@test "relayd: a burst sent before the start is drained the same way" {
	counting_handler h
	seq 100 | mq-send -l -i q >"$T/ids"
	relayd_conf "consume q $T/h" "	concurrency 3"
	start_relayd
	wait_for 60 lines_ge 100 "$T/h.done"
	wait_for 10 queue_empty q
	[ "$(max_of "$T/h.counts")" -le 3 ]
	each_once "$T/ids" "$T/h.done"
}

@test "relayd: two daemons and an mq-recv -f on one queue deliver each message once" {
	handler h <<'EOF'
echo "$MQ_ID" >>"$T/done"
EOF
	relayd_conf "consume q $T/h" "	concurrency 2"
	start_relayd
	start_relayd
	spawn mq-recv -f -x "$T/h" q </dev/null
	wait_for 10 has_inotify "$BG_PID"
	seq 300 | mq-send -l -i q >"$T/ids"
	wait_for 60 lines_ge 300 "$T/done"
	wait_for 10 queue_empty q
	each_once "$T/ids" "$T/done"
	# and nobody saw a claim fail other than by losing the race
	! log_has 'failed|lost|error'
}
