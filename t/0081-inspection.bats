#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Never touch what is not a spool (issue 9): a tool recognises a spool and a
# queue before it writes or deletes anything (spool-layout.md 2, 3); mq-stat
# and mq-peek only look (mq-stat --repair mends, 6.10), also for a user who
# may only read; mq-relayd runs the light repair only; a spool path that does
# not exist is an error for readers (66), and writers make only its last
# component.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

setup() { relayd_setup; }
teardown() { relayd_teardown; }

# row Q: the whitespace-squeezed line of Q in mq-stat's first table.
row() {
	mq-stat "$1" | awk -v q="$1" '$1 == q {$1 = $1; print; exit}'
}

# js EXPR: the Python expression EXPR of d, the JSON in $output.
js() {
	python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print(eval(sys.argv[1]))' "$1" <<<"$output"
}

# other_programs DIR: a directory one level above where a spool would be,
# holding other programs' folders; one has a tmp/ with a two-hour-old file.
other_programs() {
	mkdir -p "$1/app/tmp" "$1/web/logs" "$1/cache"
	echo keep >"$1/app/tmp/session"
	touch -d '-2 hours' "$1/app/tmp/session"
	echo x >"$1/web/logs/access.log"
	echo y >"$1/notes.txt"
}

@test "mq-stat and mq-peek -d at a directory that is not a spool change nothing and say so" {
	local srv="$BATS_TEST_TMPDIR/srv" before
	other_programs "$srv"
	before=$(snapshot)
	for args in "" "--repair" "--json" "app" "--repair app"; do
		# shellcheck disable=SC2086 # the words of args are options
		run --separate-stderr -66 mq-stat -d "$srv" $args
		check_error mq-stat
		[[ $stderr == *"$srv is not a spool"* ]]
		[ -z "$output" ]
	done
	for q in app web cache; do
		run --separate-stderr -66 mq-peek -d "$srv" "$q"
		check_error mq-peek
		[[ $stderr == *"not a spool"* ]]
		run --separate-stderr -66 mq-recv -d "$srv" "$q"
		check_error mq-recv
	done
	# a producer does not take it for a spool either (73: it came to create)
	run --separate-stderr -73 mq-send -d "$srv" app <<<x
	check_error mq-send
	[[ $stderr == *"not a spool"* ]]
	[ "$(snapshot)" = "$before" ]
	[ "$(cat "$srv/app/tmp/session")" = keep ]
}

@test "in a spool, a directory that is not a queue is not listed, not repaired, not written" {
	mq-send q <<<x
	mkdir -p "$MQ_SPOOL/backup/tmp" "$MQ_SPOOL/other"
	echo keep >"$MQ_SPOOL/backup/tmp/old"
	touch -d '-2 hours' "$MQ_SPOOL/backup/tmp/old"
	echo data >"$MQ_SPOOL/other/file"
	local before
	before=$(snapshot)
	run --separate-stderr -0 mq-stat --repair
	[ "$(printf '%s\n' "${lines[@]}" | sed -n 3p | cut -d' ' -f1)" = q ]
	[[ $output != *backup* && $output != *other* ]]
	run --separate-stderr -66 mq-stat backup
	check_error mq-stat
	[[ $stderr == *"$MQ_SPOOL/backup is a directory but not a queue"* ]]
	run --separate-stderr -66 mq-peek other
	check_error mq-peek
	run --separate-stderr -73 mq-send other <<<x
	check_error mq-send
	run --separate-stderr -66 mq-recv -w 1 backup
	check_error mq-recv
	[ "$(snapshot)" = "$before" ]
}

