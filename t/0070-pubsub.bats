#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Publish/subscribe (issue 10, spool-layout.md 15): mq-sub add/rm/ls,
# mq-send --topic into every subscriber by hard links, the subscribers that
# cannot take a message, the repair of publishes killed half way.

bats_require_minimum_version 1.5.0
load helper

teardown() {
	common_teardown
	if [ -n "${SMALL:-}" ]; then
		umount "$SMALL"
	fi
}

# ids Q: the ids of every message file of Q in new/ and cur/, sorted
ids() { { files "$1" new; files "$1" cur; } | xargs -r -n1 basename | cut -d. -f2 | sort; }

# bodies Q: the body of every message Q holds in new/, sorted
bodies() {
	local f
	for f in $(files "$1" new); do
		body_of "$f"
		echo
	done | sort
}

@test "mq-sub add, ls and rm: one TOPIC QUEUE pair per line, files ls can read" {
	run -0 mq-sub add orders stock shipping
	run -0 mq-sub add orders sms
	run -0 mq-sub add invoices billing
	run -0 mq-sub ls
	[ "$output" = "$(printf 'invoices billing\norders shipping\norders sms\norders stock')" ]
	run -0 mq-sub ls orders
	[ "${#lines[@]}" -eq 3 ]
	# the subscribers are queues now, and files of the topic's directory
	[ -d "$(qdir sms)/new" ]
	[ "$(ls "$MQ_SPOOL/.topics/orders")" = "$(printf 'shipping\nsms\nstock')" ]
	# adding again is no error and changes nothing
	run -0 mq-sub add orders sms
	run -0 mq-sub ls orders
	[ "${#lines[@]}" -eq 3 ]
	run -0 mq-sub rm orders sms
	run -0 mq-sub ls orders
	[ "$output" = "$(printf 'orders shipping\norders stock')" ]
	# a queue that is not subscribed: named, exit 2, the others still removed
	run --separate-stderr -2 mq-sub rm orders nothere stock
	check_error mq-sub
	[[ $stderr == *"queue nothere is not subscribed to topic orders"* ]]
	run -0 mq-sub ls orders
	[ "$output" = "orders shipping" ]
	run -1 mq-sub ls nosuch
	[ -z "$output" ]
}

@test "bad topic and queue names are refused with the queue-name rule, nothing made" {
	for bad in .hidden -opt a/b '' "$(printf 'x%.0s' {1..65})"; do
		before=$(snapshot)
		run --separate-stderr -64 mq-sub add "$bad" q
		check_error mq-sub
		[[ $stderr == *"bad topic name"* ]]
		run --separate-stderr -64 mq-sub add t "$bad"
		check_error mq-sub
		[[ $stderr == *"bad queue name"* ]]
		run --separate-stderr -64 mq-send --topic "$bad" <<<x
		check_error mq-send
		[[ $stderr == *"bad topic name"* ]]
		[ "$(snapshot)" = "$before" ]
	done
	run -64 mq-sub
	run -64 mq-sub frob t q
	run -64 mq-sub add t
}

@test "publish with no subscriber is refused: one line, exit 67, nothing stored" {
	run --separate-stderr -67 mq-send --topic orders <<<x
	check_error mq-send
	[[ $stderr == *"topic orders has no subscribers: not sent"* ]]
	mq-sub add orders stock
	mq-sub rm orders stock
	before=$(snapshot)
	run --separate-stderr -67 mq-send --topic orders <<<x
	check_error mq-send
	[ "$(snapshot)" = "$before" ]
}

@test "three subscribers, one consumer offline: all get every message, the offline one when it starts" {
	mq-sub add orders stock shipping sms
	export OUT="$BATS_TEST_TMPDIR/out"
	# stock and shipping have consumers waiting; sms's is not running
	spawn mq-recv -f -x 'cat >>"$OUT.stock"' stock
	wait_for 10 has_inotify "$BG_PID"
	spawn mq-recv -f -x 'cat >>"$OUT.shipping"' shipping
	wait_for 10 has_inotify "$BG_PID"
	for i in 1 2 3 4 5; do
		echo "order $i changed" | mq-send --topic orders
	done
	printf 'order 6 changed\norder 7 changed\n' | mq-send -l --topic orders
	wait_for 10 count_is 0 stock new
	wait_for 10 count_is 0 shipping new
	wait_for 10 count_is 0 stock cur
	wait_for 10 count_is 0 shipping cur
	[ "$(cat "$OUT.stock")" = "$(printf 'order %s changed\n' 1 2 3 4 5 6 7)" ]
	[ "$(cat "$OUT.shipping")" = "$(printf 'order %s changed\n' 1 2 3 4 5 6 7)" ]
	# sms kept all of them meanwhile, and gets them once it starts
	[ "$(count sms new)" -eq 7 ]
	run -0 mq-recv -n 0 -x 'cat >>"$OUT.sms"' sms
	[ "$(cat "$OUT.sms")" = "$(printf 'order %s changed\n' 1 2 3 4 5 6 7)" ]
	[ "$(count sms new)" -eq 0 ]
	"$BATS_TEST_DIRNAME/spool-check" -e "$MQ_SPOOL"
}

