#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Faults at every syscall (issue 8): each state change run again and again
# under strace, with one syscall made to fail each time (EIO into every
# call, and ENOSPC, EDQUOT, EINTR, EMFILE, ENOMEM where they apply; see
# t/fault-sweep for the plan), on a fresh copy of its spool.  After each
# run: an exit status of the command's man page and at most one line on
# stderr; a spool that passes t/spool-check (spool-layout.md section 13);
# what was acknowledged is there once, what failed is still held.
#
# Bounded: the occurrences 1, 2, 3 and the last of each syscall, about a
# minute for the whole file in the normal build.  SWEEP=full (make stress)
# tries every occurrence.  Under the sanitizers, SWEEP_MAX (default 20)
# cases of each operation, spread over its syscalls.  Known bugs fixed on
# other branches are counted and named, not failed (t/fault-sweep, KNOWN).

bats_require_minimum_version 1.5.0
load helper

setup() {
	common_setup
	command -v strace >/dev/null || skip "strace is not installed (contrib/install-deps)"
	if ldd "$MQ_BIN/mq-send" 2>/dev/null | grep -q libasan; then
		export SWEEP_MAX=${SWEEP_MAX:-20} SWEEP_SANITIZERS=1
		# LeakSanitizer cannot run under ptrace; the rest of the suite has it
		export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	fi
}

# sweep OP: the whole sweep of OP; its report is shown when it fails, and
# its summary line on fd 3 (the test's output) in any case.
sweep() {
	run "$BATS_TEST_DIRNAME/fault-sweep" "$1" "$BATS_TEST_TMPDIR/sweep"
	printf '# %s\n' "${lines[-1]}" >&3
	printf '%s\n' "$output"
	[ "$status" -eq 0 ]
}

@test "fault sweep: mq-send" { sweep send; }
@test "fault sweep: mq-send --id (a new key)" { sweep send-id; }
@test "fault sweep: mq-send --id of a key seen (dedup)" { sweep dedup; }
@test "fault sweep: mq-send -l (a batch, group commit)" { sweep batch; }
@test "fault sweep: mq-recv (claim, print, ack)" { sweep recv; }
@test "fault sweep: mq-recv -x (claim, handler, ack)" { sweep recv-x; }
@test "fault sweep: mq-recv -c (claim)" { sweep claim; }
@test "fault sweep: mq-ack" { sweep ack; }
@test "fault sweep: mq-ack --extend" { sweep extend; }
@test "fault sweep: mq-nack (retry)" { sweep nack; }
@test "fault sweep: mq-nack of the last attempt (bury, max attempts)" { sweep bury; }
@test "fault sweep: mq-nack --dead (bury)" { sweep nack-dead; }
@test "fault sweep: mq-replay" { sweep replay; }
@test "fault sweep: mq-stat --repair (the full repair)" { sweep repair; }
@test "fault sweep: mq-send --key (a free key: its head)" { sweep send-key; }
@test "fault sweep: mq-send --key (a held key: it waits)" { sweep send-key-held; }
@test "fault sweep: mq-recv of a key's head (ack, hand the key on)" { sweep recv-key; }
@test "fault sweep: mq-recv -n 0 of a key (a run)" { sweep recv-key-run; }
