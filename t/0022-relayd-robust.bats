#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-relayd where incron and systemd .path units go wrong: an inotify queue
# overflow loses nothing; a queue directory removed (or replaced) is watched
# again; a failing handler backs off instead of spinning; a hung handler is
# killed at its timeout (TERM, then KILL); SIGHUP reloads without losing or
# duplicating work; SIGTERM mid-burst gives back what it did not start and
# duplicates nothing; kill -9 mid-burst and a restart deliver everything
# (at least once, redeliveries counted in MQ_ATTEMPT).

bats_require_minimum_version 1.5.0
load helper
load relayd_helper


ids_in() { # Q STATE: the ids of the message files of a state directory
	local f
	for f in $(files "$1" "$2"); do
		name_id "$f"
	done
}

no_handlers() { [ -z "$(handler_pids)" ]; }

# ---- IN_Q_OVERFLOW ----

@test "relayd: an inotify queue overflow loses nothing (2000 messages, queue of 16 events)" {
	lower_max_queued 16
	handler h <<'EOF'
echo "$MQ_ID" >>"$T/done"
EOF
	relayd_conf "consume q $T/h" "	concurrency 4"
	start_relayd
	restore_max_queued # the daemon's inotify instance keeps its 16
	# Stopped, the daemon cannot read events while the flood comes in: the
	# kernel's queue surely overflows (it may well anyway, but surely now).
	kill -STOP "$RELAYD_PID"
	seq 2000 | mq-send -l -i q >"$T/ids"
	kill -CONT "$RELAYD_PID"
	wait_for 60 lines_ge 2000 "$T/done"
	wait_for 10 queue_empty q
	log_has 'overflow'
	each_once "$T/ids" "$T/done"
}

@test "relayd: a flood while the daemon runs loses nothing" {
	handler h <<'EOF'
echo "$MQ_ID" >>"$T/done"
EOF
	relayd_conf "consume q $T/h" "	concurrency 4"
	start_relayd
	seq 500 | mq-send -l -i q >"$T/ids"
	wait_for 60 lines_ge 500 "$T/done"
	wait_for 10 queue_empty q
	each_once "$T/ids" "$T/done"
}

@test "relayd: after an overflow, a queue waiting for a delayed message still sees new arrivals" {
	lower_max_queued 16
	handler h <<'EOF'
echo "$MQ_QUEUE $MQ_ID" >>"$T/done"
EOF
	relayd_conf "consume qa $T/h" "consume qb $T/h" "	concurrency 4"
	start_relayd
	restore_max_queued
	# qa's consumer now sleeps until its delayed message is due in an hour
	echo later | mq-send --delay 1h qa
	echo now | mq-send qb
	wait_for 10 lines_ge 1 "$T/done"
	kill -STOP "$RELAYD_PID"
	seq 100 | mq-send -l qb # overflows the 16 events
	id=$(echo urgent | mq-send -i qa) # its event is dropped by the kernel
	kill -CONT "$RELAYD_PID"
	wait_for 20 lines_ge 101 "$T/done"
	wait_for 10 log_has overflow
	# Only inotify said qa had something new, and that event was lost:
	# the overflow must make qa look again, not wait for the hour (or
	# the 60 s safety rescan).
	wait_for 5 grep -q "^qa $id\$" "$T/done"
}

# ---- the queue directory goes away ----

# remove_queue Q: rm -rf the queue directory; should anything re-create it
# at the same moment (rmdir then fails with ENOTEMPTY), try again.
remove_queue() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		rm -rf "$MQ_SPOOL/$1" 2>/dev/null && return 0
		sleep 0.1
	done
	rm -rf "$MQ_SPOOL/$1"
}

# sent_and_handled N BOUND: send one more message to q, which must be the
# Nth line of $T/got within BOUND seconds.
sent_and_handled() {
	local id t0 t1
	t0=$(now_ms)
	id=$(echo "$1" | mq-send -i q)
	wait_for "$2" lines_ge "$1" "$T/got"
	t1=$(now_ms)
	echo "message $1 handled in $((t1 - t0)) ms" >&2
	[ "$(sed -n "$1p" "$T/got")" = "$id" ]
}

