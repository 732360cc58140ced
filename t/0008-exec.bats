#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-recv -x CMD: the handler's exit status decides the message's fate
# (0 ack; 75/111 retry; 65/100 bury at once; anything else or a signal:
# retry with backoff), the body arrives on stdin byte for byte, the message
# is described in the environment, and the lease is extended while CMD runs.

bats_require_minimum_version 1.5.0
load helper

teardown() {
	common_teardown
	if [ -f "$BATS_TEST_TMPDIR/.nproc-dir" ]; then
		rm -rf "$(cat "$BATS_TEST_TMPDIR/.nproc-dir")"
	fi
}

@test "-x: exit 0 acks, the queue is empty after" {
	echo x | mq-send q
	run -0 mq-recv -x 'cat >/dev/null' q
	[ "$(messages_anywhere q)" -eq 0 ]
	run -1 mq-peek q
}

@test "-x: the handler's stdout is passed through" {
	echo x | mq-send q
	run -0 mq-recv -x 'echo handled' q
	[ "$output" = handled ]
}

@test "-x: the body arrives on stdin byte for byte" {
	printf 'a\0b\n\n\377no newline' >"$BATS_TEST_TMPDIR/in"
	mq-send q <"$BATS_TEST_TMPDIR/in"
	mq-recv -x "cat >'$BATS_TEST_TMPDIR/got'" q
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/got"
}

@test "-x: an empty body arrives as empty stdin" {
	mq-send q </dev/null
	mq-recv -x "cat >'$BATS_TEST_TMPDIR/got'" q
	[ -f "$BATS_TEST_TMPDIR/got" ]
	[ ! -s "$BATS_TEST_TMPDIR/got" ]
}

