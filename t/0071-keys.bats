#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Ordering by key (issue 10, spool-layout.md 16): mq-send --key; while a
# message of a key is claimed or waits for a retry, no later one of that key
# is delivered, to anyone; other keys go on.  Many consumers at once (mq-recv
# and mq-relayd), retries, burials, expiry, delays, a consumer killed while
# it holds a key, replay, topics, and what mq-peek and mq-stat show.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

setup() {
	relayd_setup
	export T
}
teardown() { relayd_teardown; }

# handler: append "start KEY N" and "end KEY N" around a short random nap,
# the body being "KEY N"; fails (exit 3) while $T/fail-KEY-N exists
# (removing it: the next attempt succeeds), buries (65) for "KEY poison".
keyed_handler() {
	handler h <<'EOF'
read k n
echo "start $k $n $MQ_ATTEMPT" >>"$T/log"
sleep 0.0$((RANDOM % 5))
if [ "$n" = poison ]; then echo "end $k $n fail" >>"$T/log"; exit 3; fi
if [ -e "$T/fail-$k-$n" ]; then rm -f "$T/fail-$k-$n"; echo "end $k $n fail" >>"$T/log"; exit 3; fi
echo "end $k $n" >>"$T/log"
EOF
}

# in_order LOG: for every key, its messages started in send order (1, 2,
# ...), each after the end of the one before, and none started twice
# unless it failed before.
in_order() {
	awk '
	$1 == "start" { if (busy[$2] != "") { print "key " $2 ": " $3 " started while " busy[$2] " ran"; bad = 1 }
	                busy[$2] = $3
	                if ($3 != "poison" && $3 != last[$2] && $3 != last[$2] + 1) { print "key " $2 ": " $3 " after " last[$2]; bad = 1 }
	                if ($3 != "poison") last[$2] = $3 }
	$1 == "end" { busy[$2] = "" }
	END { exit bad }' "$1"
}

ends() { grep -c '^end [^ ]* [0-9]*$' "$T/log" 2>/dev/null || echo 0; }
ends_are() { [ "$(ends)" -eq "$1" ]; }

@test "mq-send --key: the key's messages wait in keys/ENC/, its head alone in new/; headers Order-Key and Dedup-Key" {
	id1=$(echo one | mq-send -i --key order-1234 q)
	id2=$(echo two | mq-send -i --key order-1234 --id dedup-7 q)
	id3=$(echo other | mq-send -i --key 'a b/c' q)
	[ "$(count q new)" -eq 2 ]
	[ "$(ls "$MQ_SPOOL/q/keys")" = "$(printf 'a%%20b%%2Fc\norder-1234')" ]
	[ "$(ls "$MQ_SPOOL/q/keys/order-1234" | cut -d. -f2)" = "$(printf '%s\n%s' "$id1" "$id2")" ]
	# the head is one file under two names: new/ and keys/ENC/
	f=$(files q new | grep "$id1")
	[ "$(stat -c %h "$f")" -eq 2 ]
	[ "$(header_of "$f" Order-Key)" = order-1234 ]
	f2=$MQ_SPOOL/q/keys/order-1234/$(ls "$MQ_SPOOL/q/keys/order-1234" | grep "$id2")
	[ "$(header_of "$f2" Order-Key)" = order-1234 ]
	[ "$(header_of "$f2" Dedup-Key)" = dedup-7 ]
	! grep -q '^Key:' "$f2"
	[ "$(header_of "$(files q new | grep "$id3")" Order-Key)" = 'a b/c' ]
	"$BATS_TEST_DIRNAME/spool-check" "$MQ_SPOOL"
}

@test "a bad key is refused with one line and exit 64, nothing stored" {
	mq-send q <<<first
	before=$(snapshot)
	for bad in '' "$(printf 'k%.0s' {1..201})" "$(printf 'a\tb')" "$(printf 'a\nb')"; do
		run --separate-stderr -64 mq-send --key "$bad" q <<<x
		check_error mq-send
		[[ $stderr == *"--key: "* ]]
	done
	for h in 'Order-Key: x' 'Dedup-Key: x' 'Key: x'; do
		run --separate-stderr -64 mq-send -H "$h" q <<<x
		check_error mq-send
		[[ $stderr == *"is set by mq-send itself"* ]]
	done
	[ "$(snapshot)" = "$before" ]
	# 200 bytes is fine
	run -0 mq-send --key "$(printf 'k%.0s' {1..200})" q <<<x
}

