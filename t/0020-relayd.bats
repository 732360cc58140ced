#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-relayd, the basics: -n checks a configuration (exit 78 naming
# file:line on a bad one); a message that arrives fires its consumer at once
# (inotify, not the safety rescan); the handler sees what mq-recv -x shows
# it (body on stdin, MQ_* environment) and its exit status is classed the
# same way (ack, retry with backoff, bury).

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

# ---- -n: check the configuration ----

@test "relayd -n: a good configuration exits 0 and starts nothing" {
	relayd_conf \
		"stop-timeout 10s" \
		"kill-grace = 2s" \
		"# a comment" \
		"" \
		"consume jobs /bin/true --some arg" \
		"	concurrency 4" \
		"	timeout 30s" \
		"	lease 1m" \
		"	backoff 1s..1m" \
		"	max-attempts 3" \
		"consume other cat"
	run --separate-stderr -0 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[ "$output" = "$RELAYD_CONF: ok: 2 consumers" ]
	[ -z "$stderr" ]
	[ ! -e "$MQ_SPOOL" ]
}

# bad_conf LINE-NO LINE...: a file whose line LINE-NO is wrong is refused
# with exit 78 and one line naming file:line.
bad_conf() {
	local n=$1
	shift
	printf '%s\n' "$@" >"$RELAYD_CONF"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == "mq-relayd: $RELAYD_CONF:$n: "* ]]
	[ -z "$output" ]
	# started normally, the same file is refused the same way
	run --separate-stderr -78 timeout 10 mq-relayd -c "$RELAYD_CONF"
	[[ $stderr == "mq-relayd: $RELAYD_CONF:$n: "* ]]
	[ ! -e "$MQ_SPOOL" ]
}

@test "relayd -n: unknown directive" {
	bad_conf 2 "spool $MQ_SPOOL" "frobnicate yes" "consume q cat"
	[[ $stderr == *frobnicate* ]]
}
@test "relayd -n: bad duration" {
	bad_conf 3 "# c" "consume q cat" "	timeout soon"
	[[ $stderr == *"timeout"*"soon"* ]]
}
@test "relayd -n: bad global duration" { bad_conf 1 "rescan 5 minutes" "consume q cat"; }
@test "relayd -n: a rescan under a second is refused" { bad_conf 1 "rescan 500ms" "consume q cat"; }
@test "relayd -n: bad concurrency" {
	bad_conf 2 "consume q cat" "	concurrency 0"
	bad_conf 2 "consume q cat" "	concurrency many"
}
@test "relayd -n: bad queue option value" {
	bad_conf 3 "consume q cat" "	lease 1m" "	backoff fast"
	bad_conf 2 "consume q cat" "	max-attempts -1"
}
@test "relayd -n: unknown consumer option" { bad_conf 2 "consume q cat" "	colour blue"; }
@test "relayd -n: an indented option outside a consume block" {
	bad_conf 2 "spool $MQ_SPOOL" "	concurrency 2" "consume q cat"
}
@test "relayd -n: bad queue name" { bad_conf 1 "consume .hidden cat"; }
@test "relayd -n: consume without a command" { bad_conf 2 "" "consume q"; }

@test "relayd -n: no consume line at all exits 78" {
	printf 'spool %s\n' "$MQ_SPOOL" >"$RELAYD_CONF"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$RELAYD_CONF"* ]]
}

@test "relayd -n: a missing configuration file exits 78" {
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$T/nope.conf"
	check_error mq-relayd
	[[ $stderr == *"$T/nope.conf"* ]]
}

@test "relayd: a bad option exits 64" {
	run --separate-stderr -64 timeout 10 mq-relayd -q -c "$RELAYD_CONF"
	[[ $stderr == *usage:* ]]
}

# ---- arrival ----

@test "relayd: an arriving message fires the handler at once" {
	relayd_conf "consume q echo \$MQ_ID >>'$T/got'"
	start_relayd
	echo one | mq-send q
	wait_for 20 lines_ge 1 "$T/got"
	# Now the loop is surely running and the start-up rescan is over: time
	# the next one, which only inotify can bring (the safety rescan is 60 s).
	local t0 t1
	t0=$(now_ms)
	id=$(echo two | mq-send -i q)
	wait_for 2 lines_ge 2 "$T/got"
	t1=$(now_ms)
	echo "handled in $((t1 - t0)) ms" >&2
	[ "$((t1 - t0))" -lt 2000 ]
	[ "$(sed -n 2p "$T/got")" = "$id" ]
	wait_for 5 queue_empty q
	kill -0 "$RELAYD_PID"
}

@test "relayd: messages waiting before the start are handled at start" {
	seq 3 | mq-send -l q
	relayd_conf "consume q cat >>'$T/got'"
	start_relayd
	wait_for 10 lines_ge 3 "$T/got"
	seq 3 | cmp - "$T/got"
	wait_for 5 queue_empty q
}

