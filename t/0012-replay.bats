#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-replay (issue 3): dead letters (and, with --from done, kept acked
# messages) back to new/ with attempts reset: by id, from stdin, --all, by
# burial time (--since/--until, times or durations ago), into another queue
# (--to), or only listed (--dry-run).  Prints each id moved; exit 1 when
# nothing matched.

bats_require_minimum_version 1.5.0
load helper

# bury BODY [Q]: send BODY, claim it, bury it; print its id.
bury() {
	local q=${2:-q} id p
	id=$(printf '%s\n' "$1" | mq-send -i "$q")
	p=$(mq-recv -c "$q")
	[ "$(name_id "$p")" = "$id" ] || return 1
	mq-nack --dead "test burial" "$q" "$p" || return 1
	echo "$id"
}

# dead_file ID [Q]: the dead/ file of ID.
dead_file() {
	files "${2:-q}" dead | grep "\.$1\."
}

# set_dead_time ID MS [Q]: make ID's burial time MS (the time is the name).
set_dead_time() {
	local f
	f=$(dead_file "$1" "${3:-q}") || return 1
	mv "$f" "$(dirname "$f")/$2.$1.$(name_attempts "$f")"
}

@test "replay by id: only that message goes back to new/ with attempts 0" {
	a=$(bury one)
	b=$(bury two)
	c=$(bury three)
	[ "$(count q dead)" -eq 3 ]
	t0=$(now_ms)
	run --separate-stderr -0 mq-replay q "$b"
	[ "$output" = "$b" ]
	n=$(only_file q new)
	[ "$(name_id "$n")" = "$b" ]
	[ "$(name_attempts "$n")" -eq 0 ]
	[[ $(basename "$n") == *.0 ]]
	# due now
	[ "$(name_time "$n")" -ge "$t0" ]
	[ "$(name_time "$n")" -le "$(now_ms)" ]
	[ "$(count q dead)" -eq 2 ]
	dead_file "$a"
	dead_file "$c"
	run -0 mq-recv q
	[ "$output" = two ]
	run -1 mq-recv q
}

@test "replay of several ids, and of ids from stdin (-), e.g. mq-peek's output" {
	a=$(bury one)
	b=$(bury two)
	c=$(bury three)
	d=$(bury four)
	run -0 mq-replay q "$a" "$c"
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' "$a" "$c" | sort)" ]
	[ "$(count q new)" -eq 2 ]
	run -0 mq-replay q - <<<"$b"
	[ "$output" = "$b" ]
	# mq-peek's lines carry the id in their second field
	mq-peek q | grep '^dead' >"$BATS_TEST_TMPDIR/peek"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/peek")" -eq 1 ]
	run -0 mq-replay q - <"$BATS_TEST_TMPDIR/peek"
	[ "$output" = "$d" ]
	[ "$(count q dead)" -eq 0 ]
	[ "$(count q new)" -eq 4 ]
}