@test "4 parallel consumers, 20 keys: each key's messages handled in send order, keys interleaved" {
	keyed_handler
	for n in 1 2 3 4 5 6 7 8 9 10; do
		for k in $(seq 1 20); do
			echo "k$k $n" | mq-send --no-sync --key "k$k" q
		done
	done
	[ "$(count q new)" -eq 20 ]
	for i in 1 2 3 4; do
		spawn mq-recv -f -x "$T/h" q
	done
	wait_for 60 ends_are 200
	in_order "$T/log"
	# every key's ten, once each
	for k in $(seq 1 20); do
		[ "$(grep -c "^end k$k [0-9]*\$" "$T/log")" -eq 10 ]
	done
	# the keys were interleaved: not one key after the other
	[ "$(awk '$1 == "start" { print $2 }' "$T/log" | uniq | wc -l)" -gt 20 ]
	# and ran at the same time: a start while another key's handler ran
	awk '$1 == "start" { if (running > 0) par = 1; running++ } $1 == "end" { running-- }
	     END { exit !par }' "$T/log"
	wait_for 10 count_is 0 q cur
	[ ! -d "$MQ_SPOOL/q/keys/k1" ]
	"$BATS_TEST_DIRNAME/spool-check" -e "$MQ_SPOOL"
}

@test "mq-relayd consumers (concurrency 4) keep each key's order too" {
	keyed_handler
	relayd_conf "consume q $T/h" "	concurrency 4"
	for n in 1 2 3 4 5; do
		for k in 1 2 3 4 5 6; do
			echo "k$k $n" | mq-send --no-sync --key "k$k" q
		done
	done
	start_relayd
	wait_for 60 ends_are 30
	in_order "$T/log"
	awk '$1 == "start" { if (running > 0) par = 1; running++ } $1 == "end" { running-- }
	     END { exit !par }' "$T/log"
	# sent while it runs: inotify wakes it for a head linked into new/
	echo "k1 6" | mq-send --key k1 q
	wait_for 20 ends_are 31
	in_order "$T/log"
}

@test "a retried message holds its key until it succeeds; other keys go on" {
	keyed_handler
	config q "backoff = 1s"
	touch "$T/fail-a-1"
	printf 'a 1\n' | mq-send --key a q
	printf 'a 2\n' | mq-send --key a q
	printf 'b 1\n' | mq-send --key b q
	spawn mq-recv -f -x "$T/h" q
	wait_for 20 ends_are 3
	in_order "$T/log"
	# a 1 failed, b 1 went on meanwhile, a 2 only after a 1 succeeded
	grep -n . "$T/log" >&2
	[ "$(grep -c '^start a 1' "$T/log")" -eq 2 ]
	[ "$(awk '/^end a 1$/ { print NR }' "$T/log")" -lt "$(awk '/^start a 2/ { print NR }' "$T/log")" ]
	[ "$(awk '/^end b 1$/ { print NR }' "$T/log")" -lt "$(awk '/^end a 1$/ { print NR }' "$T/log")" ]
}

@test "while the head waits for a retry the key is held: mq-stat counts it, mq-recv skips the key" {
	printf 'a 1\n' | mq-send --key a q
	printf 'a 2\n' | mq-send --key a q
	printf 'b 1\n' | mq-send --key b q
	p=$(mq-recv -c q)
	[ "$(body_of "$p")" = "a 1" ]
	run -0 mq-stat q
	[[ $output == *"keys q: 2 keys, 1 held, 1 messages waiting behind their head; oldest held: a ("* ]]
	mq-nack --delay 1h q "$(name_id "$p")"
	run -0 mq-recv -n 0 q
	[ "$output" = "b 1" ]
	run -1 mq-recv -n 0 q
	run -0 mq-stat --json q
	echo "$output" | python3 -c '
import json, sys
k = json.load(sys.stdin)[0]["keys"]
assert k["total"] == 1 and k["held"] == 1 and k["waiting"] == 1, k
assert k["oldest_held"] == "a" and k["oldest_held_age"] >= 0, k'
	# made due: the head first, then the one behind it
	mq-replay --now q "$(name_id "$p")"
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'a 1\na 2')" ]
	[ ! -d "$MQ_SPOOL/q/keys/a" ]
}