@test "one inode for every subscriber: the link count falls as they ack" {
	mq-sub add orders stock shipping sms
	id=$(mq-send -i --topic orders <<<hello)
	local ino=
	for q in stock shipping sms; do
		f=$(only_file "$q" new)
		[ "$(name_id "$f")" = "$id" ]
		[ "$(body_of "$f")" = hello ]
		[ -z "$ino" ] || [ "$(stat -c %i "$f")" = "$ino" ]
		ino=$(stat -c %i "$f")
		[ "$(stat -c %h "$f")" -eq 3 ]
	done
	# nothing left behind in the topic's staging directory or any tmp/
	[ -z "$(ls -A "$MQ_SPOOL/.topics/orders/.pub")" ]
	[ "$(count stock tmp)" -eq 0 ]
	mq-recv stock >/dev/null
	[ "$(stat -c %h "$(only_file sms new)")" -eq 2 ]
	mq-recv shipping >/dev/null
	[ "$(stat -c %h "$(only_file sms new)")" -eq 1 ]
	# every option of mq-send: headers, --ttl, --delay, FILE arguments
	echo one >"$BATS_TEST_TMPDIR/f1"
	echo two >"$BATS_TEST_TMPDIR/f2"
	run -0 mq-send -i -H 'X-Order: 7' --ttl 2h --delay 1h --topic orders \
		"$BATS_TEST_TMPDIR/f1" "$BATS_TEST_TMPDIR/f2"
	[ "${#lines[@]}" -eq 2 ]
	for q in stock shipping sms; do
		[ "$(ids "$q" | grep -c -e "${lines[0]}" -e "${lines[1]}")" -eq 2 ]
		for f in $(files "$q" new); do
			[ "$(name_id "$f")" = "$id" ] && continue
			[ "$(header_of "$f" X-Order)" = 7 ]
			[ -n "$(header_of "$f" Expires)" ]
			[ "$(stat -c %h "$f")" -eq 3 ]
			[ "$(name_time "$f")" -gt "$(now_ms)" ] # delayed
		done
	done
}

@test "a full subscriber does not block the others, and the exit status says so" {
	mq-sub add orders stock shipping sms
	config sms 'max-length = 1'
	mq-send --topic orders <<<first
	run --separate-stderr -5 mq-send -i --topic orders <<<second
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "mq-send: warning: topic orders: subscriber sms: queue sms is full"*"not sent to it" ]]
	[ "${#lines[@]}" -eq 1 ] # it was sent: its id
	[ "$(count stock new)" -eq 2 ]
	[ "$(count shipping new)" -eq 2 ]
	[ "$(count sms new)" -eq 1 ]
	# a subscriber whose queue was removed: named, the others get it
	rm -rf "$(qdir shipping)"
	run --separate-stderr -5 mq-send --topic orders <<<third
	[[ $stderr == *"subscriber shipping: the queue was removed: not sent to it"* ]]
	[ "$(count stock new)" -eq 3 ]
	[ ! -e "$(qdir shipping)" ]
	# none could take it: exit 75, nothing stored anywhere
	config stock 'max-length = 1'
	run --separate-stderr -75 mq-send --topic orders <<<fourth
	[[ ${stderr_lines[-1]} == "mq-send: topic orders: no subscriber could take it: not sent" ]]
	[ "$(messages_anywhere stock)" -eq 3 ]
	[ "$(messages_anywhere sms)" -eq 1 ]
	[ -z "$(ls -A "$MQ_SPOOL/.topics/orders/.pub")" ]
	run -1 grep -rq fourth "$MQ_SPOOL"
}