@test "replay --all moves every dead letter; bodies are delivered as sent" {
	a=$(bury one)
	b=$(bury two)
	c=$(bury three)
	run -0 mq-replay --all q
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' "$a" "$b" "$c" | sort)" ]
	[ "$(count q dead)" -eq 0 ]
	[ "$(count q new)" -eq 3 ]
	for f in $(files q new); do
		[ "$(name_attempts "$f")" -eq 0 ]
	done
	run -0 mq-recv -n 0 q
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' one three two)" ]
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "a replayed message gets its max-attempts again; buried twice, newest reason first" {
	config q 'max-attempts = 2' 'backoff = 0'
	echo job | mq-send q
	mq-recv -x 'exit 3' q || true
	mq-recv -x 'exit 3' q || true
	d=$(only_file q dead)
	id=$(name_id "$d")
	[ "$(header_of "$d" Dead-Reason)" = "max attempts" ]
	run -0 mq-replay q "$id"
	mq-recv -x 'exit 3' q || true
	[ "$(count q dead)" -eq 0 ]
	[ "$(name_attempts "$(only_file q new)")" -eq 1 ]
	run -75 mq-recv -x 'exit 65' q
	d=$(only_file q dead)
	# the most recent burial's headers first, the earlier ones kept below
	grep '^Dead-Reason: ' "$d" >"$BATS_TEST_TMPDIR/reasons"
	[[ $(sed -n 1p "$BATS_TEST_TMPDIR/reasons") == "Dead-Reason: handler said bury"* ]]
	[ "$(sed -n 2p "$BATS_TEST_TMPDIR/reasons")" = "Dead-Reason: max attempts" ]
	[ "$(sed -n 1p "$d")" = "$(sed -n 1p "$BATS_TEST_TMPDIR/reasons")" ]
	[ "$(body_of "$d")" = job ]
}

@test "replay exits 1 and prints nothing when nothing matched" {
	echo x | mq-send q
	mq-recv q
	run --separate-stderr -1 mq-replay --all q
	[ -z "$output" ]
	a=$(bury one)
	run --separate-stderr -1 mq-replay q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	[ -z "$output" ]
	run -1 mq-replay q - </dev/null
	[ -z "$output" ]
	run -1 mq-replay --since 1h --until 30m q
	dead_file "$a"
	[ "$(count q new)" -eq 0 ]
}

@test "replay --dry-run and -n list what would move and move nothing" {
	a=$(bury one)
	b=$(bury two)
	before=$(files q dead)
	run -0 mq-replay --dry-run --all q
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' "$a" "$b" | sort)" ]
	run -0 mq-replay -n q "$b"
	[ "$output" = "$b" ]
	[ "$(files q dead)" = "$before" ]
	[ "$(count q new)" -eq 0 ]
	run -1 mq-replay -n q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	# nor does it make the --to queue
	run -0 mq-replay -n --all --to other q
	[ ! -e "$MQ_SPOOL/other" ]
}

@test "mq-peek shows a replayed message by its body, not by its old dead reason" {
	a=$(bury one)
	run -0 mq-peek q
	[[ $output == *"test burial"* ]]
	mq-replay q "$a"
	run -0 mq-peek q
	[[ $output == ready*" one" ]]
	[[ $output != *"test burial"* ]]
	run -0 mq-peek --json q
	[[ $output != *dead_reason* ]]
}

@test "replay by time range: --since and --until as durations ago" {
	a=$(bury old)
	b=$(bury middle)
	c=$(bury new)
	now=$(now_ms)
	set_dead_time "$a" $((now - 3 * 3600000))
	set_dead_time "$b" $((now - 2 * 3600000))
	# c: buried just now
	run -0 mq-replay -n --since 150m --until 90m q
	[ "$output" = "$b" ]
	run -0 mq-replay -n --since 1h q
	[ "$output" = "$c" ]
	run -0 mq-replay -n --until 1h q
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' "$a" "$b" | sort)" ]
	run -0 mq-replay --since 150m --until 90m q
	[ "$output" = "$b" ]
	[ "$(name_id "$(only_file q new)")" = "$b" ]
	[ "$(count q dead)" -eq 2 ]
}

@test "replay by time range: --since/--until as @EPOCH and ISO times" {
	a=$(bury first)
	b=$(bury second)
	c=$(bury third)
	s=$(($(now_ms) / 1000 - 86400))
	set_dead_time "$a" $(((s - 600) * 1000))
	set_dead_time "$b" $((s * 1000))
	set_dead_time "$c" $(((s + 600) * 1000))
	# bounds are inclusive
	run -0 mq-replay -n --since "@$s" --until "@$s" q
	[ "$output" = "$b" ]
	iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
	run -0 mq-replay -n --since "$(iso $((s - 1)))" --until "$(iso $((s + 1)))" q
	[ "$output" = "$b" ]
	run -0 mq-replay -n --since "$(iso $((s - 1)))" q
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' "$b" "$c" | sort)" ]
	run -0 mq-replay --until "@$((s + 1))" q
	[ "$(printf '%s\n' "${lines[@]}" | sort)" = "$(printf '%s\n' "$a" "$b" | sort)" ]
	[ "$(count q new)" -eq 2 ]
	dead_file "$c"
}

@test "replay --to another queue (created if missing)" {
	a=$(bury one)
	b=$(bury two)
	[ ! -e "$(qdir retry)" ]
	run -0 mq-replay --to retry q "$a"
	[ "$output" = "$a" ]
	n=$(only_file retry new)
	[ "$(name_id "$n")" = "$a" ]
	[ "$(name_attempts "$n")" -eq 0 ]
	[ "$(count q new)" -eq 0 ]
	[ "$(count q dead)" -eq 1 ]
	run -0 mq-recv retry
	[ "$output" = one ]
	run -1 mq-recv q
}

@test "replay --from done brings back acked messages kept with keep-acked" {
	config q 'keep-acked = 1h'
	id=$(echo 'already done' | mq-send -i q)
	run -0 mq-recv q
	[ "$output" = 'already done' ]
	f=$(only_file q "done")
	[ "$(name_id "$f")" = "$id" ]
	[ "$(count q new)" -eq 0 ]
	# dead/ is the default source: nothing there
	run -1 mq-replay --all q
	run -0 mq-replay --from "done" --all q
	[ "$output" = "$id" ]
	[ "$(count q "done")" -eq 0 ]
	[ "$(name_attempts "$(only_file q new)")" -eq 0 ]
	run -0 mq-recv q
	[ "$output" = 'already done' ]
}

@test "replay --from done by id and by time" {
	config q 'keep-acked = 1d'
	a=$(echo a | mq-send -i q)
	b=$(echo b | mq-send -i q)
	mq-recv -n 0 q >/dev/null
	[ "$(count q "done")" -eq 2 ]
	run -0 mq-replay --from "done" q "$b"
	[ "$output" = "$b" ]
	run -0 mq-replay --from "done" --since 1h q
	[ "$output" = "$a" ]
}

@test "a replayed expired message is delivered (its expiry is cleared)" {
	id=$(echo stale | mq-send -i --ttl 200ms q)
	wait_for 5 time_past $(($(now_ms) + 250))
	run -1 mq-recv q
	[ "$(header_of "$(only_file q dead)" Dead-Reason)" = expired ]
	run -0 mq-replay q "$id"
	run -0 mq-recv q
	[ "$output" = stale ]
}

@test "mq-replay of a queue that does not exist exits 2" {
	mkdir "$MQ_SPOOL"
	run --separate-stderr -2 mq-replay --all nosuch
	check_error mq-replay
	[ ! -e "$(qdir nosuch)" ]
}

@test "mq-replay usage errors exit 64" {
	run --separate-stderr -64 mq-replay q
	check_error mq-replay
	run --separate-stderr -64 mq-replay --all q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	check_error mq-replay
	run --separate-stderr -64 mq-replay --from nowhere --all q
	check_error mq-replay
	run --separate-stderr -64 mq-replay --since yesterday-ish q
	check_error mq-replay
	run --separate-stderr -64 mq-replay --all .bad
	check_error mq-replay
}