@test "-x: a handler that does not read stdin still acks a large body" {
	head -c 1048576 /dev/urandom | mq-send q
	run -0 mq-recv -x 'exit 0' q
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "-x: environment MQ_ID, MQ_QUEUE, MQ_ATTEMPT, MQ_FILE, MQ_SPOOL, MQ_HDR_*" {
	id=$(echo x | mq-send -i -H 'X-Foo: bar' q)
	mq-recv -x "env >'$BATS_TEST_TMPDIR/env'
		test -f \"\$MQ_FILE\" && echo MQ_FILE_EXISTS=yes >>'$BATS_TEST_TMPDIR/env'" q
	env_of() { sed -n "s/^$1=//p" "$BATS_TEST_TMPDIR/env"; }
	[ "$(env_of MQ_ID)" = "$id" ]
	[ "$(env_of MQ_QUEUE)" = q ]
	[ "$(env_of MQ_ATTEMPT)" = 1 ]
	[ "$(env_of MQ_HDR_X_FOO)" = bar ]
	[ "$(env_of MQ_FILE_EXISTS)" = yes ]
	f=$(env_of MQ_FILE)
	[[ $f == /* ]]
	[ "$(realpath "$(dirname "$f")")" = "$(realpath "$MQ_SPOOL/q/cur")" ]
	[ "$(name_id "$f")" = "$id" ]
	[ "$(realpath "$(env_of MQ_SPOOL)")" = "$(realpath "$MQ_SPOOL")" ]
}

@test "-x: MQ_ATTEMPT counts deliveries" {
	config q 'backoff = 0'
	echo x | mq-send q
	run -75 mq-recv -x 'exit 75' q
	mq-recv -x "echo \$MQ_ATTEMPT >'$BATS_TEST_TMPDIR/attempt'" q
	[ "$(cat "$BATS_TEST_TMPDIR/attempt")" = 2 ]
}

gives_back() { # STATUS: a handler exiting STATUS leaves the message in new/, attempt 1
	echo x | mq-send q
	run -75 mq-recv -x "exit $1" q
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q dead)" -eq 0 ]
	f=$(only_file q new)
	[ "$(name_attempts "$f")" = 1 ]
	[ "$(body_of "$f")" = x ]
}

@test "-x: exit 75 gives the message back" { gives_back 75; }
@test "-x: exit 111 gives the message back" { gives_back 111; }
@test "-x: exit 3 gives the message back" { gives_back 3; }
@test "-x: exit 1 gives the message back" { gives_back 1; }

@test "-x: a handler killed by a signal gives the message back" {
	echo x | mq-send q
	run -75 mq-recv -x 'kill -9 $$' q
	f=$(only_file q new)
	[ "$(name_attempts "$f")" = 1 ]
}

@test "-x: a command that does not exist gives the message back uncounted, exit 78" {
	echo x | mq-send q
	run -78 mq-recv -x 'no-such-command-anywhere' q
	[ "$(name_attempts "$(only_file q new)")" = 0 ]
}

buries() { # STATUS: a handler exiting STATUS buries the message at once
	printf 'the body\n' | mq-send q
	run -75 mq-recv -x "exit $1" q
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
	[ "$(count q tmp)" -eq 0 ]
	f=$(only_file q dead)
	is_msg_name "$f"
	[[ $(header_of "$f" Dead-Reason) == "handler said bury"* ]]
	[ "$(header_of "$f" Dead-Status)" = "exit $1" ]
	[ "$(header_of "$f" Dead-Attempts)" = 1 ]
	[[ $(header_of "$f" Dead-Date) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]
	[ "$(body_of "$f")" = 'the body' ]
}

@test "-x: exit 65 buries at once" {
	buries 65
	[ "$(header_of "$(only_file q dead)" Dead-Reason)" = "handler said bury (exit 65)" ]
}
@test "-x: exit 100 buries at once" { buries 100; }

@test "-x: dead letter headers come before the original ones" {
	id=$(echo x | mq-send -i -H 'X-Foo: bar' q)
	run -75 mq-recv -x 'exit 65' q
	f=$(only_file q dead)
	[[ $(head -n 1 "$f") == Dead-* ]]
	[ "$(header_of "$f" Id)" = "$id" ]
	[ "$(header_of "$f" X-Foo)" = bar ]
}

@test "-x: past max-attempts the message is buried" {
	config q 'backoff = 0' 'max-attempts = 2'
	echo x | mq-send q
	# Run the failing handler until nothing is due any more (bounded).
	local i rc
	for i in 1 2 3 4 5; do
		rc=0
		mq-recv -x 'exit 3' q || rc=$?
		[ "$rc" -eq 1 ] && break
		[ "$rc" -eq 75 ]
	done
	[ "$rc" -eq 1 ]
	[ "$(count q new)" -eq 0 ]
	f=$(only_file q dead)
	[ "$(header_of "$f" Dead-Reason)" = "max attempts" ]
	[ "$(header_of "$f" Dead-Attempts)" = 2 ]
}

@test "-x -n 0 handles every message; one failure makes the exit 75" {
	# default backoff: the failed one is not due again during this run
	printf '%s\n' ok fail ok2 | mq-send -l q
	run -75 mq-recv -n 0 -x 'read -r b; [ "$b" != fail ]' q
	f=$(only_file q new)
	[ "$(body_of "$f")" = fail ]
	[ "$(name_attempts "$f")" = 1 ]
}

@test "-x -n 0: all handlers succeed, exit 0" {
	seq 1 5 | mq-send -l q
	run -0 mq-recv -n 0 -x "cat >>'$BATS_TEST_TMPDIR/got'" q
	seq 1 5 | cmp - "$BATS_TEST_TMPDIR/got"
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "-x: no process for the handler (fork fails): back at once, uncounted, exit 75" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to become nobody"
	local nobody d
	nobody=$(id -u nobody 2>/dev/null) || skip "no user nobody"
	! pgrep -u "$nobody" >/dev/null || skip "nobody already runs processes here"
	# As nobody with RLIMIT_NPROC 1, mq-recv itself is nobody's one process,
	# so its fork fails with EAGAIN: the handler never runs.  The spool and a
	# copy of mq-recv sit where nobody may reach them.
	d=$(mktemp -d /tmp/spoolmq-nproc.XXXXXX)
	echo "$d" >"$BATS_TEST_TMPDIR/.nproc-dir"
	chmod 755 "$d"
	cp "$MQ_BIN/mq-recv" "$d/"
	export MQ_SPOOL="$d/spool"
	echo hello | mq-send q
	chown -R "$nobody" "$d/spool"
	run --separate-stderr prlimit --nproc=1:1 \
		setpriv --reuid="$nobody" --regid="$(id -g nobody)" --clear-groups \
		"$d/mq-recv" -x "touch '$d/ran'" q
	echo "$stderr" >&2
	# nobody's processes elsewhere on this kernel (not ours to see) would
	# stop setpriv's exec before mq-recv ever ran: nothing to test then
	[[ $stderr == "mq-recv: "* ]] || skip "cannot run mq-recv as nobody with one process: $stderr"
	[ "$status" -eq 75 ]
	[[ $stderr == "mq-recv: fork: "* ]]
	[ ! -e "$d/ran" ]
	# back in new/ with its attempts as before the claim, nothing left in cur/
	f=$(only_file q new)
	[ "$(name_attempts "$f")" = 0 ]
	[ "$(count q cur)" -eq 0 ]
	run -0 mq-recv -x 'echo "$MQ_ATTEMPT"; cat' q
	[ "$output" = "1
hello" ]
}

@test "-x on an empty queue exits 1 and runs nothing" {
	mkdir "$MQ_SPOOL" # a spool, without the queue
	run -1 mq-recv -x "touch '$BATS_TEST_TMPDIR/ran'" q
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
}

@test "-x: the lease is extended while the handler runs" {
	config q 'lease = 1' 'backoff = 0'
	echo x | mq-send q
	T=$BATS_TEST_TMPDIR
	spawn mq-recv -x "touch '$T/started'; sleep 3; echo done >'$T/finished'" q
	pid=$BG_PID
	wait_for 20 test -e "$T/started"
	# While the handler runs, well past the first 1 s lease, nobody else
	# may take the message over.
	while ! [ -e "$T/finished" ] && kill -0 "$pid" 2>/dev/null && ! is_zombie "$pid"; do
		run -1 mq-recv -c q
		sleep 0.1
	done
	wait_pid 20 "$pid"
	[ "$WAIT_STATUS" -eq 0 ]
	[ "$(messages_anywhere q)" -eq 0 ]
}
