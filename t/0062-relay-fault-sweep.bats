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
# Bounded: SWEEP_MAX (default 24 here) cases of each, spread over the
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
		export SWEEP_MAX=${SWEEP_MAX:-24}
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

# The faults that found bugs, every time whatever SWEEP_MAX picks: the fsync
# of new/ and the marker's open and write failing (the retry was stored
# twice), the sync thread's wake-up lost (no PUT answered again).
@test "fault sweep: receive: a failed fsync of new/ or marker, a lost wake-up: stored once, answered" {
	SWEEP_ONLY=main:fsync:EIO:1,main:fsync:ENOSPC:1,main:openat:EIO:3,main:write:ENOSPC:1,sync:write:EIO:1 \
		sweep receive
}

# A socket that cannot be watched (the transfer stalled 60 s), an ack
# whose unlink fails and a message that cannot be read (left in cur/ until
# the rescan): forwarded once, within the bound.
@test "fault sweep: forward: an unwatched socket, a failed ack, an unreadable message: forwarded once" {
	SWEEP_ONLY=main:epoll_ctl:ENOSPC:1,main:epoll_ctl:ENOMEM:2,main:unlinkat:EIO:1,main:pread64:EIO:1,main:openat:EMFILE:1 \
		sweep forward
}