@test "--id twice does not duplicate into the subscribers that have it; the one that was full gets it" {
	mq-sub add orders stock shipping sms
	config sms 'max-length = 1'
	mq-send --topic orders <<<filler
	run --separate-stderr -5 mq-send -i --id order-7 --topic orders <<<changed
	first=${lines[0]}
	[ "$(count stock new)" -eq 2 ]
	[ "$(count sms new)" -eq 1 ]
	# sms has room again: a retry goes to sms only
	mq-recv sms >/dev/null
	run --separate-stderr -0 mq-send -i --id order-7 --topic orders <<<changed
	[ "$(count stock new)" -eq 2 ]
	[ "$(count shipping new)" -eq 2 ]
	[ "$(count sms new)" -eq 1 ]
	[[ $stderr == *"subscriber shipping: duplicate of $first"* ]]
	[[ $stderr == *"subscriber stock: duplicate of $first"* ]]
	# everyone has it now: a duplicate, --strict says so
	run --separate-stderr -3 mq-send -i --strict --id order-7 --topic orders <<<changed
	[ "$output" = "$first" ]
	for q in stock shipping sms; do
		[ "$(ids "$q" | grep -c .)" -eq "$( [ $q = sms ] && echo 1 || echo 2)" ]
		[ "$(grep -l '^Dedup-Key: order-7$' $(files "$q" new) | wc -l)" -eq 1 ]
	done
	"$BATS_TEST_DIRNAME/spool-check" -e "$MQ_SPOOL"
}

@test "unsubscribe keeps what is queued; later publishes no longer arrive" {
	mq-sub add orders stock sms
	mq-send --topic orders <<<one
	mq-sub rm orders sms
	mq-send --topic orders <<<two
	[ "$(count sms new)" -eq 1 ]
	[ "$(body_of "$(only_file sms new)")" = one ]
	[ "$(count stock new)" -eq 2 ]
	run -0 mq-recv sms
	[ "$output" = one ]
}

@test "a topic that keeps: what is sent before the first subscriber goes to it" {
	run -0 mq-sub keep orders
	run --separate-stderr -0 mq-send --topic orders <<<early
	[[ $stderr == *"kept for the first"* ]]
	[ "$(ls "$MQ_SPOOL/.topics/orders/.kept" | wc -l)" -eq 1 ]
	run -0 mq-stat
	[[ $output == *"topic orders: keeps what it is sent until its first subscriber: 1 kept"* ]]
	mq-sub add orders stock shipping
	[ "$(body_of "$(only_file stock new)")" = early ]
	[ "$(body_of "$(only_file shipping new)")" = early ]
	[ "$(stat -c %h "$(only_file stock new)")" -eq 2 ]
	[ -z "$(ls -A "$MQ_SPOOL/.topics/orders/.kept")" ]
	# a later subscriber does not get it again
	mq-sub add orders sms
	[ "$(count sms new)" -eq 0 ]
	run -0 mq-sub refuse orders
	mq-sub rm orders stock shipping sms
	run -67 mq-send --topic orders <<<late
}

@test "mq-stat and mq-peek show each topic's subscribers with their backlog, --json too" {
	mq-sub add orders stock shipping
	mq-send --topic orders <<<a
	mq-send --topic orders <<<b
	mq-recv -c stock >/dev/null
	run -0 mq-stat
	[[ $output == *TOPIC*SUBSCRIBER*READY*DELAYED*INFLIGHT*DEAD*COPIES* ]]
	[ "$(printf '%s\n' "${lines[@]}" | awk '$1 == "orders" && $2 == "stock"' | tr -s ' ')" = "orders stock 1 0 1 0 0" ]
	[ "$(printf '%s\n' "${lines[@]}" | awk '$1 == "orders" && $2 == "shipping"' | tr -s ' ')" = "orders shipping 2 0 0 0 0" ]
	run -0 mq-stat --json stock
	[ "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[0]["topics"][0]["topic"], d[0]["ready"])' <<<"$output")" = "orders 1" ]
	run -0 mq-peek --topic orders
	[ "$output" = "$(printf 'orders shipping 2 0 0 0 0\norders stock 1 0 1 0 0')" ]
	run -0 mq-peek --json --topic orders
	[ "$(python3 -c 'import json,sys; print(" ".join("%s:%d:%d" % (o["queue"], o["ready"], o["in_flight"]) for o in json.load(sys.stdin)))' <<<"$output")" = "shipping:2:0 stock:1:1" ]
	run -1 mq-peek --topic nosuch
}