@test "relayd: a queue directory removed and re-created is watched again" {
	relayd_conf "consume q echo \$MQ_ID >>'$T/got'"
	start_relayd
	sent_and_handled 1 10
	local i
	for i in 2 3 4; do
		remove_queue q
		# re-created by this mq-send; the daemon looks for it again every
		# second: within that and slack for a loaded machine, not at the
		# 60 s safety rescan
		sent_and_handled "$i" 5
	done
	# and it is an inotify watch again: the next one is fast
	sent_and_handled 5 2
	log_has 'q: .*(went away|removed|gone|replaced)'
	kill -0 "$RELAYD_PID"
	[ "$(sort "$T/got" | uniq -d)" = "" ]
}

@test "relayd: a queue directory moved away and re-created is served again" {
	relayd_conf "consume q echo \$MQ_ID >>'$T/got'"
	start_relayd
	echo one | mq-send q
	wait_for 10 lines_ge 1 "$T/got"
	# An operator replaces the queue: the old one moved aside, a new one
	# made by the next mq-send.  new/ itself was not moved, so no event
	# comes from its watch.
	mv "$MQ_SPOOL/q" "$T/q.old"
	id=$(echo two | mq-send -i q)
	wait_for 5 lines_ge 2 "$T/got"
	[ "$(sed -n 2p "$T/got")" = "$id" ]
}

# ---- a failing handler backs off ----

@test "relayd: a failing handler backs off rather than spinning" {
	handler h <<'EOF'
echo "$(date +%s%3N) $MQ_ATTEMPT" >>"$T/runs"
exit 1
EOF
	relayd_conf "consume q $T/h" "	backoff 1s..1s" "	max-attempts 0"
	start_relayd
	echo x | mq-send q
	wait_for 10 lines_ge 1 "$T/runs"
	local cpu0
	cpu0=$(cpu_ticks "$RELAYD_PID")
	# The one fixed wait: counting runs needs a window of time.
	sleep 2.5
	local n
	n=$(lines "$T/runs")
	echo "runs in 2.5 s: $n; daemon CPU: $(($(cpu_ticks "$RELAYD_PID") - cpu0)) ticks" >&2
	cat "$T/runs" >&2
	# backoff 1s with equal jitter: between 0.5 and 1 s apart
	[ "$n" -ge 2 ]
	[ "$n" -le 6 ]
	awk 'NR > 1 && $1 - prev < 450 { print "runs " prev " and " $1 " too close"; bad = 1 }
	     { prev = $1 } END { exit bad }' "$T/runs" >&2
	# attempts are counted
	awk '$2 != NR { exit 1 }' "$T/runs"
	# and the daemon itself did not busy-loop meanwhile (a tick is 10 ms)
	[ "$(($(cpu_ticks "$RELAYD_PID") - cpu0))" -lt 50 ]
	log_has 'handler failed \(attempt 2\): exit 1'
}

# ---- a hung handler ----

@test "relayd: a hung handler is killed at its timeout and dead-lettered past max-attempts" {
	handler h <<'EOF'
sleep 100 &
echo $! >"$T/sleep.pid"
wait
EOF
	relayd_conf "kill-grace 1s" "consume q $T/h" "	timeout 1s" "	max-attempts 1"
	start_relayd
	local t0 t1
	t0=$(now_ms)
	echo x | mq-send q
	wait_for 10 count_is 1 q dead
	t1=$(now_ms)
	echo "dead after $((t1 - t0)) ms" >&2
	[ "$((t1 - t0))" -ge 1000 ]
	[ "$((t1 - t0))" -lt 6000 ]
	f=$(only_file q dead)
	[ "$(header_of "$f" Dead-Status)" = timeout ]
	[ "$(header_of "$f" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$f" Dead-Attempts)" = 1 ]
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
	# the handler's child went too (TERM went to its process group)
	wait_for 5 pid_gone "$(cat "$T/sleep.pid")"
	log_has 'q: [0-9A-Z]{26}: handler timed out: sending TERM'
}

