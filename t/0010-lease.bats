#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Leases (issue 3): a claim's deadline is in its cur/ name; mq-ack --extend
# moves it; a lease past its deadline is taken back by whoever looks first,
# counting the attempt (or burying the message past max-attempts); acking a
# lost lease exits 2; mq-recv -x heartbeats so a handler that outlives the
# lease is never handed to a second consumer; and the race of an ack against
# a second consumer's claim at the deadline has exactly one winner.

bats_require_minimum_version 1.5.0
load helper

@test "a claim's cur/ name carries the lease deadline and delivery number 1" {
	config q 'lease = 2s'
	echo x | mq-send q
	t0=$(now_ms)
	p=$(mq-recv -c q)
	t1=$(now_ms)
	is_msg_name "$p"
	[ "$(dirname "$p")" = "$(qdir q)/cur" ] || [ "$(dirname "$p")" -ef "$(qdir q)/cur" ]
	dl=$(name_time "$p")
	[ "$dl" -ge $((t0 + 2000)) ]
	[ "$dl" -le $((t1 + 2000)) ]
	[ "$(name_attempts "$p")" -eq 1 ]
}

@test "mq-ack --extend moves the deadline, prints the new path; the old path is lost" {
	config q 'lease = 300ms'
	echo x | mq-send q
	p=$(mq-recv -c q)
	t0=$(now_ms)
	run --separate-stderr -0 mq-ack --extend 30s q "$p"
	[ "${#lines[@]}" -eq 1 ]
	np=${lines[0]}
	[ "$np" != "$p" ]
	[ -f "$np" ]
	[ ! -e "$p" ]
	[ "$(name_id "$np")" = "$(name_id "$p")" ]
	[ "$(name_attempts "$np")" -eq 1 ]
	[ "$(name_time "$np")" -ge $((t0 + 30000)) ]
	# still claimed after the original lease has run out: nobody takes it back
	wait_for 5 time_past $(($(name_time "$p") + 50))
	run -1 mq-recv -c q
	[ "$(count q cur)" -eq 1 ]
	run --separate-stderr -2 mq-ack q "$p"
	check_error mq-ack
	run -0 mq-ack q "$np"
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-ack --extend by id works; --extend of a lost lease exits 2" {
	config q 'lease = 1s'
	id=$(echo x | mq-send -i q)
	p=$(mq-recv -c q)
	run -0 mq-ack --extend 1m q "$id"
	np=$output
	[ -f "$np" ]
	run --separate-stderr -2 mq-ack --extend 1m q "$p"
	check_error mq-ack
	mq-ack q "$np"
	run -2 mq-ack --extend 1m q "$id"
}

