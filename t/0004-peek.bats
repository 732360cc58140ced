#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-peek: lists messages in every state without claiming anything
# (STATE ID AGE ATTEMPTS SIZE FIRST-LINE), prints one whole message file by
# id, and has a --json form that is valid JSON.

bats_require_minimum_version 1.5.0
load helper

# json_ok: stdin is one JSON document, or one JSON document per line.
json_ok() {
	python3 -c '
import json, sys
s = sys.stdin.read()
assert s.strip(), "no output"
try:
    json.loads(s)
except ValueError:
    for line in s.splitlines():
        if line.strip():
            json.loads(line)
'
}

# listed STATE ID: mq-peek output ($lines) has a line for ID in STATE.
listed() {
	printf '%s\n' "${lines[@]}" | awk -v s="$1" -v id="$2" '$1 == s && $2 == id { f = 1 } END { exit !f }'
}

@test "mq-peek claims nothing" {
	printf '%s\n' a b c | mq-send -l q
	before=$(ls "$MQ_SPOOL/q/new")
	run -0 mq-peek q
	[ "${#lines[@]}" -eq 3 ]
	[ "$(ls "$MQ_SPOOL/q/new")" = "$before" ]
	[ "$(count q cur)" -eq 0 ]
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'a\nb\nc')" ]
}

@test "mq-peek lists state and id of each ready message" {
	ids=$(printf '%s\n' a b c | mq-send -i -l q)
	run -0 mq-peek q
	[ "$(printf '%s\n' "${lines[@]}" | awk '{print $1}' | sort -u)" = ready ]
	[ "$(printf '%s\n' "${lines[@]}" | awk '{print $2}' | sort)" = "$(echo "$ids" | sort)" ]
}

@test "mq-peek shows attempts, size and first line" {
	printf 'first line\nsecond line\n' | mq-send q
	run -0 mq-peek q
	[ "${#lines[@]}" -eq 1 ]
	read -r state id age due attempts size first <<<"${lines[0]}"
	[ "$due" = - ]
	[ "$state" = ready ]
	[ "$attempts" = 0 ]
	# SIZE: the body (11 + 1 + 11 bytes) or the whole file
	[ "$size" = 23 ] || [ "$size" = "$(stat -c %s "$(only_file q new)")" ]
	[ "$first" = "first line" ]
}

@test "mq-peek shows claimed, delayed and dead messages" {
	config q 'backoff = 0'
	c=$(echo claimed | mq-send -i q)
	mq-recv -c q >/dev/null
	d=$(echo delayed | mq-send -i --delay 1h q)
	x=$(echo dead | mq-send -i q)
	mq-nack --dead testing q "$(mq-recv -c q)"
	r=$(echo ready | mq-send -i q)
	run -0 mq-peek q
	[ "${#lines[@]}" -eq 4 ]
	listed claimed "$c"
	listed delayed "$d"
	listed dead "$x"
	listed ready "$r"
	# still nothing changed
	[ "$(count q new)" -eq 2 ]
	[ "$(count q cur)" -eq 1 ]
	[ "$(count q dead)" -eq 1 ]
}

@test "mq-peek QUEUE ID prints the whole message file" {
	id=$(printf 'hello\0world' | mq-send -i -H 'X-Foo: bar' q)
	mq-peek q "$id" >"$BATS_TEST_TMPDIR/out"
	cmp "$(only_file q new)" "$BATS_TEST_TMPDIR/out"
	[ "$(count q new)" -eq 1 ]
}

@test "mq-peek QUEUE ID finds a claimed message" {
	id=$(echo x | mq-send -i q)
	p=$(mq-recv -c q)
	mq-peek q "$id" >"$BATS_TEST_TMPDIR/out"
	cmp "$p" "$BATS_TEST_TMPDIR/out"
	[ -f "$p" ]
}