@test "relayd: a handler that ignores TERM is killed after kill-grace and retried as attempt 2" {
	handler h <<'EOF'
echo "$(date +%s%3N) $MQ_ATTEMPT" >>"$T/runs"
if [ "$MQ_ATTEMPT" = 1 ]; then
	trap '' TERM
	sleep 100 &
	echo $! >"$T/sleep.pid"
	while :; do wait; done
fi
EOF
	# exec: the script that ignores TERM is the handler process itself
	relayd_conf "kill-grace 1s" "consume q exec $T/h" "	timeout 1s" "	max-attempts 3" "	backoff 0"
	start_relayd
	echo x | mq-send q
	wait_for 15 lines_ge 2 "$T/runs"
	wait_for 5 queue_empty q
	cat "$T/runs" >&2
	[ "$(cut -d' ' -f2 "$T/runs" | tr '\n' ' ')" = "1 2 " ]
	# timeout (1 s) + kill-grace (1 s) between the two starts
	local t1 t2
	t1=$(sed -n '1s/ .*//p' "$T/runs")
	t2=$(sed -n '2s/ .*//p' "$T/runs")
	# (t1 is taken a moment after the handler started; TERM alone would
	# have ended it at about 1000 ms)
	[ "$((t2 - t1))" -ge 1500 ]
	[ "$((t2 - t1))" -lt 8000 ]
	wait_for 5 pid_gone "$(cat "$T/sleep.pid")"
	log_has 'handler failed \(attempt 1\): timeout'
}

@test "relayd: no process of a timed-out handler outlives kill-grace" {
	# The handler's shell dies of TERM at once, but a child of it ignores
	# TERM: it is in the handler's process group, so KILL must reach it
	# after kill-grace, or it goes on working on a message that is being
	# retried meanwhile.
	handler h <<'EOF'
echo "$MQ_ATTEMPT" >>"$T/runs"
[ "$MQ_ATTEMPT" = 1 ] || exit 0
sh -c 'trap "" TERM; echo $$ >"$0/child.pid"; sleep 100' "$T"
EOF
	relayd_conf "kill-grace 1s" "consume q $T/h" "	timeout 1s" "	max-attempts 3" "	backoff 0"
	start_relayd
	echo x | mq-send q
	wait_for 10 test -s "$T/child.pid"
	wait_for 10 lines_ge 2 "$T/runs"
	wait_for 10 queue_empty q
	# timeout 1 s + kill-grace 1 s, and slack
	wait_for 5 pid_gone "$(cat "$T/child.pid")"
}

# ---- SIGHUP ----

# The "a" handler runs until $T/release exists.
slow_a_handler() {
	handler a <<'EOF'
echo "$MQ_ID" >>"$T/a.started"
echo $$ >"$T/a.pid.$MQ_ID"
while [ ! -e "$T/release" ]; do sleep 0.05; done
echo "$MQ_ID" >>"$T/a.done"
EOF
	handler b <<'EOF'
echo "$MQ_ID" >>"$T/b.done"
EOF
}

@test "relayd: SIGHUP with a new consume line serves the new queue, keeps the running handler" {
	slow_a_handler
	relayd_conf "consume a exec $T/a"
	start_relayd
	a1=$(echo a1 | mq-send -i a)
	wait_for 10 lines_ge 1 "$T/a.started"
	pid=$(cat "$T/a.pid.$a1")

	relayd_conf "consume a exec $T/a" "consume b exec $T/b"
	kill -HUP "$RELAYD_PID"
	wait_for 10 log_has "reloaded $RELAYD_CONF: 2 consumers"
	a2=$(echo a2 | mq-send -i a)
	b1=$(echo b1 | mq-send -i b)
	wait_for 10 lines_ge 1 "$T/b.done"
	[ "$(cat "$T/b.done")" = "$b1" ]

	# The unchanged consumer's handler was neither killed nor started again,
	# and its slot is still taken (concurrency 1): a2 waits.
	kill -0 "$pid"
	[ "$(cat "$T/a.started")" = "$a1" ]
	[ "$(count a cur)" -eq 1 ]
	[ "$(count a new)" -eq 1 ]

	touch "$T/release"
	wait_for 10 lines_ge 2 "$T/a.done"
	wait_for 10 queue_empty a
	wait_for 10 queue_empty b
	[ "$(cat "$T/a.done" | tr '\n' ' ')" = "$a1 $a2 " ]
	[ "$(cat "$T/a.started" | tr '\n' ' ')" = "$a1 $a2 " ]
	! log_has 'failed|lost|stopped'
	kill -0 "$RELAYD_PID"
}