@test "an expired lease is taken back by the next mq-recv, counting the attempt" {
	config q 'lease = 200ms' 'backoff = 0'
	id=$(echo body | mq-send -i q)
	p=$(mq-recv -c q)
	wait_for 5 time_past "$(name_time "$p")"
	run -0 mq-recv -c q
	p2=$output
	[ "$(name_id "$p2")" = "$id" ]
	[ "$(name_attempts "$p2")" -eq 2 ]
	[ "$(count q cur)" -eq 1 ]
	# the first consumer's lease is lost
	run --separate-stderr -2 mq-ack q "$p"
	check_error mq-ack
	run -0 mq-ack q "$p2"
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "an expired lease taken back goes to new/ with the queue's backoff" {
	config q 'lease = 200ms' 'backoff = 10s'
	echo body | mq-send q
	p=$(mq-recv -c q)
	wait_for 5 time_past "$(name_time "$p")"
	t0=$(now_ms)
	run -1 mq-recv q
	[ -z "$output" ]
	n=$(only_file q new)
	[ "$(name_attempts "$n")" -eq 1 ]
	# equal jitter: between half the backoff and all of it
	[ "$(name_time "$n")" -ge $((t0 + 5000)) ]
	[ "$(name_time "$n")" -le $(($(now_ms) + 10000)) ]
	[ "$(count q cur)" -eq 0 ]
}

@test "mq-stat --repair takes back an expired lease and says so" {
	config q 'lease = 200ms' 'backoff = 0'
	echo body | mq-send q
	p=$(mq-recv -c q)
	wait_for 5 time_past "$(name_time "$p")"
	run -0 mq-stat --repair q
	[[ $output == *"repaired q: 1 expired leases taken back"* ]]
	[ "$(count q cur)" -eq 0 ]
	n=$(only_file q new)
	[ "$(name_attempts "$n")" -eq 1 ]
	run -2 mq-ack q "$p"
	run -0 mq-recv q
	[ "$output" = body ]
}

@test "an expired lease nobody took back yet can still be acked (nobody got it twice)" {
	config q 'lease = 200ms'
	echo x | mq-send q
	p=$(mq-recv -c q)
	wait_for 5 time_past $(($(name_time "$p") + 20))
	run -0 mq-ack q "$p"
	[ "$(messages_anywhere q)" -eq 0 ]
	run -1 mq-recv q
}

@test "an expired lease past max-attempts is buried: max attempts / lease expired" {
	config q 'lease = 200ms' 'max-attempts = 1' 'backoff = 0'
	printf 'the body\n' | mq-send q
	p=$(mq-recv -c q)
	wait_for 5 time_past "$(name_time "$p")"
	run -1 mq-recv q
	[ -z "$output" ]
	d=$(only_file q dead)
	[ "$(count q new)" -eq 0 ]
	[ "$(count q cur)" -eq 0 ]
	[ "$(name_attempts "$d")" -eq 1 ]
	[ "$(sed -n 1p "$d")" = "Dead-Reason: max attempts" ]
	[ "$(header_of "$d" Dead-Status)" = "lease expired" ]
	[ "$(header_of "$d" Dead-Attempts)" = 1 ]
	[ "$(body_of "$d")" = "the body" ]
	run -2 mq-ack q "$p"
}

@test "mq-recv -w wakes when a lease expires (timer) and takes the message back" {
	config q 'lease = 600ms' 'backoff = 0'
	echo again | mq-send q
	p=$(mq-recv -c q)
	dl=$(name_time "$p")
	run -0 mq-recv -w 10 q
	[ "$output" = again ]
	[ "$(now_ms)" -ge "$dl" ]
	# well before the 10 s wait would have run out
	[ "$(now_ms)" -lt $((dl + 5000)) ]
	run -2 mq-ack q "$p"
}

@test "mq-recv -x heartbeats: a handler sleeping 3x the lease is delivered once" {
	local T=$BATS_TEST_TMPDIR
	config q 'lease = 1s' 'backoff = 0'
	echo job | mq-send q
	spawn mq-recv -x "echo \"\$MQ_ATTEMPT\" >>'$T/runs'; sleep 3" q
	pid=$BG_PID
	wait_for 10 test -s "$T/runs"
	first=$(files q cur)
	: >"$T/second"
	: >"$T/names"
	# meanwhile a second consumer keeps asking: it must never get the job
	deadline=$(($(now_ms) + 15000))
	while ! pid_gone "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do
		files q cur >>"$T/names"
		rc=0
		mq-recv -n 0 q >>"$T/second" 2>&1 || rc=$?
		if [ "$rc" -ne 1 ]; then
			echo "second consumer exited $rc" >>"$T/second"
		fi
		sleep 0.1
	done
	wait_pid 10 "$pid"
	[ "$WAIT_STATUS" -eq 0 ]
	cat "$T/second"
	[ ! -s "$T/second" ]
	[ "$(cat "$T/runs")" = 1 ]
	# the lease was extended while it ran: the claim was renamed at least once
	[ "$(sort -u "$T/names" | grep -c .)" -ge 2 ]
	grep -qvxF "$first" "$T/names"
	[ "$(messages_anywhere q)" -eq 0 ]
}

# race_round I [--extend]: one round of the race.  A acks (or extends) the
# first claim while B claims and acks; they run at once, around the lease
# deadline.
race_round() {
	local i=$1 how=${2:-} T=$BATS_TEST_TMPDIR p1 dl a b a_pid b_pid
	echo "m$i" | mq-send q
	p1=$(mq-recv -c q)
	if [ "$how" = --extend ]; then
		# a short deadline of its own, to save the wait: extended to 20 ms
		p1=$(mq-ack --extend 20ms q "$p1")
	fi
	dl=$(name_time "$p1")
	rm -f "$T/a" "$T/a.out" "$T/b" "$T/b2" "$T/p2"
	# from 3 ms before the deadline to 2 ms after it
	wait_for 5 time_past $((dl - 3 + i % 6))
	if [ "$how" = --extend ]; then
		spawn sh -c "mq-ack --extend 1m q '$p1' >'$T/a.out' 2>/dev/null; echo \$? >'$T/a'"
	else
		spawn sh -c "mq-ack q '$p1' 2>/dev/null; echo \$? >'$T/a'"
	fi
	a_pid=$BG_PID
	spawn sh -c "mq-recv -c q >'$T/p2' 2>/dev/null; rc=\$?; echo \$rc >'$T/b'
		if [ \$rc = 0 ]; then mq-ack q \"\$(cat '$T/p2')\"; echo \$? >'$T/b2'; fi"
	b_pid=$BG_PID
	wait_pid 20 "$a_pid"
	wait_pid 20 "$b_pid"
	a=$(cat "$T/a")
	b=$(cat "$T/b")
	echo "round $i: first ack$how $a, second claim $b" >&2
	case $a.$b in
	0.1) # the first consumer acked (extended) in time; the second got nothing
		[ ! -s "$T/p2" ]
		if [ "$how" = --extend ]; then
			# still held by the first consumer, under its new name
			[ "$(files q cur)" = "$(cat "$T/a.out")" ]
			mq-ack q "$(cat "$T/a.out")"
		fi ;;
	2.0) # taken back first: the first consumer lost, the second delivery acked
		[ ! -s "$T/a.out" ]
		[ "$(cat "$T/b2")" = 0 ]
		[ "$(name_id "$(cat "$T/p2")")" = "$(name_id "$p1")" ]
		[ "$(name_attempts "$(cat "$T/p2")")" -eq 2 ] ;;
	*)
		echo "round $i: outcome not allowed" >&2
		return 1 ;;
	esac
	# acked exactly once in all: nothing left anywhere, nothing buried
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "race: ack at lease expiry vs a second consumer's claim: exactly one ack wins (20 rounds)" {
	config q 'lease = 200ms' 'backoff = 0'
	for i in $(seq 1 20); do
		race_round "$i"
	done
}

