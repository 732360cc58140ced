#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Why did it fail (spool-layout.md 6.13): the last failure of a message stays
# with it.  A retry has QUEUE/reasons/ID (status, when, next try, the tail of
# the handler's stderr), readable with cat and shown by mq-peek; a dead
# letter has the same as Dead-* headers.  The handler's stderr still reaches
# the consumer's, and a lot of it neither blocks the consumer nor grows the
# reason.  A handler that cannot run (126, 127) burns no attempt: mq-recv
# stops with 78, mq-relayd pauses the consumer until SIGHUP.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

# reason_of Q ID: the path of Q's reason file of ID.
reason_of() { echo "$MQ_SPOOL/$1/reasons/$2"; }

@test "a failed handler's status, stderr tail and next try are kept beside the retry" {
	config q 'backoff = 1h'
	id=$(echo payload | mq-send -i q)
	run --separate-stderr -75 mq-recv -x 'echo "first	line" >&2; echo "disk on fire" >&2; exit 3' q
	# the bytes still went to the consumer's stderr
	[[ $stderr == *"disk on fire"* ]]
	[[ $stderr == *"$id: handler failed (exit 3)"* ]]
	r=$(reason_of q "$id")
	[ -f "$r" ]
	run -0 cat "$r"
	[[ $output == *"Status: exit 3"* ]]
	[[ $output == *$'Stderr: first\\tline\nStderr: disk on fire'* ]]
	[[ $output == *"Attempts: 1"* ]]
	# next try: the due time of the name in new/, to the millisecond
	m=$(only_file q new)
	want=$(date -u -d "@$(($(name_time "$m") / 1000))" +%Y-%m-%dT%H:%M:%S)
	[[ $(grep '^Next-Try: ' "$r") == "Next-Try: $want."* ]]
	grep -q '^At: 20' "$r"
	# the message file itself is unchanged
	[ "$(body_of "$m")" = payload ]
	! grep -q '^Status' "$m"
	# mq-peek: one line with the status and the last line, --json all of it
	run -0 mq-peek q
	[[ $output == delayed*"$id"*"exit 3: disk on fire" ]]
	run -0 mq-peek --json q
	[ "$(jq -r '.[0].last_failure.status' <<<"$output")" = "exit 3" ]
	[ "$(jq -r '.[0].last_failure.stderr' <<<"$output")" = $'first\\tline\ndisk on fire' ]
	[ "$(jq -r '.[0].last_failure.next_try' <<<"$output")" = $(($(name_time "$m") / 1000)) ]
}

@test "after max-attempts the dead letter carries the status and the stderr tail" {
	config q 'max-attempts = 2' 'backoff = 0'
	id=$(echo payload | mq-send -i q)
	run --separate-stderr -75 mq-recv -n 0 -x 'echo "try $MQ_ATTEMPT broke" >&2; exit 3' q
	[[ $stderr == *"moved to dead/"* ]]
	d=$(only_file q dead)
	[ "$(header_of "$d" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$d" Dead-Status)" = "exit 3" ]
	[ "$(header_of "$d" Dead-Stderr)" = "try 2 broke" ]
	[ "$(body_of "$d")" = payload ]
	# its reason file went with the retry: the dead letter holds it now
	[ ! -e "$(reason_of q "$id")" ]
	run -0 mq-peek q
	[[ $output == dead*"$id"*"max attempts (exit 3: try 2 broke)" ]]
	run -0 mq-peek --json q
	[ "$(jq -r '.[0].last_failure.stderr' <<<"$output")" = "try 2 broke" ]
	[ "$(jq -r '.[0].dead_reason' <<<"$output")" = "max attempts" ]
}

@test "1 MiB of stderr: passed through, the consumer does not block, the tail is bounded" {
	config q 'backoff = 1h'
	id=$(echo x | mq-send -i q)
	# far more than a pipe holds: an undrained pipe would hang the handler
	run --separate-stderr -75 timeout 30 mq-recv -x \
		'head -c 1048576 /dev/zero | tr "\0" "e" | fold -w 100 >&2; printf "\nthe end\n" >&2; exit 3' q
	[ "${#stderr}" -gt 1048576 ]
	r=$(reason_of q "$id")
	[ "$(stat -c %s "$r")" -lt 4096 ]
	[ "$(grep -c '^Stderr: ' "$r")" -le 20 ]
	[ "$(tail -n 1 "$r")" = "Stderr: the end" ]
	# control characters and bytes of a binary stderr are escaped
	id2=$(echo y | mq-send -i q)
	run --separate-stderr -75 mq-recv -x 'printf "a\001b\033[31mc\r\n" >&2; exit 4' q
	grep -qxF 'Stderr: a\x01b\x1b[31mc' "$(reason_of q "$id2")"
}