@test "relayd: -d wins over the spool line; a missing queue is created" {
	relayd_conf "consume q touch '$T/ran'"
	sed -i "s|^spool .*|spool $T/not-this-one|" "$RELAYD_CONF"
	start_relayd -d "$MQ_SPOOL"
	[ -d "$MQ_SPOOL/q/new" ]
	[ ! -e "$T/not-this-one" ]
	echo x | mq-send q
	wait_for 10 test -e "$T/ran"
}

@test "relayd: a delayed message fires when it falls due, not before" {
	relayd_conf "consume q echo \$MQ_ID >>'$T/got'"
	start_relayd
	local t0 t1
	t0=$(now_ms)
	echo later | mq-send --delay 1500ms q
	wait_for 10 lines_ge 1 "$T/got"
	t1=$(now_ms)
	echo "handled after $((t1 - t0)) ms" >&2
	[ "$((t1 - t0))" -ge 1500 ]
	[ "$((t1 - t0))" -lt 4000 ]
}

# ---- what the handler sees ----

@test "relayd: handler environment MQ_ID, MQ_QUEUE, MQ_ATTEMPT, MQ_FILE, MQ_SPOOL, MQ_HDR_*" {
	handler h <<'EOF'
env >"$T/env.tmp"
test -f "$MQ_FILE" && echo MQ_FILE_EXISTS=yes >>"$T/env.tmp"
mv "$T/env.tmp" "$T/env"
EOF
	relayd_conf "consume jobs $T/h"
	start_relayd
	id=$(echo x | mq-send -i -H 'X-Foo: bar baz' -H 'content-type: text/plain' jobs)
	wait_for 10 test -e "$T/env"
	env_of() { sed -n "s/^$1=//p" "$T/env"; }
	[ "$(env_of MQ_ID)" = "$id" ]
	[ "$(env_of MQ_QUEUE)" = jobs ]
	[ "$(env_of MQ_ATTEMPT)" = 1 ]
	[ "$(env_of MQ_HDR_X_FOO)" = "bar baz" ]
	[ "$(env_of MQ_HDR_CONTENT_TYPE)" = text/plain ]
	[ "$(env_of MQ_HDR_ID)" = "$id" ]
	[ "$(env_of MQ_FILE_EXISTS)" = yes ]
	f=$(env_of MQ_FILE)
	[[ $f == /* ]]
	[ "$(realpath "$(dirname "$f")")" = "$(realpath "$MQ_SPOOL/jobs/cur")" ]
	[ "$(name_id "$f")" = "$id" ]
	[ "$(name_attempts "$f")" = 1 ]
	[ "$(realpath "$(env_of MQ_SPOOL)")" = "$(realpath "$MQ_SPOOL")" ]
	wait_for 5 queue_empty jobs
}

@test "relayd: the body arrives on stdin byte for byte; the command is for /bin/sh -c" {
	printf 'a\0b\n\n\377no newline' >"$T/in"
	relayd_conf "consume q sh -c 'cat >\"\$0.tmp\" && echo \"\$1\" >\"\$0.arg\" && mv \"\$0.tmp\" \"\$0\"' '$T/got' 'two words'"
	start_relayd
	mq-send q <"$T/in"
	wait_for 10 test -e "$T/got"
	cmp "$T/in" "$T/got"
	[ "$(cat "$T/got.arg")" = "two words" ]
}

@test "relayd -v: logs each handler's start and end" {
	relayd_conf "consume q true"
	start_relayd -v
	id=$(echo x | mq-send -i q)
	wait_for 10 log_has "$id.*done"
	log_has "q: $id: handler started \(attempt 1, pid [0-9]+\)"
	log_has "started: 1 consumers"
}

@test "relayd -s: logs go to syslog, not stderr" {
	relayd_conf "consume q exit 3" "	backoff 1h"
	mq-relayd -s -c "$RELAYD_CONF" 3>&- </dev/null 2>"$RELAYD_LOG" &
	RELAYD_PID=$!
	RELAYD_PIDS+=("$RELAYD_PID")
	wait_for 10 test -d "$MQ_SPOOL/q/new"
	echo x | mq-send q # a failure: worth a log line
	wait_for 10 count_is 1 q new
	wait_for 10 has_attempts_1
	kill -0 "$RELAYD_PID"
	[ ! -s "$RELAYD_LOG" ]
}

has_attempts_1() { [ "$(name_attempts "$(only_file q new)")" = 1 ]; }

# ---- exit classes, as mq-recv -x ----

@test "relayd: exit 0 acks" {
	relayd_conf "consume q cat >>'$T/got'"
	start_relayd
	seq 5 | mq-send -l q
	wait_for 10 lines_ge 5 "$T/got"
	wait_for 5 queue_empty q
	[ "$(messages_anywhere q)" -eq 0 ]
	run -1 mq-peek q
	# a handler that succeeds is not worth a log line without -v
	! log_has 'handler failed'
}

@test "relayd: exit 75, 111, 3, 1 and a signal give the message back with backoff" {
	config q 'backoff = 1h'
	handler h <<'EOF'
read -r code
echo "$code $MQ_ATTEMPT" >>"$T/ran"
[ "$code" = sig ] && kill -9 $$
exit "$code"
EOF
	# exec: the handler script itself is the process the daemon waits for
	relayd_conf "consume q exec $T/h" "	concurrency 2"
	start_relayd
	printf '%s\n' 75 111 3 1 sig | mq-send -l q
	wait_for 10 count_is 5 q new
	wait_for 10 log_count_ge 5 'handler failed'
	[ "$(lines "$T/ran")" -eq 5 ]
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q dead)" -eq 0 ]
	local f now
	now=$(now_ms)
	for f in $(files q new); do
		[ "$(name_attempts "$f")" = 1 ]
		# backoff 1h with equal jitter: due in more than half an hour
		[ "$(name_time "$f")" -gt $((now + 1800 * 1000)) ]
	done
	[ "$(files q new | xargs -n 1 sh -c 'sed 1,/^\$/d "$0"' | sort | tr '\n' ' ')" = "1 111 3 75 sig " ]
	# one log line per failure, with the exit status
	log_has "q: [0-9A-Z]{26}: handler failed \(attempt 1\): exit 75"
	log_has "handler failed \(attempt 1\): exit 111"
	log_has "handler failed \(attempt 1\): exit 3"
	log_has "handler failed \(attempt 1\): signal 9"
	kill -0 "$RELAYD_PID"
}

@test "relayd: a retried message comes back with MQ_ATTEMPT 2" {
	handler h <<'EOF'
echo "$MQ_ATTEMPT" >>"$T/ran"
[ "$MQ_ATTEMPT" -ge 2 ]
EOF
	relayd_conf "consume q $T/h" "	backoff 0"
	start_relayd
	echo x | mq-send q
	wait_for 10 lines_ge 2 "$T/ran"
	wait_for 5 queue_empty q
	[ "$(cat "$T/ran" | tr '\n' ' ')" = "1 2 " ]
}

@test "relayd: exit 65 and 100 bury at once" {
	handler h <<'EOF'
read -r code
exit "$code"
EOF
	relayd_conf "consume q $T/h" "	max-attempts 5"
	start_relayd
	printf '%s\n' 65 100 | mq-send -l q
	wait_for 10 count_is 2 q dead
	wait_for 5 queue_empty_but_dead q
	local f code
	for f in $(files q dead); do
		is_msg_name "$f"
		code=$(body_of "$f")
		[ "$(header_of "$f" Dead-Reason)" = "handler said bury (exit $code)" ]
		[ "$(header_of "$f" Dead-Status)" = "exit $code" ]
		[ "$(header_of "$f" Dead-Attempts)" = 1 ]
	done
	log_has "handler failed \(exit 65, attempt 1\): dead letter"
	log_has "handler failed \(exit 100, attempt 1\): dead letter"
}

log_count_ge() { [ "$(log_count "$2")" -ge "$1" ]; }

time_past_not() { ! time_past "$1"; }

queue_empty_but_dead() {
	[ "$(count "$1" new)" -eq 0 ] && [ "$(count "$1" cur)" -eq 0 ] && [ "$(count "$1" tmp)" -eq 0 ]
}

@test "relayd: past max-attempts (the consumer's override) the message is dead-lettered" {
	config q 'max-attempts = 10' 'backoff = 1h'
	relayd_conf "consume q echo \$MQ_ATTEMPT >>'$T/ran'; exit 3" \
		"	max-attempts 2" \
		"	backoff 0"
	start_relayd
	echo x | mq-send q
	wait_for 10 count_is 1 q dead
	wait_for 5 queue_empty_but_dead q
	[ "$(cat "$T/ran" | tr '\n' ' ')" = "1 2 " ]
	f=$(only_file q dead)
	[ "$(header_of "$f" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$f" Dead-Attempts)" = 2 ]
	[ "$(header_of "$f" Dead-Status)" = "exit 3" ]
	log_has "dead letter"
}

@test "relayd: the lease is extended while a handler runs" {
	relayd_conf "consume q touch '$T/started'; sleep 3; touch '$T/finished'" "	lease 1s"
	start_relayd
	echo x | mq-send q
	wait_for 10 test -e "$T/started"
	# Well past the 1 s lease, nobody else may take the message.
	local deadline=$(($(now_ms) + 20000))
	while ! [ -e "$T/finished" ] && time_past_not "$deadline"; do
		run -1 mq-recv -c q
		sleep 0.1
	done
	wait_for 5 queue_empty q
	! log_has 'lease lost'
}
