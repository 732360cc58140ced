#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# The fleet (issue 12), small: bench/fleet with five hosts in network
# namespaces, each with its own spool, mq-relayd forward and producer of
# numbered lines, relaying to one collector's mq-relayd listen, for about
# 20 s of steady sending while the faults run: the collector SIGKILLed and
# restarted, one host cut off at the bridge and reconnected, one host with
# packet loss and added delay, one host's spool on a loop-mounted ext4
# filled until ENOSPC and freed.  What is checked is what bench/fleet's
# check finds: every (host, seq) produced is at the collector, none twice,
# no line left unsent at a source or in a host's spool, no dead letter;
# and that the faults did happen (the collector started twice, the cut
# host and the collector's senders saw a peer that could not take
# messages, the full host's mq-send was refused).  Only sets and counts:
# the relay does not promise order across retries.
#
# Root only (namespaces, veth, a bridge, a loop mount): skipped otherwise.
# Bounded: bench/fleet under timeout(1) (SIGTERM: its trap removes the
# namespaces, the mount and its processes), about 40 s here.

bats_require_minimum_version 1.5.0
load helper

setup() {
	common_setup
	[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
	command -v ip >/dev/null || skip "no ip(8)"
	command -v mkfs.ext4 >/dev/null || skip "no mkfs.ext4"
	FLEET="$BATS_TEST_DIRNAME/../bench/fleet"
	OUT="$BATS_TEST_TMPDIR/out"
}

# fig KEY: the value of KEY in bench/fleet's fleet.txt
fig() { sed -n "s/^$1: //p" "$OUT/fleet.txt"; }

@test "fleet: 5 hosts, collector killed and restarted, a host cut off, a lossy link, a full disk: none lost, none twice" {
	run -0 --separate-stderr env MQ_BIN="$MQ_BIN" SCRATCH="$BATS_TEST_TMPDIR/scratch" \
		HOSTS=5 BACKLOG=200 RATE=20 DURATION=20 CEIL_LINES=2000 CEIL_REPS=1 \
		T_KILL=3 KILL_DOWN=2 T_CUT=6 CUT_S=8 T_FULL=8 FULL_S=5 DRAIN_CAP=60 \
		timeout 240 "$FLEET" "$OUT"
	echo "$stderr" | tail -n 40
	cat "$OUT/fleet.txt"
	[ "$(fig verdict)" = ok ]
	[ "$(fig lost)" -eq 0 ]
	[ "$(fig duplicated)" -eq 0 ]
	[ "$(fig duplicate_ids)" -eq 0 ]
	[ "$(fig unknown)" -eq 0 ]
	[ "$(fig unsent_at_source)" -eq 0 ]
	[ "$(fig info_drained)" -eq 1 ]
	[ "$(fig info_hosts_dead_letters)" -eq 0 ]
	# every line produced arrived, each once: 5 x 200 backlog + about 5 x 20 x 20 steady
	[ "$(fig generated)" -eq "$(fig arrived_distinct)" ]
	[ "$(fig generated)" -ge 2500 ]
	# the faults happened: the collector started twice ...
	[ "$(grep -c 'started:' "$OUT/logs/c-log")" -eq 2 ]
	[ -n "$(fig info_kill_ms)" ] && [ -n "$(fig info_restart_ms)" ]
	# ... the cut host could not reach it for a while ...
	grep -q 'cannot take messages now' "$OUT/logs/h03-log"
	# ... and the full disk held the producer's mq-send -l, which waited it
	# out with its lines (mq-send(1)): no exit 75, no line refused
	[[ "$(fig producer_h04)" == *"waited-for-disk"* ]]
	[ "$(fig producer_restarts)" -eq 0 ]
	[ "$(fig refused_at_source)" -eq 0 ]
	# nothing of it is left behind
	local tag
	tag=$(fig info_tag)
	[ -n "$tag" ]
	run ! grep -qE "^fl(br|c|h)$tag\b" <<<"$(ip netns list)"
	run ! grep -qs "$BATS_TEST_TMPDIR/scratch" /proc/mounts
	[ -z "$(ls -A "$BATS_TEST_TMPDIR/scratch")" ]
}