@test "every name spool-layout.md 3 lists for a queue makes a directory a queue, as the code knows it" {
	local names n
	# the list of section 3: "      NAME/  what" lines between QUEUE/ and the text after it
	names=$(awk '/^## 3\. /{s=1} s && /^    QUEUE\//{l=1; next} l && /^$/{exit}
	    l && /^      [a-z.]/{print $1}' "$BATS_TEST_DIRNAME/../spool-layout.md")
	[ "$(wc -l <<<"$names")" -ge 14 ]
	for n in $names; do
		[[ $n == .* || $n == tmp/ ]] && continue
		# made by hand: a tmp/ with a file in it, and this name beside it
		mkdir -p "$MQ_SPOOL/q-${n%/}/tmp"
		echo x >"$MQ_SPOOL/q-${n%/}/tmp/f"
		if [[ $n == */ ]]; then mkdir "$MQ_SPOOL/q-${n%/}/$n"; else : >"$MQ_SPOOL/q-$n/$n"; fi
		run --separate-stderr mq-stat "q-${n%/}"
		[ "$status" -eq 0 ] || { echo "$n: $stderr"; false; }
	done
	# and a name it does not list does not
	mkdir -p "$MQ_SPOOL/other/tmp" "$MQ_SPOOL/other/backup"
	echo x >"$MQ_SPOOL/other/tmp/f"
	run --separate-stderr -66 mq-stat other
}

@test "many first senders of one new queue at once: each exits 0, none takes it for another program's" {
	local T=$BATS_TEST_TMPDIR r i
	for r in $(seq 1 40); do
		for i in 1 2 3 4 5 6 7 8; do
			(mq-send --id k "q$r" <<<"$i" 2>>"$T/err"; echo $? >>"$T/rc") &
		done
		wait
	done
	! grep -v duplicate "$T/err"
	[ "$(sort -u "$T/rc")" = 0 ]
	[ "$(wc -l <"$T/rc")" -eq 320 ]
}

@test "mq-peek and mq-stat create nothing in an empty spool or in a queue missing its directories" {
	mkdir "$MQ_SPOOL"
	local before
	before=$(snapshot)
	run -0 mq-stat
	[[ $output == "spool $MQ_SPOOL at "* && ${#lines[@]} -eq 1 ]]
	run -1 mq-peek q
	[ "$(snapshot)" = "$before" ]
	# made by hand, for its config, before the first send
	config q 'lease = 2m'
	mkdir "$MQ_SPOOL/bare"
	before=$(snapshot)
	run -0 mq-stat q bare
	[ "$(row q)" = "q 0 0 0 0 0 0 - 0B" ]
	[ "$(row bare)" = "bare 0 0 0 0 0 0 - 0B" ]
	run -0 mq-stat --json
	[ "$(js '" ".join(q["queue"] for q in d)')" = "bare q" ]
	run -1 mq-peek q
	run -1 mq-peek -s dead bare
	run -2 mq-peek q 01ARZ3NDEKTSV4RRFFQ69G5FAV
	[ "$(snapshot)" = "$before" ]
	# a producer makes them, as before
	mq-send q <<<x
	[ -d "$MQ_SPOOL/q/new" ] && [ -d "$MQ_SPOOL/q/cur" ] && [ -d "$MQ_SPOOL/q/tmp" ]
	[ -f "$MQ_SPOOL/.spoolmq" ]
}

@test "mq-stat only looks: expired leases, old tmp/ files and markers stay until --repair" {
	config q 'lease = 200ms' 'backoff = 0' 'keep-acked = 100ms'
	mq-send --id k q <<<a
	mq-send q <<<b
	mq-recv q >/dev/null # acked into done/
	p=$(mq-recv -c q)
	echo partial >"$MQ_SPOOL/q/tmp/1.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	touch -d '-2 hours' "$MQ_SPOOL/q/tmp/1.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	touch -d '-2 days' "$MQ_SPOOL/q/ids/k"
	wait_for 5 time_past "$(name_time "$p")"
	wait_for 5 time_past $(($(name_time "$(only_file q done)") + 100))
	local before
	before=$(snapshot)
	run --separate-stderr -0 mq-stat q
	[ -z "$stderr" ]
	[[ $output != *repaired* ]]
	[ "$(row q | cut -d' ' -f4,5,7)" = "1 1 1" ] # in flight, its lease run out, kept
	run -0 mq-stat --json q
	[ "$(js 'd[0]["expired_leases"]')" = 1 ]
	run -1 mq-peek -s ready q
	[ "$(snapshot)" = "$before" ]
	run --separate-stderr -0 mq-stat --repair q
	[ -z "$stderr" ]
	[[ $output == *"repaired q: 1 expired leases taken back, 1 abandoned tmp/ files removed, 1 kept messages past keep-acked removed, 1 old dedup markers removed"* ]]
	[ "$(count q tmp)" -eq 0 ] && [ "$(count q done)" -eq 0 ] && [ ! -e "$MQ_SPOOL/q/ids/k" ]
}

# as_nobody CMD...: run CMD as the user nobody (root only).
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }

@test "a user who may only read gets the figures, and --repair says what it could not mend and why" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run as another user"
	# nobody must reach the spool, and may read but not write it
	local d=$BATS_TEST_TMPDIR
	while [ "$d" != / ]; do
		chmod o+x "$d"
		d=$(dirname "$d")
	done
	config q 'lease = 200ms' 'backoff = 0'
	mq-send q <<<a
	mq-send q <<<b
	p=$(mq-recv -c q)
	echo partial >"$MQ_SPOOL/q/tmp/1.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	touch -d '-2 hours' "$MQ_SPOOL/q/tmp/1.01ARZ3NDEKTSV4RRFFQ69G5FAV.0"
	chmod -R go-w,go+rX "$MQ_SPOOL"
	wait_for 5 time_past "$(name_time "$p")"
	as_nobody test -r "$MQ_SPOOL/q/new" || skip "nobody cannot read the test directory"
	local before
	before=$(snapshot)
	run --separate-stderr -0 as_nobody mq-stat q
	[ -z "$stderr" ]
	[ "$(printf '%s\n' "${lines[@]}" | awk '$1 == "q" {$1 = $1; print; exit}' | cut -d' ' -f2,4,5)" = "1 1 1" ]
	run --separate-stderr -0 as_nobody mq-peek q
	[ "${#lines[@]}" -eq 2 ]
	run --separate-stderr -77 as_nobody mq-stat --repair q
	check_error mq-stat
	[ "$stderr" = "mq-stat: cannot repair q: 2 entries could not be mended: Permission denied" ]
	[[ ${lines[2]} == "q "* ]] # the figures all the same
	[ "$(snapshot)" = "$before" ]
	[ -f "$p" ]
}

@test "mq-relayd's rescans run the light repair: kept messages and markers stay" {
	config q 'keep-acked = 100ms' 'dedup-window = 1s'
	mq-send --id k q <<<a
	mq-recv q >/dev/null # into done/
	wait_for 5 time_past $(($(name_time "$(only_file q done)") + 100))
	touch -d '-2 days' "$MQ_SPOOL/q/ids/k"
	mkdir "$MQ_SPOOL/q/received"
	echo >"$MQ_SPOOL/q/received/01ARZ3NDEKTSV4RRFFQ69G5FAV"
	touch -d '-2 days' "$MQ_SPOOL/q/received/01ARZ3NDEKTSV4RRFFQ69G5FAV"
	# and an expired lease, which the light repair does take back
	config q 'lease = 200ms' 'backoff = 0'
	mq-send q <<<b
	p=$(mq-recv -c q)
	wait_for 5 time_past "$(name_time "$p")"
	handler ok <<<'cat >/dev/null'
	{
		echo "spool $MQ_SPOOL"
		echo "rescan 1s"
		echo "consume q $T/ok"
	} >"$RELAYD_CONF"
	start_relayd -v
	wait_for 20 log_has "took back 1 expired leases"
	# three rescans with the queue open
	local n
	n=$(log_count 'rescanning every queue')
	wait_for 20 eval '[ "$(log_count "rescanning every queue")" -ge $((n + 3)) ]'
	wait_for 10 queue_empty_but_kept
	[ "$(count q done)" -eq 2 ] # the old one, and b
	[ -e "$MQ_SPOOL/q/ids/k" ]
	[ -e "$MQ_SPOOL/q/received/01ARZ3NDEKTSV4RRFFQ69G5FAV" ]
	! log_has "buried"
	# the full repair is mq-stat --repair's
	run -0 mq-stat --repair q
	[[ $output == *"old dedup markers removed"* ]]
	[ ! -e "$MQ_SPOOL/q/ids/k" ]
	[ ! -e "$MQ_SPOOL/q/received/01ARZ3NDEKTSV4RRFFQ69G5FAV" ]
}

# nothing ready or claimed in q (only kept messages)
queue_empty_but_kept() { [ "$(count q new)" -eq 0 ] && [ "$(count q cur)" -eq 0 ]; }

@test "a spool that does not exist: readers say so in one line, exit 66, and create nothing" {
	local before
	before=$(snapshot)
	for cmd in "mq-recv q" "mq-recv -c q" "mq-peek q" "mq-peek q 01ARZ3NDEKTSV4RRFFQ69G5FAV" \
		"mq-stat" "mq-stat q" "mq-stat --repair" "mq-ack q 01ARZ3NDEKTSV4RRFFQ69G5FAV" \
		"mq-nack q 01ARZ3NDEKTSV4RRFFQ69G5FAV" "mq-replay --all q"; do
		# shellcheck disable=SC2086 # cmd is words
		run --separate-stderr -66 $cmd
		check_error "${cmd%% *}"
		[[ $stderr == *"spool $MQ_SPOOL does not exist"* ]]
		# shellcheck disable=SC2086
		run --separate-stderr -66 ${cmd%% *} -d /nonexistent ${cmd#* }
		[[ $stderr == *"spool /nonexistent does not exist"* ]]
	done
	[ "$(snapshot)" = "$before" ]
	[ ! -e /nonexistent ]
}

@test "writers create the spool's own directory, not a chain of missing parents" {
	local before
	before=$(snapshot)
	run --separate-stderr -73 mq-send -d "$BATS_TEST_TMPDIR/typo/deep" q <<<x
	check_error mq-send
	[ "$stderr" = "mq-send: cannot create spool $BATS_TEST_TMPDIR/typo/deep: its parent directory does not exist" ]
	run --separate-stderr -73 mq-recv -w 1 -d "$BATS_TEST_TMPDIR/typo/deep" q
	check_error mq-recv
	MQ_SPOOL="$BATS_TEST_TMPDIR/typo/deep" run --separate-stderr -73 mq-send q <<<x
	check_error mq-send
	[ "$(snapshot)" = "$before" ]
	# the parent exists: the spool is made, with its marker
	mkdir "$BATS_TEST_TMPDIR/x"
	run -0 mq-send -d "$BATS_TEST_TMPDIR/x/newspool" q <<<x
	[ -d "$BATS_TEST_TMPDIR/x/newspool/q/new" ]
	[ "$(cat "$BATS_TEST_TMPDIR/x/newspool/.spoolmq")" = "spoolmq spool: see mq-spool(5)" ]
	run -0 mq-recv -d "$BATS_TEST_TMPDIR/x/newspool" q
	[ "$output" = x ]
}

@test "a spool made before the marker, or by hand, is still a spool" {
	mq-send q <<<x
	rm "$MQ_SPOOL/.spoolmq"
	run -0 mq-stat q
	[ "$(row q | cut -d' ' -f2)" = 1 ]
	[ ! -e "$MQ_SPOOL/.spoolmq" ] # looking writes nothing
	run -0 mq-recv q
	[ "$output" = x ]
	mq-send q <<<y # a producer marks it
	[ -f "$MQ_SPOOL/.spoolmq" ]
	# by hand: mkdir -p SPOOL/QUEUE and a config, then the first send
	local h="$BATS_TEST_TMPDIR/hand"
	mkdir -p "$h/orders"
	echo 'lease = 2m' >"$h/orders/config"
	run -1 mq-recv -d "$h" orders
	run -0 mq-send -d "$h" orders <<<z
	run -0 mq-recv -d "$h" orders
	[ "$output" = z ]
	# a file system of its own, mounted as the spool
	mkdir -p "$BATS_TEST_TMPDIR/fs/lost+found"
	run -0 mq-stat -d "$BATS_TEST_TMPDIR/fs"
	run -0 mq-send -d "$BATS_TEST_TMPDIR/fs" q <<<w
}