@test "EXDEV: a subscriber on another file system gets a copy, and mq-stat says so" {
	small_disk
	mq-sub add orders stock
	mkdir "$SMALL/far"
	ln -s "$SMALL/far" "$(qdir far)"
	mq-sub add orders far
	run -0 mq-send --topic orders <<<hello
	[ "$(body_of "$(only_file far new)")" = hello ]
	[ "$(body_of "$(only_file stock new)")" = hello ]
	[ "$(stat -c %h "$(only_file stock new)")" -eq 1 ]
	run -0 mq-stat
	[[ $output == *"topic orders: 1 messages copied into far instead of linked"* ]]
	run -0 mq-peek --topic orders
	[ "${lines[0]}" = "orders far 1 0 0 0 1" ]
}

# publish N: 20 messages in one batch (FILE arguments) to topic t, in the
# background, killed after a random 0-20 ms; records its bodies as sent when
# it exited 0.  Every other one without syncs, which makes it fast enough to
# be killed in all its steps (a kill is not a power loss: what was done stays).
publish_killed() {
	local n=$1 j args=()
	for j in $(seq 1 20); do
		echo "p$n-m$j" >"$T/in/$n.$j"
		args+=("$T/in/$n.$j")
	done
	[ $((n % 2)) -eq 0 ] && args+=(--no-sync)
	mq-send --topic t "${args[@]}" 3>&- 2>/dev/null &
	local pid=$!
	sleep "0.0$(printf '%02d' $((RANDOM % 21)))"
	kill -9 "$pid" 2>/dev/null || true
	if wait "$pid" 2>/dev/null; then
		for j in $(seq 1 20); do echo "p$n-m$j"; done >>"$T/sent"
	fi
}

@test "publishes killed at random moments: after a repair each message is in every subscriber once, or in none" {
	T=$BATS_TEST_TMPDIR
	mkdir "$T/in"
	: >"$T/sent"
	mq-sub add t s1 s2 s3
	for n in $(seq 1 30); do
		publish_killed "$n"
	done
	staged=$(ls -A "$MQ_SPOOL/.topics/t/.pub" | wc -l)
	echo "staged before the repair: $staged"
	run -0 mq-stat --repair
	echo "$output" | grep 'repaired topics' || true
	[ -z "$(ls -A "$MQ_SPOOL/.topics/t/.pub")" ]
	for q in s1 s2 s3; do
		bodies $q >"$T/has.$q"
		# once at most
		[ -z "$(uniq -d "$T/has.$q")" ]
	done
	# all or none: the three hold the same messages
	cmp "$T/has.s1" "$T/has.s2"
	cmp "$T/has.s1" "$T/has.s3"
	# what was reported sent is there
	[ -z "$(sort "$T/sent" | comm -23 - "$T/has.s1")" ]
	"$BATS_TEST_DIRNAME/spool-check" -e "$MQ_SPOOL"
	echo "delivered: $(wc -l <"$T/has.s1") of $((30 * 20)), reported sent: $(wc -l <"$T/sent")"
}

@test "a consumer's light repair completes a publish past its commit point, and undoes one before it" {
	mq-sub add t s1 s2
	id=$(mq-send -i --topic t <<<x)
	# as a killed publisher leaves them: one past the commit point (its link
	# still in s2's tmp/), one before it (linked into s1 only)
	f=$(only_file s1 new)
	name=$(basename "$f")
	mv "$(qdir s2)/new/$name" "$(qdir s2)/tmp/$name"
	ln "$f" "$MQ_SPOOL/.topics/t/.pub/$name.go"
	mq-send --topic t <<<y
	g=$(files s1 new | grep -v "$name")
	gname=$(basename "$g")
	rm "$(qdir s2)/new/$gname"
	mv "$g" "$(qdir s1)/tmp/$gname"
	ln "$(qdir s1)/tmp/$gname" "$MQ_SPOOL/.topics/t/.pub/$gname"
	run -0 mq-recv -c s2
	[ "$(name_id "$output")" = "$id" ]
	[ -z "$(ls -A "$MQ_SPOOL/.topics/t/.pub")" ]
	[ "$(count s1 tmp)" -eq 0 ]
	[ "$(count s2 tmp)" -eq 0 ]
	[ "$(ids s1)" = "$id" ]
	[ "$(ids s2)" = "$id" ]
	"$BATS_TEST_DIRNAME/spool-check" -e "$MQ_SPOOL"
}