@test "a poison message going to dead/ releases its key, and so does a burial by the handler" {
	keyed_handler
	config q "max-attempts = 2" "backoff = 0"
	printf 'a poison\n' | mq-send --key a q
	printf 'a 1\n' | mq-send --key a q
	run mq-recv -n 0 -x "$T/h" q
	[ "$(count q dead)" -eq 1 ]
	[ "$(grep -c '^start a poison' "$T/log")" -eq 2 ]
	[ "$(tail -n 1 "$T/log")" = "end a 1" ]
	# exit 65: dead at once, the next one follows
	printf 'c 1\n' | mq-send --key c q
	printf 'c 2\n' | mq-send --key c q
	run mq-recv -n 0 -x 'read k n; echo "$k $n" >>"$T/log2"; [ "$n" = 2 ] || exit 65' q
	[ "$(cat "$T/log2")" = "$(printf 'c 1\nc 2')" ]
	[ "$(count q dead)" -eq 2 ]
	"$BATS_TEST_DIRNAME/spool-check" -e "$MQ_SPOOL"
}

@test "a head that expires (--ttl) releases its key" {
	printf 'a 1\n' | mq-send --key a --ttl 100ms q
	printf 'a 2\n' | mq-send --key a q
	sleep 0.2
	run -0 mq-recv -n 0 q
	[ "$output" = "a 2" ]
	[ "$(count q dead)" -eq 1 ]
	[ "$(header_of "$(files q dead)" Dead-Reason)" = expired ]
}

@test "a consumer killed holding a key frees it: at lease expiry (-c), at once (a holder, kill -9)" {
	config q "lease = 1s" "backoff = 0"
	printf 'a 1\n' | mq-send --key a q
	printf 'a 2\n' | mq-send --key a q
	printf 'b 1\n' | mq-send --key b q
	p=$(mq-recv -c q)
	[ "$(body_of "$p")" = "a 1" ]
	run -0 mq-recv -n 0 q
	[ "$output" = "b 1" ] # a 2 waits behind a 1
	sleep 1.2
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'a 1\na 2')" ]
	# kill -9 a consumer whose handler holds the key
	printf 'c 1\n' | mq-send --key c q
	printf 'c 2\n' | mq-send --key c q
	spawn mq-recv -x 'cat >>"$T/killed"; sleep 30' q
	wait_for 10 test -s "$T/killed"
	kill -9 "$BG_PID"
	wait_pid 10 "$BG_PID"
	run -0 mq-recv -n 0 -x 'cat >>"$T/after"; echo " $MQ_ATTEMPT" >>"$T/after"' q
	[ "$(cat "$T/after")" = "$(printf 'c 1\n 2\nc 2\n 1')" ]
	kill_handlers
}

@test "a delayed message does not hold its key before it is due, and joins it when due" {
	printf 'a later\n' | mq-send --key a --delay 1h q
	printf 'a 1\n' | mq-send --key a q
	run -0 mq-recv -n 0 q
	[ "$output" = "a 1" ]
	printf 'b soon\n' | mq-send --key b --delay 1s q
	printf 'b 1\n' | mq-send --key b q
	p=$(mq-recv -c q)
	[ "$(body_of "$p")" = "b 1" ]
	sleep 1.1
	# due while b 1 is held: it joins the key behind it
	run -1 mq-recv -n 0 q
	run -0 mq-peek -s waiting q
	[[ $output == *"b soon key=b"* ]]
	mq-ack q "$p"
	run -0 mq-recv -n 0 q
	[ "$output" = "b soon" ]
	"$BATS_TEST_DIRNAME/spool-check" "$MQ_SPOOL"
}

@test "mq-peek shows each message's key, and the waiting ones (text and --json)" {
	printf 'a 1\n' | mq-send --key 'order 7' q
	printf 'a 2\n' | mq-send --key 'order 7' q
	printf 'plain\n' | mq-send q
	run -0 mq-peek q
	[ "${#lines[@]}" -eq 3 ]
	[[ ${lines[0]} == "ready "*" a 1 key=order 7" ]]
	[[ ${lines[1]} == "ready "*" plain" ]]
	[[ ${lines[2]} == "waiting "*" a 2 key=order 7" ]]
	run -0 mq-peek --json q
	echo "$output" | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert [m.get("key") for m in v] == ["order 7", None, "order 7"], v
assert [m["state"] for m in v] == ["ready", "ready", "waiting"], v'
	id=$(mq-peek -s waiting q | awk '{ print $2 }')
	run -0 mq-peek q "$id"
	[[ $output == *"Order-Key: order 7"* ]]
}

