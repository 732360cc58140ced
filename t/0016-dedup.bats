#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Dedup (issue 3): mq-send --id KEY.  A second send of the same key within
# the queue's dedup-window delivers nothing and exits 0 saying so on stderr
# (--strict: exit 3).  The check is atomic across concurrent producers: 8
# parallel senders of one key produce exactly one message.

bats_require_minimum_version 1.5.0
load helper

@test "a second send of the same key delivers nothing, exits 0 with a note" {
	run --separate-stderr -0 mq-send -i --id order-1234 q <<<first
	id=$output
	[ -z "$stderr" ]
	run --separate-stderr -0 mq-send --id order-1234 q <<<second
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mq-send: "*duplicate*"$id"* ]]
	n=$(only_file q new)
	[ "$(name_id "$n")" = "$id" ]
	[ "$(header_of "$n" Dedup-Key)" = order-1234 ]
	[ "$(count q tmp)" -eq 0 ]
	run -0 mq-recv -n 0 q
	[ "$output" = first ]
}

@test "mq-send -i of a duplicate prints the id of the message first sent" {
	id=$(echo a | mq-send -i --id k q)
	run --separate-stderr -0 mq-send -i --id k q <<<b
	[ "$output" = "$id" ]
}

@test "--strict: a duplicate exits 3" {
	echo a | mq-send --id k --strict q
	run --separate-stderr -3 mq-send --id k --strict q <<<b
	check_error mq-send
	[ "$(count q new)" -eq 1 ]
	[ "$(count q tmp)" -eq 0 ]
}

@test "different keys are different messages; keys are exact (no encoding clashes)" {
	for k in a A a/b 'a%2Fb' 'a b' '.a' 'é' 'a_b' 'a-b'; do
		printf '%s\n' "$k" | mq-send --strict --id "$k" q
	done
	[ "$(count q new)" -eq 9 ]
	run -3 mq-send --strict --id 'a/b' q <<<again
	run -3 mq-send --strict --id 'é' q <<<again
	run -3 mq-send --strict --id '.a' q <<<again
	[ "$(count q new)" -eq 9 ]
	# a marker never hides as a dot file or escapes ids/
	[ "$(find "$(qdir q)/ids" -mindepth 1 -maxdepth 1 -type f | wc -l)" -eq 9 ]
}

@test "the key is remembered after the message was consumed (idempotency)" {
	echo once | mq-send --id pay-42 q
	run -0 mq-recv q
	[ "$output" = once ]
	run --separate-stderr -0 mq-send --id pay-42 q <<<twice
	[[ $stderr == *duplicate* ]]
	run -1 mq-recv q
}

@test "the same key in two queues is two messages" {
	echo a | mq-send --strict --id k q1
	echo b | mq-send --strict --id k q2
	[ "$(count q1 new)" -eq 1 ]
	[ "$(count q2 new)" -eq 1 ]
}

@test "8 parallel senders of one --id: exactly one message (5 rounds)" {
	local T=$BATS_TEST_TMPDIR r i pids
	for r in 1 2 3 4 5; do
		pids=()
		for i in 1 2 3 4 5 6 7 8; do
			spawn sh -c "echo 'r$r s$i' | mq-send --id 'key-$r' q 2>'$T/err.$r.$i'; echo \$? >'$T/rc.$r.$i'"
			pids+=("$BG_PID")
		done
		for i in "${pids[@]}"; do wait_pid 30 "$i"; done
		for i in 1 2 3 4 5 6 7 8; do
			[ "$(cat "$T/rc.$r.$i")" = 0 ]
		done
		# seven of them were told they were duplicates
		[ "$(cat "$T"/err.$r.* | grep -c duplicate)" -eq 7 ]
		[ "$(count q new)" -eq "$r" ]
	done
	[ "$(count q tmp)" -eq 0 ]
	run -0 mq-recv -n 0 q
	[ "${#lines[@]}" -eq 5 ]
}

@test "8 parallel --strict senders of one --id: one exits 0, seven exit 3" {
	local T=$BATS_TEST_TMPDIR i pids=()
	for i in 1 2 3 4 5 6 7 8; do
		spawn sh -c "echo $i | mq-send --strict --id same q 2>/dev/null; echo \$? >'$T/rc.$i'"
		pids+=("$BG_PID")
	done
	for i in "${pids[@]}"; do wait_pid 30 "$i"; done
	[ "$(cat "$T"/rc.* | grep -cx 0)" -eq 1 ]
	[ "$(cat "$T"/rc.* | grep -cx 3)" -eq 7 ]
	[ "$(count q new)" -eq 1 ]
}

@test "dedup-window: a send after the window is accepted again" {
	config q 'dedup-window = 1s'
	echo first | mq-send --strict --id k q
	t0=$(now_ms)
	run -3 mq-send --strict --id k q <<<dup
	# bounded: try until accepted, for at most 5 s
	deadline=$((t0 + 5000))
	until mq-send --strict --id k q <<<second 2>/dev/null; do
		[ "$(now_ms)" -lt "$deadline" ]
		sleep 0.1
	done
	# not before the window was over
	[ "$(now_ms)" -ge $((t0 + 900)) ]
	[ "$(count q new)" -eq 2 ]
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'first\nsecond')" ]
	# and the new send opened a new window
	run -3 mq-send --strict --id k q <<<third
}

@test "an old dedup marker no longer applies, and mq-stat --repair removes it" {
	echo a | mq-send --id k q
	touch -d '-2 days' "$(qdir q)/ids/k"
	run -0 mq-stat q
	[ -e "$(qdir q)/ids/k" ] # only looking
	run -0 mq-stat --repair q
	[[ $output == *"repaired q: 1 old dedup markers removed"* ]]
	[ ! -e "$(qdir q)/ids/k" ]
	run --separate-stderr -0 mq-send --id k q <<<b
	[ -z "$stderr" ]
	[ "$(count q new)" -eq 2 ]
}

@test "dedup marker older than the window but not yet swept is not a duplicate" {
	echo a | mq-send --id k q
	touch -d '-2 days' "$(qdir q)/ids/k"
	run --separate-stderr -0 mq-send --strict --id k q <<<b
	[ "$(count q new)" -eq 2 ]
}

@test "--id usage errors exit 64" {
	run --separate-stderr -64 mq-send --strict q <<<x
	check_error mq-send
	run --separate-stderr -64 mq-send -l --id k q <<<x
	check_error mq-send
	run --separate-stderr -64 mq-send --id '' q <<<x
	check_error mq-send
	run --separate-stderr -64 mq-send --id "$(head -c 201 /dev/zero | tr '\0' k)" q <<<x
	check_error mq-send
	[ ! -e "$(qdir q)/new" ] || [ "$(count q new)" -eq 0 ]
}

@test "--id with a control character is refused: it cannot forge headers" {
	run --separate-stderr -64 mq-send --id $'k\nDead-Reason: forged\n\nfake body' q <<<hello
	check_error mq-send
	[[ $stderr == *"control character"* ]]
	run --separate-stderr -64 mq-send --id $'k\tx' q <<<hello
	check_error mq-send
	[ ! -e "$(qdir q)" ]
}