@test "relayd: SIGHUP raising a consumer's concurrency applies to it at once, its handler runs on" {
	slow_a_handler
	relayd_conf "consume a exec $T/a"
	start_relayd
	a1=$(echo a1 | mq-send -i a)
	wait_for 10 lines_ge 1 "$T/a.started"
	pid=$(cat "$T/a.pid.$a1")
	a2=$(echo a2 | mq-send -i a)
	wait_for 10 count_is 1 a new # a2 waits for the one slot

	relayd_conf "consume a exec $T/a" "	concurrency 2"
	kill -HUP "$RELAYD_PID"
	wait_for 10 lines_ge 2 "$T/a.started"
	[ "$(cat "$T/a.started" | tr '\n' ' ')" = "$a1 $a2 " ]
	kill -0 "$pid"
	[ "$(count a cur)" -eq 2 ]
	touch "$T/release"
	wait_for 10 lines_ge 2 "$T/a.done"
	wait_for 10 queue_empty a
	[ -z "$(sort "$T/a.done" | uniq -d)" ]
}

@test "relayd: SIGHUP dropping a consumer lets its running handler finish and ack; its queue is no longer served" {
	slow_a_handler
	relayd_conf "consume a exec $T/a" "consume b exec $T/b"
	start_relayd
	a1=$(echo a1 | mq-send -i a)
	wait_for 10 lines_ge 1 "$T/a.started"

	relayd_conf "consume b exec $T/b"
	kill -HUP "$RELAYD_PID"
	wait_for 10 log_has "reloaded $RELAYD_CONF: 1 consumers"
	a2=$(echo a2 | mq-send -i a)
	touch "$T/release"
	wait_for 10 lines_ge 1 "$T/a.done"
	wait_for 10 count_is 0 a cur # a1 acked by the retired consumer
	[ "$(cat "$T/a.done")" = "$a1" ]
	# the daemon goes on with b; a2 stays where it is
	b1=$(echo b1 | mq-send -i b)
	wait_for 10 lines_ge 1 "$T/b.done"
	[ "$(ids_in a new)" = "$a2" ]
	[ "$(lines "$T/a.started")" -eq 1 ]
	kill -0 "$RELAYD_PID"
}

@test "relayd: SIGHUP with a bad configuration keeps the running one" {
	relayd_conf "consume q echo \$MQ_ID >>'$T/got'"
	start_relayd
	cp "$RELAYD_CONF" "$T/good.conf"
	printf 'consume q cat\n\tconcurrency lots\n' >"$RELAYD_CONF"
	kill -HUP "$RELAYD_PID"
	wait_for 10 log_has "keeping the running configuration"
	log_has "$RELAYD_CONF:2: "
	echo x | mq-send q
	wait_for 10 lines_ge 1 "$T/got"
	kill -0 "$RELAYD_PID"
}

# ---- SIGTERM ----