@test "race: --extend at lease expiry vs a second consumer's claim: one holder (8 rounds)" {
	config q 'lease = 200ms' 'backoff = 0'
	for i in $(seq 1 8); do
		race_round "$i" --extend
	done
}

@test "race: 4 consumers find one expired lease: one delivery, the attempt counted once" {
	local T=$BATS_TEST_TMPDIR r i pids
	# a long lease, so the winner's new claim cannot expire during the round
	config q 'lease = 1m' 'backoff = 0'
	for r in 1 2 3 4 5; do
		echo "m$r" | mq-send q
		p=$(mq-recv -c q)
		# its deadline passed (the deadline is only the name)
		mv "$p" "$(dirname "$p")/$(($(now_ms) - 1)).$(name_id "$p").1"
		pids=()
		rm -f "$T"/c.* "$T"/rc.*
		for i in 1 2 3 4; do
			spawn sh -c "mq-recv -c q >'$T/c.$i' 2>&1; echo \$? >'$T/rc.$i'"
			pids+=("$BG_PID")
		done
		for i in "${pids[@]}"; do wait_pid 20 "$i"; done
		cat "$T"/c.* >&2
		[ "$(cat "$T"/rc.* | grep -cx 0)" -eq 1 ]
		[ "$(cat "$T"/rc.* | grep -cx 1)" -eq 3 ]
		p2=$(only_file q cur)
		[ "$(cat "$T"/c.*)" = "$p2" ]
		[ "$(name_attempts "$p2")" -eq 2 ]
		[ "$(count q new)" -eq 0 ]
		mq-ack q "$p2"
	done
	[ "$(messages_anywhere q)" -eq 0 ]
}
