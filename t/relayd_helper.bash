# SPDX-License-Identifier: MIT
#
# Helpers for the mq-relayd tests (t/002*.bats), on top of t/helper.bash:
# write a configuration, start the daemon in the background with bats' fd 3
# closed and its log in a file, write handler scripts, and a teardown that
# kills the daemons of the test and every handler they left behind.
# Handlers run in their own process groups, so killing the daemon does not
# reach them: they are found by a tag in their environment instead (only
# processes exec'd by this test carry it, and only handlers also carry
# MQ_ID), and killed by pid.

relayd_setup() {
	common_setup
	T=$BATS_TEST_TMPDIR
	RELAYD_CONF="$T/relayd.conf"
	RELAYD_LOG="$T/relayd.log"
	export RELAYD_TEST_TAG="$BATS_TEST_TMPDIR"
	RELAYD_PIDS=()
	SAVED_MAX_QUEUED=
}

relayd_teardown() {
	local pid live
	# The daemons, then what spawn started (common_teardown would too, but
	# this waits for them quietly: no "Killed" notice in the output).  Only
	# children not yet waited for: a reaped pid may belong to anyone now.
	live=" $(jobs -p | tr '\n' ' ') "
	for pid in "${RELAYD_PIDS[@]}" $(cat "$PIDFILE" 2>/dev/null); do
		[[ $live == *" $pid "* ]] || continue
		kill -9 "$pid" 2>/dev/null || true
		{ wait "$pid"; } 2>/dev/null || true
	done
	kill_handlers
	restore_max_queued
	common_teardown
	# Shown by bats only when the test failed.
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -f "$RELAYD_LOG" ]; then
		echo "--- $RELAYD_LOG:" >&2
		tail -n 60 "$RELAYD_LOG" >&2
	fi
}

setup() { relayd_setup; }
teardown() { relayd_teardown; }

# handler_pids: pids of the handlers (and their children) started for this test.
handler_pids() {
	local f
	grep -lzxF "RELAYD_TEST_TAG=$RELAYD_TEST_TAG" /proc/[0-9]*/environ 2>/dev/null |
		while read -r f; do
			grep -qz '^MQ_ID=' "$f" 2>/dev/null || continue
			f=${f#/proc/}
			echo "${f%/environ}"
		done
}

kill_handlers() {
	local i pid
	for i in 1 2 3; do # a handler may fork while we look
		for pid in $(handler_pids); do
			kill -9 "$pid" 2>/dev/null || true
		done
	done
}

# relayd_conf LINE...: the configuration file: the spool of this test, a
# safety rescan too slow to hide a missed event, and LINE... (options of a
# consume line are indented with a tab).
relayd_conf() {
	{
		echo "# written by $BATS_TEST_NAME"
		echo "spool $MQ_SPOOL"
		echo "rescan 60s"
		printf '%s\n' "$@"
	} >"$RELAYD_CONF"
}

# handler NAME <<'EOF' ... EOF: an executable script $T/NAME running the
# body with /bin/sh, $T set to the test directory.  Prints nothing.
handler() {
	{
		echo '#!/bin/sh'
		echo "T='$T'"
		cat
	} >"$T/$1"
	chmod +x "$T/$1"
}

# start_relayd [ARG...]: start mq-relayd -c $RELAYD_CONF in the background
# (fds 0 and 3 closed, stderr appended to $RELAYD_LOG); wait until it has
# logged its start.  The pid is in $RELAYD_PID.
start_relayd() {
	local before deadline
	before=$(log_count 'started:')
	mq-relayd -c "$RELAYD_CONF" "$@" 3>&- </dev/null 2>>"$RELAYD_LOG" &
	RELAYD_PID=$!
	RELAYD_PIDS+=("$RELAYD_PID")
	deadline=$(($(now_ms) + 20000))
	until [ "$(log_count 'started:')" -gt "$before" ]; do
		if pid_gone "$RELAYD_PID" || time_past "$deadline"; then
			echo "mq-relayd did not start:" >&2
			cat "$RELAYD_LOG" >&2
			return 1
		fi
		sleep 0.02
	done
}

# log_count PATTERN: lines of the daemon's log matching PATTERN (grep -E).
log_count() {
	local n
	n=$(grep -cE -- "$1" "$RELAYD_LOG" 2>/dev/null) || true
	echo "${n:-0}"
}

# log_has PATTERN: for wait_for.
log_has() { grep -qE -- "$1" "$RELAYD_LOG" 2>/dev/null; }

# lines FILE: number of lines of FILE (0 when it does not exist).
lines() {
	if [ -f "$1" ]; then
		wc -l <"$1" | tr -d ' '
	else
		echo 0
	fi
}

lines_ge() { [ "$(lines "$2")" -ge "$1" ]; }

# queue_empty Q: no message file left in any state of Q.
queue_empty() { [ "$(messages_anywhere "$1")" -eq 0 ]; }

# stop_relayd SECONDS: SIGTERM the daemon and wait (bounded) for it to exit;
# its status is in $WAIT_STATUS.
stop_relayd() {
	kill -TERM "$RELAYD_PID"
	wait_pid "$1" "$RELAYD_PID"
}

# lower_max_queued N: set fs.inotify.max_queued_events to N for the inotify
# instances created from now on (the kernel reads it at inotify_init); the
# old value is put back by restore_max_queued (teardown does it too).  Skips
# the test when the setting cannot be changed here.
lower_max_queued() {
	local f=/proc/sys/fs/inotify/max_queued_events
	[ "$(id -u)" -eq 0 ] && [ -w "$f" ] || skip "cannot change $f here"
	SAVED_MAX_QUEUED=$(cat "$f")
	echo "$1" >"$f" 2>/dev/null || {
		SAVED_MAX_QUEUED=
		skip "cannot write $f here"
	}
}

restore_max_queued() {
	if [ -n "${SAVED_MAX_QUEUED:-}" ]; then
		echo "$SAVED_MAX_QUEUED" >/proc/sys/fs/inotify/max_queued_events
		SAVED_MAX_QUEUED=
	fi
}

# cpu_ticks PID: user + system CPU time of PID, in clock ticks.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# each_once IDS DONE: DONE lists every id of IDS exactly once, nothing else.
each_once() {
	local dups
	dups=$(sort "$2" | uniq -d)
	if [ -n "$dups" ]; then
		echo "handled more than once:" $dups >&2
		return 1
	fi
	diff <(sort "$1") <(sort "$2")
}