@test "mq-peek with an unknown id exits 2" {
	echo x | mq-send q
	run --separate-stderr -2 mq-peek q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	check_error mq-peek
	[ -z "$output" ]
}

@test "mq-peek on an empty queue exits 1" {
	echo x | mq-send q
	mq-recv q >/dev/null
	run -1 mq-peek q
	[ -z "$output" ]
}

@test "mq-peek --json output parses" {
	printf 'a "quoted" \\ line\t\n' | mq-send q
	echo claimed | mq-send q
	mq-recv -c q >/dev/null
	echo delayed | mq-send --delay 1h q
	run -0 mq-peek --json q
	json_ok <<<"$output"
}

@test "mq-peek --json output parses with binary bodies" {
	printf '\0\377\376binary\n' | mq-send q
	printf '\303\251t\303\251\n' | mq-send q
	mq-peek --json q >"$BATS_TEST_TMPDIR/out"
	json_ok <"$BATS_TEST_TMPDIR/out"
}

@test "mq-peek ids feed mq-ack (mq-peek | mq-ack q -)" {
	printf '%s\n' 1 2 | mq-send -l q
	mq-recv -c -n 0 q >/dev/null
	mq-peek q | awk '{print $2}' | mq-ack q -
	[ "$(messages_anywhere q)" -eq 0 ]
}

@test "mq-peek on a terminal heads its columns; a pipe gets only the rows" {
	echo x | mq-send q
	run -0 script -qec "mq-peek q" /dev/null
	[[ ${lines[0]} == "STATE"*"ID"*"AGE"*"DUE"*"ATT"*"SIZE"*"FIRST LINE"* ]]
	[[ ${lines[1]} == ready* ]]
	run -0 mq-peek q
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} == ready* ]]
}

@test "mq-peek DUE: a delayed message's time to go, a claim's lease; AGE stays its age" {
	config q 'lease = 10m'
	d=$(echo later | mq-send -i --delay 23d q)
	c=$(echo now | mq-send -i q)
	mq-recv -c q >/dev/null
	run -0 mq-peek q
	local state id age due rest
	read -r state id age due rest < <(printf '%s\n' "${lines[@]}" | grep "$d")
	[ "$state" = delayed ]
	[[ $age =~ ^[0-9]s$ ]] # sent just now, whenever it is due
	[[ $due =~ ^\+2[23]d$ ]]
	read -r state id age due rest < <(printf '%s\n' "${lines[@]}" | grep "$c")
	[ "$state" = claimed ]
	[[ $due =~ ^\+(9|10)m$ ]]
}

@test "mq-peek --json QUEUE ID: the message as one object, headers in order, body as text or base64" {
	id=$(printf 'Hi <script>alert(1)</script>\n' | mq-send -i -H 'X-Order: 42' q)
	run -0 mq-peek --json q "$id"
	python3 -c '
import json, sys
o = json.loads(sys.argv[1])
assert o["id"] == sys.argv[2] and o["state"] == "ready", o
names = [h["name"] for h in o["headers"]]
assert names[0] == "Id" and "X-Order" in names, names
assert [h["value"] for h in o["headers"] if h["name"] == "X-Order"] == ["42"]
assert o["body"] == "Hi <script>alert(1)</script>\n" and o["body_size"] == 29, o
assert o["body_truncated"] is False and "body_base64" not in o' "$output" "$id"
	head -c 300 /dev/urandom >"$BATS_TEST_TMPDIR/bin"
	printf '\0' >>"$BATS_TEST_TMPDIR/bin"
	b=$(mq-send -i q <"$BATS_TEST_TMPDIR/bin")
	run -0 mq-peek --json q "$b"
	python3 -c '
import base64, json, sys
o = json.loads(sys.argv[1])
assert "body" not in o
assert base64.b64decode(o["body_base64"]) == open(sys.argv[2], "rb").read()' "$output" "$BATS_TEST_TMPDIR/bin"
	run --separate-stderr -2 mq-peek --json q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	check_error mq-peek
}