@test "relayd: SIGTERM mid-burst exits 0, loses and duplicates nothing" {
	handler h <<'EOF'
echo "$MQ_ID" >>"$T/started"
sleep 0.2
echo "$MQ_ID" >>"$T/done"
EOF
	relayd_conf "stop-timeout 10s" "consume q exec $T/h" "	concurrency 2"
	start_relayd
	seq 20 | mq-send -l -i q >"$T/ids"
	wait_for 20 lines_ge 4 "$T/done"
	local t0 t1
	t0=$(now_ms)
	stop_relayd 15
	t1=$(now_ms)
	[ "$WAIT_STATUS" -eq 0 ]
	[ "$((t1 - t0))" -lt 10000 ]
	log_has 'stopping: no new claims'
	log_has 'stopped$'
	# Every handler it started finished (0.2 s < stop-timeout) and was acked.
	[ -z "$(sort "$T/done" | uniq -d)" ]
	diff <(sort "$T/started") <(sort "$T/done")
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q tmp)" -eq 0 ]
	[ "$(count q dead)" -eq 0 ]
	# What it did not finish is back in new/, never tried ...
	ids_in q new >"$T/left"
	local f
	for f in $(files q new); do
		[ "$(name_attempts "$f")" = 0 ]
	done
	# ... and the two lists together are exactly the burst.
	[ -z "$(sort "$T/done" "$T/left" | uniq -d)" ]
	diff <(sort "$T/ids") <(sort "$T/done" "$T/left")
	[ "$(lines "$T/left")" -gt 0 ] # (mid-burst: something was left)

	# A restart finishes the job, each message still once.
	start_relayd
	wait_for 30 lines_ge 20 "$T/done"
	wait_for 10 queue_empty q
	[ -z "$(sort "$T/done" | uniq -d)" ]
	diff <(sort "$T/ids") <(sort "$T/done")
}

@test "relayd: SIGTERM with a handler past stop-timeout kills it and gives the message back uncounted" {
	handler h <<'EOF'
sleep 100 &
echo $! >"$T/sleep.pid"
wait
EOF
	relayd_conf "stop-timeout 1s" "kill-grace 1s" "consume q $T/h"
	start_relayd
	id=$(echo x | mq-send -i q)
	wait_for 10 test -s "$T/sleep.pid"
	local t0 t1
	t0=$(now_ms)
	stop_relayd 15
	t1=$(now_ms)
	[ "$WAIT_STATUS" -eq 0 ]
	echo "stopped in $((t1 - t0)) ms" >&2
	[ "$((t1 - t0))" -ge 900 ]
	[ "$((t1 - t0))" -lt 6000 ] # stop-timeout + kill-grace + slack
	f=$(only_file q new)
	[ "$(name_id "$f")" = "$id" ]
	[ "$(name_attempts "$f")" = 0 ]
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q dead)" -eq 0 ]
	wait_for 5 pid_gone "$(cat "$T/sleep.pid")"
	log_has "still running at shutdown"
}

# ---- kill -9 ----

@test "relayd: kill -9 mid-burst, then a restart: every message delivered, redeliveries as attempt 2" {
	handler h <<'EOF'
echo "$MQ_ID $MQ_ATTEMPT" >>"$T/started"
sleep 0.1
echo "$MQ_ID $MQ_ATTEMPT" >>"$T/done"
EOF
	relayd_conf "consume q exec $T/h" "	concurrency 2" "	lease 1s" "	backoff 0"
	start_relayd
	seq 20 | mq-send -l -i q >"$T/ids"
	wait_for 20 lines_ge 4 "$T/done"
	kill -9 "$RELAYD_PID"
	wait_pid 10 "$RELAYD_PID"
	# Its handlers (own process groups) are stopped by the daemon's death
	# or run on to their end: unacked either way.
	wait_for 10 no_handlers
	ids_in q cur >"$T/claimed"
	echo "claimed at the kill: $(lines "$T/claimed")" >&2
	# (concurrency 2: at most two; nearly always one or two, but the kill
	# may fall between an ack and the next claim)
	[ "$(lines "$T/claimed")" -le 2 ]
	[ "$(($(count q new) + $(count q cur)))" -le 16 ]

	start_relayd
	wait_for 30 queue_empty q
	cut -d' ' -f1 "$T/done" | sort -u >"$T/delivered"
	# every message delivered (none lost) ...
	diff <(sort "$T/ids") "$T/delivered"
	# ... the ones claimed when the daemon died again, as attempt 2 ...
	local id
	while read -r id; do
		grep -qx "$id 2" "$T/done"
	done <"$T/claimed"
	# ... and nothing else twice, nothing beyond attempt 2.
	[ -z "$(grep -v ' [12]$' "$T/done")" ]
	[ -z "$(cut -d' ' -f1 "$T/done" | sort | uniq -d | grep -vxF -f "$T/claimed")" ]
	[ "$(grep -c ' 2$' "$T/done")" -eq "$(lines "$T/claimed")" ]
	log_has 'took back [0-9]+ expired leases'
}