@test "replaying a dead message of a key puts it behind what the key has queued since" {
	printf 'a 1\n' | mq-send --key a q
	p=$(mq-recv -c q)
	mq-nack --dead 'by hand' q "$(name_id "$p")"
	printf 'a 2\n' | mq-send --key a q
	p2=$(mq-recv -c q)
	printf 'a 3\n' | mq-send --key a q
	mq-replay q "$(name_id "$p")"
	mq-ack q "$p2"
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'a 3\na 1')" ]
}

@test "mq-rm of a key's head hands the key on" {
	printf 'a 1\n' | mq-send --key a q
	printf 'a 2\n' | mq-send --key a q
	mq-rm q "$(name_id "$(files q new)")"
	run -0 mq-recv -n 0 q
	[ "$output" = "a 2" ]
	[ ! -d "$MQ_SPOOL/q/keys/a" ]
}

@test "mq-rm -s waiting --all deletes what waits behind each key, not the heads" {
	printf 'a 1\n' | mq-send --key a q
	printf 'a 2\n' | mq-send --key a q
	printf 'a 3\n' | mq-send --key a q
	printf 'b 1\n' | mq-send --key b q
	printf 'free\n' | mq-send q
	run -0 mq-rm -n -s waiting --all q
	[ "${#lines[@]}" -eq 2 ]
	[ "$(ls "$MQ_SPOOL/q/keys/a" | wc -l)" -eq 3 ] # -n: nothing deleted
	mq-rm -s waiting --all q
	[ "$(ls "$MQ_SPOOL/q/keys/a" | wc -l)" -eq 1 ] # the head's own name only
	run -1 mq-peek -s waiting q # nothing waits: exit 1, as for an empty queue
	[ -z "$output" ]
	run -0 mq-recv -n 0 q
	[ "$(sort <<<"$output")" = "$(printf 'a 1\nb 1\nfree')" ]
	[ ! -d "$MQ_SPOOL/q/keys/a" ]
	[ ! -d "$MQ_SPOOL/q/keys/b" ]
}

@test "mq-send --topic --key: each subscriber's copy is keyed" {
	mq-sub add orders stock sms
	printf 'o 1\n' | mq-send --topic orders --key o
	printf 'o 2\n' | mq-send --topic orders --key o
	for q in stock sms; do
		[ "$(count "$q" new)" -eq 1 ]
		[ "$(ls "$MQ_SPOOL/$q/keys/o" | wc -l)" -eq 2 ]
	done
	p=$(mq-recv -c stock)
	run -1 mq-recv -n 0 stock
	run -0 mq-recv -n 0 sms
	[ "$output" = "$(printf 'o 1\no 2')" ]
	mq-ack stock "$p"
	run -0 mq-recv -n 0 stock
	[ "$output" = "o 2" ]
}

@test "old files with a Key: header still dedup, and are no ordering key" {
	# as an older mq-send --id left them: the header Key: and the marker
	id=$(echo first | mq-send -i --id k1 q)
	f=$(files q new)
	sed -i 's/^Dedup-Key: k1$/Key: k1/' "$f"
	grep -q '^Key: k1$' "$f"
	run --separate-stderr -0 mq-send -i --id k1 q <<<again
	[ "$output" = "$id" ]
	[[ $stderr == *"duplicate of $id"* ]]
	[ "$(count q new)" -eq 1 ]
	run -0 mq-peek q
	[[ $output != *"key="* ]]
	run -0 mq-recv q
	[ "$output" = first ]
}

@test "the repair gives on a key whose head was lost (an acker killed between two steps)" {
	printf 'a 1\n' | mq-send --key a q
	printf 'a 2\n' | mq-send --key a q
	# what a crash between the ack's unlink and the hand-on leaves
	rm "$(files q new)"
	run -1 mq-recv -n 0 q
	# a key must be still for 10 s before a repair touches it
	sleep 10.5
	run -0 mq-stat --repair q
	[[ $output == *"1 keys whose head was lost handed on"* ]]
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'a 1\na 2')" ]
}