@test "the reason goes away at ack, and at replay" {
	config q 'backoff = 0'
	id=$(echo x | mq-send -i q)
	run --separate-stderr -75 mq-recv -x 'echo no >&2; exit 3' q
	[ -f "$(reason_of q "$id")" ]
	run -0 mq-recv -x 'cat >/dev/null' q
	[ ! -e "$(reason_of q "$id")" ]
	[ "$(messages_anywhere q)" -eq 0 ]
	# a replayed dead letter starts again with no last failure
	config q 'backoff = 0' 'max-attempts = 2'
	id=$(echo y | mq-send -i q)
	run --separate-stderr -75 mq-recv -x 'exit 3' q
	[ -f "$(reason_of q "$id")" ]
	p=$(mq-recv -c q)
	mq-nack q "$p" # the second attempt: buried
	[ "$(count q dead)" -eq 1 ]
	[ ! -e "$(reason_of q "$id")" ]
	mq-replay q "$id"
	[ ! -e "$(reason_of q "$id")" ]
	run -0 mq-peek --json q
	[ "$(jq -r '.[0].last_failure' <<<"$output")" = null ]
}

@test "mq-nack and a lease that ran out leave a reason too; the full repair sweeps orphans" {
	config q 'backoff = 1h' 'lease = 100ms'
	id=$(echo x | mq-send -i q)
	mq-nack q "$(mq-recv -c q)"
	grep -qx 'Status: mq-nack' "$(reason_of q "$id")"
	rm -f "$MQ_SPOOL"/q/new/*
	# an orphan younger than a minute stays (its message may be moving) ...
	mq-stat --repair q >/dev/null
	[ -f "$(reason_of q "$id")" ]
	# ... an older one goes
	touch -d '2 minutes ago' "$(reason_of q "$id")"
	mq-stat --repair q >/dev/null
	[ ! -e "$(reason_of q "$id")" ]
	id=$(echo y | mq-send -i q)
	mq-recv -c q >/dev/null
	wait_for 10 eval '[ "$(mq-stat --repair q >/dev/null; count q new)" -eq 1 ]'
	grep -qx 'Status: lease expired' "$(reason_of q "$id")"
}

@test "mq-recv -x with a command that cannot run exits 78 and burns no attempt" {
	id=$(echo x | mq-send -i q)
	run --separate-stderr -78 mq-recv -x /nonexistent/cmd q
	[[ $stderr == *"mq-recv: handler '/nonexistent/cmd' cannot run (exit 127: not found): messages left in the queue" ]]
	[ "$(grep -c '^mq-recv:' <<<"$stderr")" -eq 1 ]
	m=$(only_file q new)
	[ "$(name_attempts "$m")" = 0 ]
	[ "$(name_id "$m")" = "$id" ]
	[ "$(count q dead)" -eq 0 ]
	[ ! -e "$(reason_of q "$id")" ]
	# not executable: 126, the same
	printf '#!/bin/sh\nexit 0\n' >"$T/noexec"
	chmod 644 "$T/noexec"
	run --separate-stderr -78 mq-recv -n 0 -x "$T/noexec" q
	[[ $stderr == *"cannot run (exit 126: not executable)"* ]]
	[ "$(name_attempts "$(only_file q new)")" = 0 ]
	# once it can, the message is handled as if nothing had happened
	run -0 mq-recv -x 'cat >/dev/null; [ "$MQ_ATTEMPT" = 1 ]' q
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "relayd: a consumer whose command cannot run pauses, burns nothing, runs after SIGHUP" {
	mkdir -p "$MQ_SPOOL/q"
	relayd_conf "consume q $T/missing"
	start_relayd
	id=$(echo x | mq-send -i q)
	wait_for 10 log_has "consume q: handler '$T/missing' cannot run \(exit 127: not found\): PAUSED"
	# given back uncounted, and not tried again while paused
	wait_for 10 count_is 1 q new
	m=$(only_file q new)
	[ "$(name_attempts "$m")" = 0 ]
	[ "$(count q dead)" -eq 0 ]
	echo y | mq-send q
	handler missing <<'EOF'
cat >>"$T/got"
EOF
	sleep 1 # the second message arrives while paused: it must wait (nothing to wait for)
	[ "$(count q new)" -eq 2 ]
	[ "$(log_count 'cannot run')" -eq 1 ]
	kill -HUP "$RELAYD_PID"
	wait_for 10 lines_ge 2 "$T/got"
	wait_for 10 queue_empty q
	[ "$(sort "$T/got" | tr '\n' ' ')" = "x y " ]
	stop_relayd 20
	[ "$WAIT_STATUS" -eq 0 ]
}
