#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Faults at every syscall of the relay (issue 8): a running mq-relayd, with
# strace attached to one of its threads (-p: the when= counts start at the
# attach) for the length of one PUT it receives or one message it forwards,
# one syscall made to fail (EIO into every call, ENOSPC, EDQUOT, EINTR,
# EMFILE, ENOMEM where they apply; t/fault-sweep has the plan), the
# threads swept apart: the loop, the receiver's sync thread, the closers.
#
# receive: an answer of 201 or 200 only when the message is in new/ once
# (and never after a failed sync); any other answer one a sender retries
# (500, 503, 507, 429 or none, PROTOCOL.md section 5); the retry without a
# fault stores it once, never twice; tmp/ left empty; the daemon alive and
# answering; its log one line per message; t/spool-check passes.
#
# forward: the local message acked only when the receiver holds it in new/
# once; otherwise still held by the sender, in new/ or cur/, and forwarded
# once after the fault (the sender's queue has a 2 s lease, so that one
# left claimed comes back within the bounded wait); the sender alive.
#
# Bounded: SWEEP_MAX (default 30 here) cases of each, spread over the
# syscalls, about 40 s for the file; 8 under the sanitizers; SWEEP=full
# (make stress) every occurrence of every syscall, uncapped.

bats_require_minimum_version 1.5.0
load helper

setup() {
	common_setup
	command -v strace >/dev/null || skip "strace is not installed (contrib/install-deps)"
	command -v curl >/dev/null || skip "curl is not installed (contrib/install-deps)"
	if ldd "$MQ_BIN/mq-relayd" 2>/dev/null | grep -q libasan; then
		export SWEEP_MAX=${SWEEP_MAX:-8} SWEEP_SANITIZERS=1
		export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	elif [ "${SWEEP:-}" != full ]; then
		export SWEEP_MAX=${SWEEP_MAX:-30}
	fi
}

sweep() {
	run "$BATS_TEST_DIRNAME/fault-sweep" "$1" "$BATS_TEST_TMPDIR/sweep"
	printf '# %s\n' "${lines[-1]}" >&3
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
}

@test "fault sweep: mq-relayd receives a PUT (listen)" { sweep receive; }
@test "fault sweep: mq-relayd forwards a message (forward)" { sweep forward; }
